"""Stage 2 changes only the per-quantizer syntheses, trains them on the
codec's own latents, and old streams still decode; bin/benchmark.py measures
the syntheses on the codec's latents."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TINY_CONFIG, smooth_image
from tfc_lic import codec as codec_lib
from tfc_lic import data
from tfc_lic import finetuning
from tfc_lic import training

TINY = ["--flagfile=configs/tiny-test.cfg", "--validate_every=0"]


def _run(*args, check=True):
  result = subprocess.run([sys.executable, *args], cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=REPO),
                          capture_output=True, text=True, timeout=600)
  if check:
    assert result.returncode == 0, result.stdout + result.stderr
  return result


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
  base = tmp_path_factory.mktemp("stage2")
  stage1, stage2 = str(base / "stage1"), str(base / "stage2")
  _run("bin/train.py", *TINY, f"--train_dir={stage1}", "--steps=10")
  _run("bin/finetune.py", f"--run={stage1}", f"--train_dir={stage2}",
       "--dataset=../shared/data/train/bsds500/train_10*", "--patch_size=64",
       "--batch_size=4", "--steps=6", "--learning_rate=1e-3",
       "--precision=float32", "--quantizers=usq,tcq8",
       "--delta_indexes=tcq8=-4")
  return stage1, stage2


@pytest.fixture(scope="module")
def runs(run_dirs):
  return [_load(run) for run in run_dirs]


def _load(run):
  config = training.load_config(os.path.join(run, "config.json"))
  model = training.model_from_config(dict(config, precision="float32"))
  training.load_weights(model, run)
  return model


FROZEN = ("analysis_transform", "hyper_analysis_transform",
          "hyper_synthesis_transform", "hyperprior", "synthesis_transform")


def test_only_the_quantizer_syntheses_changed(runs):
  stage1, stage2 = runs
  assert stage2.finetuned_quantizers == ("usq", "tcq8")
  for part in FROZEN:
    before = getattr(stage1, part).variables
    after = getattr(stage2, part).variables
    assert len(before) == len(after) > 0
    for a, b in zip(before, after):
      np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=part)
  for name in ("gain", "inverse_gain"):
    np.testing.assert_array_equal(getattr(stage1, name).numpy(),
                                  getattr(stage2, name).numpy())
  for q, synthesis in stage2.quantizer_syntheses.items():
    changed = [not np.array_equal(a.numpy(), b.numpy()) for a, b in zip(
        synthesis.trainable_variables,
        stage2.synthesis_transform.trainable_variables)]
    assert any(changed), q


def test_stage2_decodes_stage1_streams(runs):
  stage1, stage2 = [codec_lib.ImageCodec(m) for m in runs]
  assert int(stage1.model_id) == int(stage2.model_id)
  image = smooth_image(48, 80)
  for quantizer in ("usq", "tcq8"):
    before = stage1.encode(image, codec_lib.quantizer_id(quantizer), 1., -4)
    after = stage2.decode(before["container"])
    np.testing.assert_array_equal(before["y_hat"].numpy(),
                                  after["y_hat"].numpy())
    # The stream is the same bytes whichever model encodes it.
    again = stage2.encode(image, codec_lib.quantizer_id(quantizer), 1., -4)
    assert again["container"].numpy() == before["container"].numpy()
    # ...but the finetuned synthesis reconstructs it differently.
    old = stage1.decode(before["container"])["image"].numpy()
    assert not np.array_equal(old, after["image"].numpy())


def test_bfloat16_stage2_trains_on_the_codecs_float32_latents():
  tf.keras.utils.set_random_seed(2)
  config = dict(TINY_CONFIG, finetuned_quantizers=["usq", "tcq8"])
  mixed = training.model_from_config(
      dict(config, precision="bfloat16", frozen_precision="float32"))
  for part in FROZEN:
    if part != "hyperprior":
      assert getattr(mixed, part).layers[0].compute_dtype == "float32", part
  for synthesis in mixed.quantizer_syntheses.values():
    assert synthesis.layers[0].compute_dtype == "bfloat16"
  reference = training.model_from_config(dict(config, precision="float32"))
  reference.set_weights(mixed.get_weights())
  finetuner = finetuning.SynthesisFinetuner(
      mixed, delta_indexes={"usq": 2, "tcq8": -4})
  codec = codec_lib.ImageCodec(reference)
  # A batch of two images at two rates: each example gets its own latents
  # (stage 2 of v10 first ran with every example given the first one's).
  images = np.stack([smooth_image(64, 96, seed) for seed in (0, 1)])
  rates = (0, 1)
  latents = finetuner.quantized_latents(tf.cast(images, tf.float32),
                                        tf.constant(rates))
  for quantizer, delta_index, y_hat in zip(("usq", "tcq8"), (2, -4), latents):
    assert y_hat.shape[0] == 2
    for image, rate, example in zip(images, rates, y_hat):
      expected = codec.encode(image, codec_lib.quantizer_id(quantizer),
                              float(rate), delta_index)["y_hat"]
      np.testing.assert_array_equal(example[None].numpy(), expected.numpy())


@pytest.mark.slow  # 77 s: a benchmark's check
def test_synthesis_benchmark_measures_what_the_codec_decodes(run_dirs, runs,
                                                             tmp_path):
  """Each stage-2 synthesis's MSE per rate is that of its reconstruction of
  the codec's own y_hat (same crop, Δ and λ_tcq); stage-1 weights are a
  one-line error."""
  stage1_dir, stage2_dir = run_dirs
  images = f"{REPO}/testdata/kodim23.png"
  args = ["-m", "tfc_lic.cli.benchmark", "--what=synthesis",
          f"--image_sets=one={images}", "--delta_indexes=usq=0,tcq8=-4"]
  result = _run(*args, f"--weights={stage1_dir}",
                f"--output_dir={tmp_path / 'stage1'}", check=False)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      f"error: no stage-2 weights at {stage1_dir} (its config.json names no "
      "finetuned_quantizers)"], result.stderr[-2000:]
  assert not os.path.exists(tmp_path / "stage1" / "synthesis.json")
  _run(*args, f"--weights={stage2_dir}", f"--output_dir={tmp_path}")
  with open(tmp_path / "synthesis.json") as f:
    rows = {row["quantizer"]: row for row in json.load(f)["rows"]}
  assert os.path.getsize(tmp_path / "synthesis.png") > 0
  assert [rows[q]["delta_index"] for q in ("usq", "tcq8")] == [0, -4]
  stage1, stage2 = runs
  codec = codec_lib.ImageCodec(stage2, tcq_lambda=0.08)
  (crop,) = next(iter(data.crops(images, 256, 8, training=False)))
  for quantizer, delta_index in (("usq", 0), ("tcq8", -4)):
    for rate in range(stage2.num_rates):
      y_hat = codec.encode(tf.cast(crop, tf.uint8),
                           codec_lib.quantizer_id(quantizer), float(rate),
                           delta_index)["y_hat"]
      mses = [float(tf.reduce_mean(tf.math.squared_difference(
          crop, model.synthesize(y_hat, tf.constant([rate]), (256, 256),
                                 synthesis)[0])))
              for model, synthesis in (
                  (stage2, stage2.quantizer_syntheses[quantizer]),
                  (stage1, stage1.synthesis_transform))]
      measured = rows[quantizer]["mse"][rate]
      assert measured == pytest.approx(mses[0], rel=1e-4), (quantizer, rate)
      # Six tiny steps may move an MSE by only 0.05 %: closer to stage 2's.
      assert abs(measured - mses[0]) < abs(measured - mses[1]), (quantizer,
                                                                 rate)
