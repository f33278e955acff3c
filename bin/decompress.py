#!/usr/bin/env python3
"""`tfc-lic-decompress` from a checkout (tfc_lic/cli/decompress.py)."""

from tfc_lic.cli import decompress

if __name__ == "__main__":
  decompress.run()
