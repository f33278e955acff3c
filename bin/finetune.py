#!/usr/bin/env python3
"""`tfc-lic-finetune` from a checkout (tfc_lic/cli/finetune.py)."""

from tfc_lic.cli import finetune

if __name__ == "__main__":
  finetune.run()
