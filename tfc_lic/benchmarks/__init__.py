"""The benchmarks behind `tfc-lic-benchmark --what=...`, one module per tool.

Each tool measures, prints a table and writes <name>.json (and a .png plot)
under an output folder; `harness` holds what they share.
"""
