"""tfc-lic-benchmark and its tools (tfc_lic.benchmarks): a worker runs in a
fresh process with its environment, a training variant is timed and trained,
the learning-curve fit recovers a known curve and a bad history is a
one-line error; generalization runs in either precision."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO, TESTDATA, TINY_CONFIG, smooth_image
from tfc_lic import container
from tfc_lic import precision
from tfc_lic import training
from tfc_lic.benchmarks import harness
from tfc_lic.benchmarks import learning_curve
from tfc_lic.benchmarks import training_speed


def _run(*args):
  return subprocess.run(
      [sys.executable, "-m", "tfc_lic.cli.benchmark", *args], cwd=REPO,
      capture_output=True, text=True, timeout=300)


def test_a_worker_runs_in_a_fresh_process_with_its_environment():
  assert harness.run_worker(os.getenv, env={"TFC_LIC_BENCHMARK": "set"},
                            key="TFC_LIC_BENCHMARK") == "set"
  with pytest.raises(RuntimeError,
                     match=r"(?s)worker loads\(.*JSONDecodeError"):
    harness.run_worker(json.loads, s="{")


def test_a_training_variant_is_timed_and_trained():
  variant = dict(name="tiny", precision="float32", proxy="mixed", patch=64,
                 batch=2, num_filters=16, latent_channels=24, train_steps=2)
  row = training_speed.measure(variant, f"{TESTDATA}/kodim23.png",
                               warmup_steps=1, steps=2)
  assert row["name"] == "tiny" and row["seconds_per_step"] > 0
  assert row["megapixels_per_second"] == pytest.approx(
      64 * 64 * 2 / row["seconds_per_step"] / 1e6)
  assert np.isfinite(row["final_loss"])


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
  learning_curve.run(str(tmp_path), str(history), 20000, [100000, 1000000])
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
                  f"--image_sets=one={TESTDATA}/kodim23.png",
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


def test_entropy_coder_baseline_decodes_what_the_codec_decodes(tiny_model):
  """The benchmark's baseline (tfc's range coder in the same codec) codes the
  same latents to the same pictures, at about the same size."""
  from tfc_lic.benchmarks import entropy_coder  # pylint: disable=g-import-not-at-top
  image = smooth_image(48, 64, seed=8)
  codecs = entropy_coder._codecs(tiny_model, 0.08)  # pylint: disable=protected-access
  for quantizer in (0, 2):
    streams = [c.compress(image, quantizer, 1., 0) for c in codecs]
    decoded = [c.decompress(s).numpy() for c, s in zip(codecs, streams)]
    np.testing.assert_array_equal(*decoded)
    sizes = [len(s.numpy()) for s in streams]
    # rANS ends each of its two strings with a 6-byte state, tfc's range
    # coder with 2-4 bytes: on a 40-byte stream that is most of the gap.
    assert abs(sizes[0] - sizes[1]) <= 0.02 * sizes[1] + 16, sizes


def test_memory_mosaic_is_the_size_asked_and_made_of_the_images():
  from tfc_lic.benchmarks import codec_memory  # pylint: disable=g-import-not-at-top
  height, width = codec_memory.shape(4)
  assert abs(height * width - 4e6) < 4e3 and abs(width / height - 1.5) < 1e-3
  height, width = codec_memory.panorama(100)
  assert width == container.MAX_SIDE and abs(height * width - 1e8) < 4e4
  images = [np.full((30, 50, 3), v, np.uint8) for v in (10, 20)]
  out = codec_memory.mosaic(images, 70, 120)
  assert out.shape == (70, 120, 3)
  assert set(np.unique(out)) == {10, 20}


def test_seam_band_is_the_pixels_near_inner_tile_borders():
  from tfc_lic import tiling  # pylint: disable=g-import-not-at-top
  from tfc_lic.benchmarks import seams  # pylint: disable=g-import-not-at-top
  side = tiling.TILE * tiling.STRIDE
  band = seams.border_band(side + 100, side // 2)  # One inner border.
  rows = np.flatnonzero(band.any(1))
  assert rows.tolist() == list(range(side - seams.BAND, side + seams.BAND))
  assert band[rows].all() and not seams.border_band(side, side).any()
