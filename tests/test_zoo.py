"""The shipped model zoo: SavedModels load in plain TF processes and round-trip
images bit-exactly; coded sizes match the entropy model; PSNR as measured."""

import functools
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from tests.conftest import REPO, TESTDATA
from tests.test_serving import CORE_ONLY, run_without_tfc
from tfc_lic import client as client_lib
from tfc_lic import codec as codec_lib
from tfc_lic import export
from tfc_lic import image_io
from tfc_lic import refinement
from tfc_lic import zoo

ZOO = os.path.join(REPO, "saved_models")


@functools.lru_cache(maxsize=None)
def _loaded(name):
  """A zoo SavedModel, loaded once: every load compiles its coding loops
  with XLA again, and a test process would keep them all."""
  return zoo.load(os.path.join(ZOO, name))
CHECKPOINTS = os.path.join(REPO, "checkpoints")
FOLDERS = sorted(d for d in os.listdir(ZOO) if os.path.isdir(
    os.path.join(ZOO, d))) if os.path.isdir(ZOO) else []
MODELS = [d for d in FOLDERS if not d.endswith(export.CORE_SUFFIX)]


def test_zoo_is_not_empty():
  assert MODELS, f"no models in {ZOO}"


ROUND_TRIP = """
import sys, numpy as np, tensorflow as tf
from PIL import Image
model = tf.saved_model.load(sys.argv[1])
image = np.asarray(Image.open(sys.argv[2]).convert("RGB"))
for quantizer in (0, 1, 2):
  stream = model.signatures["compress_with_options"](
      image=tf.constant(image), quantizer=tf.constant(quantizer),
      rate=tf.constant(2.), delta_index=tf.constant(0))["stream"].numpy()
  first = model.signatures["decompress"](stream=tf.constant(stream))["image"]
  second = model.signatures["decompress"](stream=tf.constant(stream))["image"]
  assert np.array_equal(first.numpy(), second.numpy())
  assert first.shape == image.shape, first.shape
  print(quantizer, len(stream), float(np.mean(
      (first.numpy().astype(float) - image) ** 2)))
assert "tfc_lic" not in sys.modules
assert "tensorflow_compression" not in sys.modules
"""


@pytest.mark.parametrize("name", MODELS)
def test_saved_model_round_trip_without_tfc_lic(name):
  """Loads with only tensorflow (no tfc, no tfc_lic), in a subprocess."""
  path = zoo.resolve(os.path.join(ZOO, name))
  result = subprocess.run(
      [sys.executable, "-c", ROUND_TRIP, path,
       os.path.join(TESTDATA, "kodim23.png")],
      capture_output=True, text=True, timeout=600,
      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert len(result.stdout.splitlines()) == 3


@pytest.mark.slow  # 58 s; test_serving runs a core model without tfc
@pytest.mark.parametrize("name", MODELS)
def test_core_saved_model_runs_without_tfc(name):
  """The -core SavedModel holds core ops only: stock TF Serving can load it."""
  core = os.path.join(ZOO, name + export.CORE_SUFFIX)
  assert os.path.isdir(core), f"{core} missing (tfc-lic-export writes it)"
  run_without_tfc(CORE_ONLY, zoo.resolve(core))


@pytest.mark.parametrize("name", MODELS)
def test_client_with_core_model_writes_the_full_models_streams(name, kodim23):
  full = _loaded(name)
  client = client_lib.Client(client_lib.saved_model_transport(
      zoo.resolve(os.path.join(ZOO, name + export.CORE_SUFFIX))))
  image = kodim23[:kodim23.shape[0] // 2]  # (the suite's time)
  for quantizer in ("usq", "tcq8"):
    stream = client.compress(image, quantizer, rate=1.)
    expected = full.signatures["compress_with_options"](
        image=tf.constant(image),
        quantizer=tf.constant(codec_lib.quantizer_id(quantizer)),
        rate=tf.constant(1.), delta_index=tf.constant(
            full.info["delta_indexes"][quantizer]))["stream"].numpy()
    assert stream == expected
    np.testing.assert_array_equal(
        client.decompress(stream),
        full.signatures["decompress"](stream=tf.constant(stream))["image"])


@pytest.fixture(scope="module", params=MODELS)
def shipped(request):
  """Keras model from the committed compact weights, its codec, the codec's
  traced encode and the SavedModel's metadata."""
  model, _, _ = zoo.load_trained(os.path.join(CHECKPOINTS, request.param))
  info = zoo.metadata(zoo.find(request.param))
  codec = codec_lib.ImageCodec(
      model, tcq_lambda=info["tcq_lambda"],
      refine_lambda_scales=info["refine_lambda_scales"],
      refine_learning_rates=info["refine_learning_rates"])
  assert info["model_id"] == int(codec.model_id), (
      "the SavedModel was not exported from the committed weights")
  return model, codec, tf.function(
      codec.encode, input_signature=codec_lib.ENCODE_SIGNATURE), info


@pytest.mark.parametrize("quantizer", list(codec_lib.QUANTIZERS))
def test_coded_size_matches_entropy_model(shipped, kodim23, quantizer):
  model, _, encode, _ = shipped
  for rate in (0, model.num_rates - 1):
    out = encode(kodim23, codec_lib.quantizer_id(quantizer), rate, 0)
    size = len(out["container"].numpy())
    estimate = float(out["y_bits"] + out["z_bits"]) / 8
    assert abs(size - estimate) <= 0.01 * estimate + 30, (size, estimate)
    if quantizer == "usq":
      # The entropy models' own (noise-free) rate estimate, as in training.
      _, bpp, _ = model(tf.cast(kodim23[None], tf.float32),
                        tf.constant([rate]), training=False)
      bits = float(bpp[0]) * kodim23.shape[0] * kodim23.shape[1] / 8
      assert abs(size - bits) <= 0.01 * bits + 30, (size, bits)


@pytest.mark.slow
@pytest.mark.parametrize("quantizer", list(codec_lib.QUANTIZERS))
def test_all_kodak_round_trips_bit_exact(shipped, kodak_dir, quantizer):
  """Benchmark-size: every Kodak image, decode gives the encoder's y_hat."""
  _, codec, encode, _ = shipped
  decode = tf.function(codec.decode,
                       input_signature=[tf.TensorSpec([], tf.string)])
  for name in sorted(os.listdir(kodak_dir)):
    image = image_io.read_image(os.path.join(kodak_dir, name))
    out = encode(image, codec_lib.quantizer_id(quantizer), 3., 0)
    back = decode(out["container"])
    np.testing.assert_array_equal(out["y_hat"].numpy(), back["y_hat"].numpy(),
                                  err_msg=name)


# Measured once per exported version: `compress` (default quantizer and rate)
# on testdata/kodim23.png -> (bpp, PSNR dB). Update when re-exporting.
EXPECTED = {"mbt2018-mean-vr": (0.3648, 37.02)}


@pytest.mark.parametrize("name", MODELS)
def test_default_compress_matches_measured_rd(name, kodim23):
  from tfc_lic import metrics  # pylint: disable=g-import-not-at-top
  model = _loaded(name)
  stream = model.signatures["compress"](image=tf.constant(kodim23))["stream"]
  image = model.signatures["decompress"](stream=stream)["image"].numpy()
  bpp = metrics.bpp(len(stream.numpy()), *kodim23.shape[:2])
  expected_bpp, expected_psnr = EXPECTED[name]
  assert abs(bpp - expected_bpp) < 0.01, bpp
  assert abs(metrics.psnr(kodim23, image) - expected_psnr) < 0.1


# Real cost bpp + c·λ·MSE (coded size, decoded image) of a 256² kodim23 crop
# at rate 2, plain and with 30 refinement steps, c the export's λ scale:
# measured once with v19 (v18's weights: stage 1 at 139,029 steps, c = 0.5,
# first step 0.005 for USQ and 0.01 for TCQ-8; the rANS coder), -2.7 % for
# USQ, -4.2 % for TCQ-8 (v18, tfc's coder: -2.8 % and -4.5 %; v17: -3.2 % and
# -4.1 %; v16: -2.8 % and -5.3 %; v15, 0.005 for both: -3.3 % and -3.8 %).
REFINEMENT_COST = {"usq": (0.3369, 0.3279), "tcq8": (0.3570, 0.3420)}


def _refinement_cost(shipped, crop, quantizer, steps):
  """Real cost bpp + c·λ·MSE (coded size, decoded image) at rate 2, with
  the export's λ scale c for the quantizer (what refinement minimizes)."""
  model, codec, _, info = shipped
  stream = codec.compress_refined(
      crop, codec_lib.quantizer_id(quantizer), 2.,
      info["delta_indexes"][quantizer], steps).numpy()
  decoded = codec.decompress(tf.constant(stream)).numpy()
  mse = np.mean(np.square(decoded.astype(np.float64) - crop))
  return len(stream) * 8 / crop.shape[0] / crop.shape[1] + (
      info["refine_lambda_scales"][quantizer] * model.lmbdas[2] * mse)


@pytest.mark.parametrize("quantizer", sorted(REFINEMENT_COST))
def test_refinement_selects_by_the_real_cost(shipped, kodim23, quantizer):
  """The coded cost by which refinement keeps an iterate is the stream's."""
  model, codec, _, info = shipped
  crop = kodim23[128:384, 256:512]
  transforms = codec.transforms
  x = tf.cast(crop, tf.float32)[None]
  y, z = model.analyze(x, 2.)
  _, coded = refinement.relaxed_loss(
      model, transforms.side_model.quantize,
      transforms.latent_codecs[codec_lib.quantizer_id(quantizer)], x, y, z,
      2., info["delta_indexes"][quantizer],
      model.synthesis_for(quantizer), 0,
      info["refine_lambda_scales"][quantizer])
  assert float(coded) == pytest.approx(
      _refinement_cost(shipped, crop, quantizer, 0), rel=0.01)


@pytest.mark.parametrize("quantizer", sorted(REFINEMENT_COST))
def test_refinement_lowers_the_rd_cost(shipped, kodim23, quantizer):
  crop = kodim23[128:384, 256:512]
  plain, refined = (_refinement_cost(shipped, crop, quantizer, steps)
                    for steps in (0, 30))
  assert refined < 0.99 * plain
  expected_plain, expected_refined = REFINEMENT_COST[quantizer]
  assert plain == pytest.approx(expected_plain, rel=0.005)
  assert refined == pytest.approx(expected_refined, rel=0.005)


@pytest.mark.slow  # 56 s; test_cli runs the binaries, test_serving refines
def test_compress_binary_refines_on_request(tmp_path, kodim23):
  """--refine_steps: a stream the plain decoder reads; bad values are a
  one-line error that writes nothing."""
  source = tmp_path / "crop.png"
  Image.fromarray(kodim23[:128, :160]).save(source)
  run = lambda *flags: subprocess.run(
      [sys.executable, "bin/compress.py", f"--input={source}", *flags],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
      text=True, timeout=600)
  refused = run("--refine_steps=-1", f"--output={tmp_path / 'bad.tlic'}")
  assert refused.returncode != 0
  assert refused.stderr.strip().splitlines()[-1] == (
      "error: --refine_steps must be in [0, 10000]")
  assert not (tmp_path / "bad.tlic").exists()
  result = run("--refine_steps=5", "--metrics",
               f"--output={tmp_path / 'crop.tlic'}")
  assert result.returncode == 0, result.stderr
  assert "5 refinement steps" in result.stdout
  stream = (tmp_path / "crop.tlic").read_bytes()
  decoded = _loaded(MODELS[0]).signatures[
      "decompress"](stream=tf.constant(stream))["image"].numpy()
  assert decoded.shape == (128, 160, 3)


@pytest.mark.slow  # 140 s on 2 cores; test_serving checks it on the tiny model.
@pytest.mark.parametrize("name", MODELS)
def test_core_model_refines_as_the_library(name, kodim23):
  """The core model's refine carries the export's refinement settings (λ
  scales, learning rates): the client's streams are those of a library
  codec built from its weights and metadata (and differ from those of λ
  unscaled)."""
  model, _, _ = zoo.load_trained(os.path.join(ZOO, name))
  client = zoo.load_core(os.path.join(ZOO, name))
  info = client.info
  crop = kodim23[128:384, 256:512]
  # One codec per setting, each traced once for both quantizers.
  codecs = [codec_lib.ImageCodec(
      model, tcq_lambda=info["tcq_lambda"], refine_lambda_scales=scales,
      refine_learning_rates=info["refine_learning_rates"])
            for scales in (info["refine_lambda_scales"],
                           {q: 1. for q in codec_lib.QUANTIZERS})]
  for quantizer in ("usq", "tcq8"):
    options = (codec_lib.quantizer_id(quantizer), 2.,
               info["delta_indexes"][quantizer], 10)
    stream = client.compress(crop, quantizer, *options[1:])
    same, unscaled = (codec.compress_refined(crop, *options).numpy()
                      for codec in codecs)
    assert stream == same
    assert stream != unscaled
