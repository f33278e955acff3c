#!/usr/bin/env python3
"""`tfc-lic-evaluate` from a checkout (tfc_lic/cli/evaluate.py)."""

from tfc_lic.cli import evaluate

if __name__ == "__main__":
  evaluate.run()
