"""bin/benchmark.py: the learning-curve fit recovers a known curve, and a
missing history is a one-line error; generalization runs in either
precision."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TINY_CONFIG
from tfc_lic import precision
from tfc_lic import training

BENCHMARK = os.path.join(os.path.dirname(__file__), "..", "bin",
                         "benchmark.py")


def _run(*args):
  return subprocess.run([sys.executable, BENCHMARK, *args],
                        capture_output=True, text=True, timeout=300)


def test_learning_curve_recovers_the_floor_and_projects(tmp_path):
  floor, scale, power = 1.25, 0.6, 1.3
  curve = lambda t: floor + scale * (t / 1e4) ** -power
  history = tmp_path / "history.jsonl"
  with open(history, "w") as f:
    for step in range(10000, 60001, 1000):
      f.write(json.dumps(dict(kind="train", step=step, loss=9.)) + "\n")
      f.write(json.dumps(dict(kind="validation", step=step, loss=9.)) + "\n")
      f.write(json.dumps(dict(kind="validation_average", step=step,
                              loss=curve(step))) + "\n")
  result = _run("--what=learning_curve", f"--history={history}",
                "--fit_from=20000", "--project_to=100000,1000000",
                f"--output_dir={tmp_path}")
  assert result.returncode == 0, result.stderr[-2000:]
  with open(tmp_path / "learning_curve.json") as f:
    out = json.load(f)
  np.testing.assert_allclose(
      [out["fit"][k] for k in ("floor", "scale", "power")],
      [floor, scale, power], rtol=1e-4)
  np.testing.assert_allclose(out["projections"]["1000000"], curve(1e6),
                             rtol=1e-5)
  assert len(out["points"]) == 51
  assert os.path.getsize(tmp_path / "learning_curve.png") > 0


def test_learning_curve_of_a_bad_history_is_a_one_line_error(tmp_path):
  (tmp_path / "empty.jsonl").write_text("")
  (tmp_path / "corrupt.jsonl").write_text('{"kind": "validation_average"\n')
  for name, message in [
      ("none.jsonl", f"--history must name a run's history.jsonl "
                     f"('{tmp_path}/none.jsonl')"),
      ("empty.jsonl", "fewer than 4 averaged validations from step 40000 in "
                      f"{tmp_path}/empty.jsonl"),
      ("corrupt.jsonl", f"{tmp_path}/corrupt.jsonl is not a run's "
                        "history.jsonl")]:
    result = _run("--what=learning_curve", f"--history={tmp_path}/{name}",
                  f"--output_dir={tmp_path}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), lines
  assert not os.path.exists(tmp_path / "learning_curve.json")


def test_generalization_in_either_precision(tmp_path, tiny_model):
  """float32 by default; bf16 reads a little apart where it is native and
  is a one-line error where it is not."""
  training.save_compact_weights(tiny_model, tmp_path / "weights.npz")
  (tmp_path / "config.json").write_text(json.dumps(TINY_CONFIG))
  losses = {}
  for name in ("float32", "bfloat16"):
    output_dir = tmp_path / name
    result = _run("--what=generalization", f"--weights={tmp_path}",
                  f"--image_sets=one={REPO}/testdata/kodim23.png",
                  f"--eval_precision={name}", f"--output_dir={output_dir}")
    if name == "bfloat16" and not precision.has_fast_bfloat16():
      assert result.returncode == 1
      assert result.stderr.strip().splitlines() == [
          "error: --eval_precision=bfloat16 needs a CPU with AVX512-BF16 or "
          "AMX, or a GPU of compute capability >= 8.0"], result.stderr[-2000:]
      assert not os.path.exists(output_dir / "generalization.json")
      continue
    assert result.returncode == 0, result.stderr[-2000:]
    with open(output_dir / "generalization.json") as f:
      (row,) = json.load(f)["rows"]
    assert row["precision"] == name and len(row["rates"]) == 2
    losses[name] = row["loss"]
  if "bfloat16" in losses:
    assert losses["bfloat16"] != losses["float32"]
    assert losses["bfloat16"] == pytest.approx(losses["float32"], rel=0.05)
