"""The commands start TensorFlow with oneDNN kernels and without log noise."""

import ast
import glob
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

IS_ON = ("from tfc_lic import startup\n"
         "from tensorflow.python.util import _pywrap_util_port\n"
         "print(_pywrap_util_port.IsMklEnabled())\n")
FILTERED = """
import os, re
from tfc_lic import startup
with startup.dropping_stderr_lines(re.compile(b"noise")):
  os.write(2, b"kept 1\\nsome noise here\\n")
  print("stdout untouched", flush=True)
  os.write(2, b"kept 2, no newline")
  raise SystemExit(3)
"""


def _run(code, **env):
  clean = {k: v for k, v in os.environ.items()
           if k not in ("TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL")}
  return subprocess.run([sys.executable, "-c", code], cwd=REPO,
                        env=dict(clean, PYTHONPATH=REPO, **env),
                        capture_output=True, text=True, timeout=300)


def test_commands_import_startup_first():
  # Every command is a module of tfc_lic.cli, whose __init__ runs first.
  tree = ast.parse(open(os.path.join(REPO, "tfc_lic", "cli",
                                     "__init__.py")).read())
  first = next(n for n in tree.body if isinstance(n, (ast.Import,
                                                      ast.ImportFrom)))
  assert isinstance(first, ast.ImportFrom) and first.module == "tfc_lic" and [
      a.name for a in first.names] == ["startup"], ast.dump(first)


def test_onednn_is_on_and_tensorflow_starts_without_log_noise():
  # Without startup, TF 2.14 writes 3 "E" lines (cuDNN/cuFFT/cuBLAS factory)
  # and, at the default log level, notices about CUDA, TensorRT and the CPU.
  result = _run(IS_ON)
  assert result.stdout == "True\n" and result.returncode == 0, result.stderr
  assert result.stderr == ""


def test_onednn_stays_off_if_the_user_says_so():
  result = _run(IS_ON, TF_ENABLE_ONEDNN_OPTS="0")
  assert result.stdout == "False\n", result.stderr[-2000:]


def test_a_user_log_level_wins():
  result = _run("from tfc_lic import startup\n", TF_CPP_MIN_LOG_LEVEL="0")
  assert "oneDNN custom operations are on" in result.stderr, result.stderr
  assert "Unable to register" not in result.stderr


def test_filter_keeps_other_lines_in_order_also_on_exit():
  result = _run(FILTERED)
  assert result.returncode == 3
  assert result.stderr == "kept 1\nkept 2, no newline"
  assert result.stdout == "stdout untouched\n"
