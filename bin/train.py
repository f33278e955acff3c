#!/usr/bin/env python3
"""`tfc-lic-train` from a checkout (tfc_lic/cli/train.py)."""

from tfc_lic.cli import train

if __name__ == "__main__":
  train.run()
