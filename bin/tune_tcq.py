#!/usr/bin/env python3
"""`tfc-lic-tune-tcq` from a checkout (tfc_lic/cli/tune_tcq.py)."""

from tfc_lic.cli import tune_tcq

if __name__ == "__main__":
  tune_tcq.run()
