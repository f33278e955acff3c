#!/usr/bin/env python3
"""`tfc-lic-compress` from a checkout (tfc_lic/cli/compress.py)."""

from tfc_lic.cli import compress

if __name__ == "__main__":
  compress.run()
