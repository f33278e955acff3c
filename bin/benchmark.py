#!/usr/bin/env python3
"""`tfc-lic-benchmark` from a checkout (tfc_lic/cli/benchmark.py)."""

from tfc_lic.cli import benchmark

if __name__ == "__main__":
  benchmark.run()
