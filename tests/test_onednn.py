"""The binaries turn on TF's oneDNN kernels before TensorFlow loads."""

import ast
import glob
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BINARIES = sorted(glob.glob(os.path.join(REPO, "bin", "*.py")))
IS_ON = ("from tfc_lic import onednn\n"
         "from tensorflow.python.util import _pywrap_util_port\n"
         "print(_pywrap_util_port.IsMklEnabled())\n")


@pytest.mark.parametrize("path", BINARIES, ids=os.path.basename)
def test_binary_imports_onednn_first(path):
  tree = ast.parse(open(path).read())
  first = next(n for n in tree.body if isinstance(n, (ast.Import,
                                                      ast.ImportFrom)))
  assert isinstance(first, ast.ImportFrom) and first.module == "tfc_lic" and [
      a.name for a in first.names] == ["onednn"], ast.dump(first)


@pytest.mark.parametrize("setting,expected", [(None, "True"), ("0", "False")])
def test_onednn_is_on_unless_the_user_says_otherwise(setting, expected):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if setting is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = setting
  result = subprocess.run([sys.executable, "-c", IS_ON], cwd=REPO,
                          env=dict(env, PYTHONPATH=REPO), capture_output=True,
                          text=True, timeout=300)
  assert result.stdout.strip() == expected, result.stderr[-2000:]
