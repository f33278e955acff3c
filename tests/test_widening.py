"""Warm starts of a wider model from a narrower one (tfc_lic.widening)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic import models
from tfc_lic import training
from tfc_lic import widening
from tests.conftest import TINY_CONFIG
from tests.conftest import smooth_image

WIDE = dict(TINY_CONFIG, num_filters=24, hyper_filters=16)


def _images():
  return tf.constant(np.stack([smooth_image(64, 64, seed=i) for i in (1, 2)]),
                     tf.float32)


def _saved_run(path, seed):
  """Writes a TINY_CONFIG run's compact weights and config.json to `path`;
  returns a model holding them (float16-rounded, as they were saved)."""
  tf.keras.utils.set_random_seed(seed)
  training.save_compact_weights(training.model_from_config(TINY_CONFIG),
                                path / "weights.npz")
  with open(path / "config.json", "w") as f:
    json.dump(TINY_CONFIG, f)
  reloaded = training.model_from_config(TINY_CONFIG)
  training.load_weights(reloaded, str(path))
  return reloaded


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_widened_model_computes_the_narrow_ones_function(architecture):
  """Same loss, bpp and MSE to the last bit at both rates: every weight that
  reads a new channel starts at zero; the new channels' own kernels are not
  zero, and the weights reading them get gradients, so they can learn."""
  tf.keras.utils.set_random_seed(2)
  narrow = training.model_from_config(dict(TINY_CONFIG,
                                           architecture=architecture))
  wide = training.model_from_config(dict(WIDE, architecture=architecture))
  widening.widen(wide, narrow)
  x, rate = _images(), tf.constant([0, 1])
  for expected, actual in zip(narrow(x, rate), wide(x, rate)):
    np.testing.assert_array_equal(expected, actual)
  reading = wide.synthesis_transform.get_layer("layer_1").kernel
  with tf.GradientTape() as tape:
    loss, _, _ = wide(x, rate, training=True)
  gradient = tape.gradient(loss, reading)[..., 16:]  # [h, w, out, in]
  assert not np.any(reading.numpy()[..., 16:])
  assert float(tf.norm(gradient)) > 0
  assert np.any(wide.synthesis_transform.get_layer("layer_0").kernel.numpy()[
      :, :, 16:, :])


def test_load_weights_widens_a_narrower_runs_weights(tmp_path):
  """A wider model's `load_weights` (hence --init_from / --continue_from)
  takes a narrower run's compact weights via its config.json; a model that
  is narrower than its source, or has other latents, is refused."""
  reloaded = _saved_run(tmp_path, seed=3)
  wide = training.model_from_config(WIDE)
  found = training.load_weights(wide, str(tmp_path))
  assert os.path.basename(found) == "weights.npz"
  x, rate = _images(), tf.constant([1, 0])
  np.testing.assert_array_equal(reloaded(x, rate)[2], wide(x, rate)[2])
  narrower = training.model_from_config(dict(TINY_CONFIG, num_filters=8))
  with pytest.raises(ValueError, match="does not fit"):
    training.load_weights(narrower, str(tmp_path))
  more_latents = training.model_from_config(dict(WIDE, latent_channels=32))
  with pytest.raises(ValueError, match="keeps the latents"):
    training.load_weights(more_latents, str(tmp_path))


def test_load_weights_converts_up_kernels_while_widening(tmp_path):
  """--init_from / --continue_from of a variable-kernel run into a wider
  model with RDFT up-convolution kernels: same function as the source."""
  reloaded = _saved_run(tmp_path, seed=5)
  wide_rdft = training.model_from_config(dict(WIDE, up_kernel="rdft"))
  training.load_weights(wide_rdft, str(tmp_path))
  x, rate = _images(), tf.constant([0, 1])
  for expected, actual in zip(reloaded(x, rate), wide_rdft(x, rate)):
    np.testing.assert_allclose(actual, expected, rtol=2e-5)


def test_widened_codec_codes_the_narrow_ones_latents():
  """The codec of a widened model (main transforms wider than z) codes the
  narrow model's latents, round-trips them bit-exactly and decodes the narrow
  model's image (to a float rounding of the wider sums)."""
  from tfc_lic import codec as codec_lib  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(4)
  narrow = training.model_from_config(TINY_CONFIG)
  wide = training.model_from_config(WIDE)
  widening.widen(wide, narrow)
  image = smooth_image(48, 80, seed=5)
  tcq8 = codec_lib.quantizer_id("tcq8")
  codecs = [codec_lib.ImageCodec(m) for m in (narrow, wide)]
  encoded = [c.encode(image, tcq8, 1., 0) for c in codecs]
  decoded = [c.decode(e["container"]) for c, e in zip(codecs, encoded)]
  np.testing.assert_array_equal(encoded[0]["k"], encoded[1]["k"])
  np.testing.assert_array_equal(decoded[1]["k"], encoded[1]["k"])
  np.testing.assert_allclose(decoded[1]["image"].numpy().astype(int),
                             decoded[0]["image"].numpy().astype(int), atol=1)
