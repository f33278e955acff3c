#!/usr/bin/env python3
"""`tfc-lic-export` from a checkout (tfc_lic/cli/export.py)."""

from tfc_lic.cli import export

if __name__ == "__main__":
  export.run()
