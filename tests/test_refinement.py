"""Latent refinement: the plain encoder at zero steps, streams that decode
bit-exactly (one tile or several), repeatable encodes, clear refusals. (Its RD gain on the shipped
model: test_zoo.)"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import smooth_image
from tfc_lic import codec as codec_lib
from tfc_lic import refinement
from tfc_lic import tiling
from tfc_lic.latent_codecs import tcq


def refining_encoder(model, **settings):
  """The refining encoder of a codec of `model`, with Adam steps of 0.5 for
  every quantizer: with the default 0.005, no TCQ iterate of the untrained
  tiny model codes cheaper in 16 steps, so TCQ's refined streams would be
  its plain ones."""
  codec = codec_lib.ImageCodec(model, refine_learning_rates={
      q: .5 for q in codec_lib.QUANTIZERS}, **settings)
  return tf.function(codec.encode,
                     input_signature=codec_lib.REFINED_ENCODE_SIGNATURE)


@pytest.fixture(scope="module")
def encode(tiny_model):
  return refining_encoder(tiny_model)


@pytest.fixture(scope="module")
def image():
  return smooth_image(48, 80, seed=3)


def test_zero_steps_is_the_plain_encoder(tiny_codec, encode, image):
  for quantizer in (0, 2):
    plain = tiny_codec.compress(image, quantizer, 1., 0).numpy()
    assert encode(image, quantizer, 1., 0, 0)["container"].numpy() == plain


@pytest.mark.parametrize("quantizer", [0, 1, 2])
def test_refined_stream_decodes_to_the_encoders_latents(
    tiny_codec, encode, image, quantizer):
  plain = encode(image, quantizer, 1., 0, 0)
  out = encode(image, quantizer, 1., 0, 8)
  assert not np.array_equal(out["y"].numpy(), plain["y"].numpy())
  back = tiny_codec.decode(out["container"])
  np.testing.assert_array_equal(back["y_hat"].numpy(), out["y_hat"].numpy())
  np.testing.assert_array_equal(back["k"].numpy(), out["k"].numpy())


def test_encodes_repeat(encode, image):
  first, second = (encode(image, 0, .5, 2, 6)["container"].numpy()
                   for _ in range(2))
  assert first == second


@pytest.mark.parametrize("steps", [-1, refinement.MAX_STEPS + 1])
def test_refuses_steps_out_of_range(encode, image, steps):
  with pytest.raises(tf.errors.InvalidArgumentError, match="0 to 10000 steps"):
    encode(image, 0, 1., 0, steps)


def test_refines_an_image_of_several_tiles_tile_by_tile(tiny_codec, encode):
  """Above one tile, each tile is refined on its own pixels: zero steps is
  still the plain encoder, and the refined stream decodes to its latents."""
  image = smooth_image(40, tiling.TILE * tiling.STRIDE + 40, seed=5)
  plain = tiny_codec.compress(image, 0, 1., 0).numpy()
  assert encode(image, 0, 1., 0, 0)["container"].numpy() == plain
  out = encode(image, 0, 1., 0, 4)
  assert out["container"].numpy() != plain
  back = tiny_codec.decode(out["container"])
  np.testing.assert_array_equal(back["y_hat"].numpy(), out["y_hat"].numpy())
  assert back["image"].shape == image.shape


def test_distortion_goes_through_the_chosen_quantizer(tiny_codec, image):
  """TCQ's loss differs from USQ's by exactly λ times the MSE difference of
  their reconstructions (Viterbi path vs rounding): same rate proxy, and
  the distortion the stream will have."""
  transforms = tiny_codec.transforms
  model, quantize_z = transforms.model, transforms.side_model.quantize
  usq_codec = transforms.latent_codecs[0]
  tcq_codec = next(c for c in transforms.latent_codecs
                   if isinstance(c, tcq.TrellisCodedQuantizer))
  x = tf.cast(image, tf.float32)[None]
  rate, delta_index = 1., 0
  y, z = model.analyze(x, rate)
  loc, scale_index = model.hyper_decode(quantize_z(z), tf.shape(y)[1:3])

  def loss_and_mse(latent_codec):
    loss, _ = refinement.relaxed_loss(
        model, quantize_z, latent_codec, x, y, z, rate, delta_index,
        model.synthesis_transform, 7)
    y_hat = latent_codec.quantize(y, loc, scale_index, delta_index)[2]
    x_hat = model.synthesize(y_hat, rate, tf.shape(x)[1:3])
    return float(loss), float(tf.reduce_mean(tf.square(x - x_hat)))

  (usq_loss, usq_mse), (tcq_loss, tcq_mse) = map(
      loss_and_mse, (usq_codec, tcq_codec))
  assert abs(tcq_mse - usq_mse) > 1.
  assert tcq_loss - usq_loss == pytest.approx(
      float(model.rate_lambda(rate)) * (tcq_mse - usq_mse), rel=1e-3)


def test_keeps_the_analysis_latents_when_every_step_is_worse(
    tiny_codec, image):
  """A step size that wrecks the latents: the coded cost of every iterate is
  above the analysis's, so refine returns the analysis's y and z."""
  transforms = tiny_codec.transforms
  model = transforms.model
  x = tf.cast(image, tf.float32)[None]
  y, z = model.analyze(x, 1.)
  refined_y, refined_z = refinement.refine(
      model, transforms.side_model.quantize, transforms.latent_codecs[0], x,
      y, z, 1., 0, 3, model.synthesis_transform, lambda_scale=1.,
      learning_rate=100.)
  np.testing.assert_array_equal(refined_y.numpy(), y.numpy())
  np.testing.assert_array_equal(refined_z.numpy(), z.numpy())


# 47 s (USQ's as long again); test_lambda_scale_weighs_the_distortion
# checks the scale's cost exactly in the default suite.
@pytest.mark.slow
@pytest.mark.parametrize("quantizer", [2])
def test_a_smaller_lambda_scale_refines_to_fewer_bits(
    tiny_model, tiny_codec, encode, image, quantizer):
  """With λ scaled by 0.1, the refined stream is shorter and its distortion
  higher than with the shipped scale (settings.REFINE_LAMBDA_SCALES)."""
  name = codec_lib.QUANTIZERS[quantizer]
  scaled = refining_encoder(tiny_model, refine_lambda_scales={name: .1})

  def bytes_and_mse(function):
    stream = function(image, quantizer, 1., 0, 16)["container"]
    decoded = tiny_codec.decompress(stream).numpy()
    return len(stream.numpy()), np.mean(
        np.square(decoded.astype(np.float64) - image))

  (full_bytes, full_mse), (scaled_bytes, scaled_mse) = map(
      bytes_and_mse, (encode, scaled))
  assert scaled_bytes < .9 * full_bytes, (scaled_bytes, full_bytes)
  assert scaled_mse > full_mse, (scaled_mse, full_mse)


def test_lambda_scale_weighs_the_distortion(tiny_codec, image):
  """Both costs of relaxed_loss drop by exactly (1 - c)·λ·MSE at scale c."""
  transforms = tiny_codec.transforms
  model, quantize_z = transforms.model, transforms.side_model.quantize
  latent_codec = transforms.latent_codecs[0]
  x = tf.cast(image, tf.float32)[None]
  y, z = model.analyze(x, 1.)
  loc, scale_index = model.hyper_decode(quantize_z(z), tf.shape(y)[1:3])
  y_hat = latent_codec.quantize(y, loc, scale_index, 0)[2]
  mse = float(tf.reduce_mean(tf.square(
      x - model.synthesize(y_hat, 1., tf.shape(x)[1:3]))))
  full, scaled = (np.array(refinement.relaxed_loss(
      model, quantize_z, latent_codec, x, y, z, 1., 0,
      model.synthesis_transform, 7, lambda_scale=c)) for c in (1., .25))
  np.testing.assert_allclose(
      full - scaled, .75 * float(model.rate_lambda(1.)) * mse, rtol=1e-3)


def test_each_quantizer_refines_with_its_learning_rate(tiny_model,
                                                       tiny_codec, image):
  """The codec's per-quantizer first step reaches refine: at 1e-12 TCQ-8's
  iterates are its analysis's latents (the plain stream), at 0.5 USQ's are
  not."""
  codec = codec_lib.ImageCodec(
      tiny_model, refine_learning_rates={"usq": .5, "tcq8": 1e-12})
  for quantizer, refined in ((0, True), (2, False)):
    plain = tiny_codec.compress(image, quantizer, 1., 0).numpy()
    stream = codec.compress_refined(image, quantizer, 1., 0, 16).numpy()
    assert (stream != plain) == refined, quantizer


@pytest.mark.parametrize("setting, values, message", [
    ("refine_lambda_scales", {"jpeg": .5}, "unknown quantizer 'jpeg'"),
    ("refine_lambda_scales", {"tcq8": 0.},
     "refinement's λ scale for tcq8 must be positive, not 0.0"),
    ("refine_lambda_scales", {"usq": float("nan")},
     "must be positive, not nan"),
    ("refine_learning_rates", {"tcq4": -1.},
     "refinement's learning rate for tcq4 must be positive, not -1.0")])
def test_refuses_bad_refinement_settings(tiny_model, setting, values, message):
  with pytest.raises(ValueError, match=message):
    codec_lib.ImageCodec(tiny_model, **{setting: values})
