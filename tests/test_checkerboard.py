"""The checkerboard-context model through the codec: two coding passes whose
second depends on the decoded anchors, bit-exact in the full codec and in
the split deployment (client + core-op SavedModel)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import TINY_CONFIG, smooth_image
from tfc_lic import client as client_lib
from tfc_lic import codec as codec_lib
from tfc_lic import coding_passes
from tfc_lic import export
from tfc_lic import rans
from tfc_lic import training

CONFIG = dict(TINY_CONFIG, architecture="mbt2018-mean-checkerboard")


@pytest.fixture(scope="module")
def model():
  """Float16-representable weights (as exports store them) and a context
  that matters: the anchors move the others' parameters."""
  tf.keras.utils.set_random_seed(11)
  model = training.model_from_config(CONFIG)
  for v in model.context.trainable_variables:
    v.assign(tf.random.normal(v.shape, stddev=.05))
  for v in model.variables:
    v.assign(v.numpy().astype(np.float16).astype(v.dtype.as_numpy_dtype))
  return model


@pytest.fixture(scope="module")
def codec(model):
  return codec_lib.ImageCodec(model)


def test_coding_passes_cover_every_position_once():
  for height, width in ((1, 1), (3, 4), (5, 5)):
    passes = [p.numpy() for p in coding_passes.positions(
        "checkerboard", height, width)]
    assert len(passes) == 2
    anchors = {tuple(i) for i in passes[0]}
    others = {tuple(i) for i in passes[1]}
    assert anchors | others == {(r, c) for r in range(height)
                                for c in range(width)}
    assert not anchors & others
    assert all((r + c) % 2 == 0 for r, c in anchors)


@pytest.mark.parametrize("quantizer", codec_lib.QUANTIZERS)
def test_round_trip_is_bit_exact(codec, quantizer):
  image = smooth_image(80, 112, seed=2)
  enc = codec.encode(image, codec_lib.quantizer_id(quantizer), 1., 0)
  dec = codec.decode(enc["container"])
  np.testing.assert_array_equal(enc["k"].numpy(), dec["k"].numpy())
  np.testing.assert_array_equal(enc["y_hat"].numpy(), dec["y_hat"].numpy())
  assert dec["image"].shape == image.shape
  # Both passes share one string: it is about the estimated bits (an
  # untrained model's latents code 6 % above them; the zoo's 1 %, test_zoo)
  # plus the coder's final state and its last word.
  (y_string,) = codec.coder.decode_side(enc["container"])[0][
      "y_strings"].numpy()  # One tile.
  y_bits = 8 * len(y_string)
  assert abs(y_bits - float(enc["y_bits"])) <= 0.1 * float(
      enc["y_bits"]) + rans.STATE_BITS + 16


def test_codec_latents_are_the_models_rounded_latents(model, codec):
  """USQ at Δ = 1 quantizes as validation does: the model's rounded forward
  pass (float32 context) and the codec's (float64) pick the same indexes."""
  image = smooth_image(96, 128, seed=6)
  enc = codec.encode(image, codec_lib.quantizer_id("usq"), 1., 0)
  y, z = model.analyze(tf.cast(image, tf.float32)[None], tf.constant([1.]))
  z_hat = model.side_entropy_model().quantize(z)
  y_tilde, _ = model.latent_bits(
      y, model.hyper_decode(z_hat, tf.shape(y)[1:3]), training=False,
      mixed=False)
  np.testing.assert_allclose(enc["y_hat"].numpy(), y_tilde.numpy(), atol=1e-3)


def test_second_pass_depends_on_the_anchors(model, codec):
  """Zeroing the decoded anchors changes the other half's parameters (so a
  decoder that skipped the first pass could not decode the second)."""
  image = smooth_image(64, 64, seed=8)
  latents = codec.transforms.untiled_latents(
      tf.cast(image, tf.float32)[None], tf.constant([0.]))
  loc, scale_index = latents["loc"], latents["scale_index"]
  _, _, y_hat = codec.transforms.quantize(latents["y"], loc, scale_index, 0, 0)
  anchor = coding_passes.checkerboard(4, 4)
  with_anchors = codec.transforms.pass_parameters(loc, scale_index,
                                                  y_hat * anchor)
  without = codec.transforms.pass_parameters(loc, scale_index,
                                             tf.zeros_like(y_hat))
  others = anchor.numpy()[0, :, :, 0] == 0
  difference = np.abs(with_anchors[0].numpy() - without[0].numpy())[0]
  assert np.all(difference[others].max(axis=-1) > 1e-4)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
  base = str(tmp_path_factory.mktemp("zoo"))
  return export.export_model(model, CONFIG, base, "tiny-checkerboard", 1,
                             metadata={})


@pytest.mark.parametrize("quantizer", ["usq", "tcq8"])
def test_client_streams_equal_full_codec_streams(exported, codec, quantizer):
  client = client_lib.Client(client_lib.saved_model_transport(exported[1]))
  assert client.info["coding_scheme"] == "checkerboard"
  image = smooth_image(56, 72, seed=9)
  stream = client.compress(image, quantizer, rate=0.5, delta_index=0)
  expected = codec.compress(image, codec_lib.quantizer_id(quantizer), 0.5, 0)
  assert stream == expected.numpy()
  np.testing.assert_array_equal(client.decompress(stream),
                                codec.decompress(stream).numpy())
