"""Training proxies of the models: what the rates and the syntheses see."""

import os
import tempfile

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import coding_passes
from tfc_lic import models
from tests.conftest import smooth_image


def test_mixed_proxy_rounds_for_the_synthesis_and_adds_noise_for_the_rates(
    tiny_model):
  """'mixed' reconstructs from the codec's rounded latents (same distortion as
  evaluation) while its rates, as in the noise proxy, come from noise; the
  straight-through rounding still trains the analysis on the distortion."""
  x = tf.constant(np.stack([smooth_image(64, 64, seed=i) for i in range(2)]),
                  tf.float32)
  rate = tf.constant([0, 1])
  _, bpp_rounded, mse_rounded = tiny_model(x, rate, training=False)
  _, _, mse_noise = tiny_model(x, rate, training=True)
  tiny_model.proxy = "mixed"
  try:
    with tf.GradientTape() as tape:
      _, bpp_mixed, mse_mixed = tiny_model(x, rate, training=True)
      distortion = tf.reduce_sum(mse_mixed)
    gradients = tape.gradient(
        distortion, tiny_model.analysis_transform.trainable_variables)
    _, bpp_mixed_again, mse_mixed_again = tiny_model(x, rate, training=True)
  finally:
    tiny_model.proxy = "noise"
  np.testing.assert_allclose(mse_mixed, mse_rounded, rtol=1e-6)
  np.testing.assert_allclose(mse_mixed_again, mse_rounded, rtol=1e-6)
  assert np.all(np.abs(mse_noise.numpy() - mse_rounded.numpy()) > 1e-3)
  # Fresh noise in every call: the rates differ, from each other and from
  # the rounded latents' rates.
  assert np.all(np.abs(bpp_mixed.numpy() - bpp_mixed_again.numpy()) > 1e-5)
  assert np.all(np.abs(bpp_mixed.numpy() - bpp_rounded.numpy()) > 1e-5)
  assert all(g is not None and float(tf.norm(g)) > 0 for g in gradients)


def test_median_offset_is_the_factorized_priors_median_modulo_one():
  """The fast search finds the base's median (bisection in float64 here) to
  1e-4, and agrees with tfc's own heuristic to the latter's ~1e-3."""
  tf.keras.utils.set_random_seed(7)
  prior = tfc.NoisyDeepFactorized(batch_shape=(16,))
  # Trained-like: medians spread over several units, not all at 0.
  for v in prior.trainable_variables:
    v.assign(v + tf.random.normal(v.shape, stddev=.5))
  low, high = np.full(16, -1e3), np.full(16, 1e3)
  for _ in range(60):
    middle = (low + high) / 2
    below = prior.base.cdf(tf.constant(middle, tf.float32)).numpy() < .5
    low, high = np.where(below, middle, low), np.where(below, high, middle)
  median = (low + high) / 2
  assert np.ptp(median) > 1.
  offset = models.median_offset(prior).numpy()
  assert np.all(np.abs(offset) <= .5)
  wrapped = lambda d: (d + .5) % 1. - .5
  np.testing.assert_allclose(wrapped(offset - median), 0., atol=1e-4)
  heuristic = tfc.distributions.helpers.quantization_offset(prior).numpy()
  np.testing.assert_allclose(wrapped(offset - heuristic), 0., atol=5e-3)


def _tiny(architecture):
  tf.keras.utils.set_random_seed(3)
  return models.create_model(architecture, lmbdas=(0.005, 0.02),
                             num_filters=16, latent_channels=24)


def test_checkerboard_warm_start_begins_where_the_hyperprior_model_was():
  """With the weights of a model without context (its context layers not in
  the checkpoint), the checkerboard model starts with the same loss."""
  base = _tiny("mbt2018-mean")
  checkerboard = _tiny("mbt2018-mean-checkerboard")
  for v in base.trainable_variables:
    v.assign(v + tf.random.normal(v.shape, stddev=.05))
  prefix = tf.train.Checkpoint(model=base).write(
      os.path.join(tempfile.mkdtemp(), "weights"))
  tf.train.Checkpoint(model=checkerboard).read(prefix).expect_partial()
  x = tf.constant(smooth_image(64, 64, seed=5)[None], tf.float32)
  for rate in (0, 1):
    expected = base(x, tf.constant([rate]), training=False)
    actual = checkerboard(x, tf.constant([rate]), training=False)
    np.testing.assert_allclose([float(t) for t in actual],
                               [float(t) for t in expected], rtol=1e-6)


def test_checkerboard_parameters_of_a_pass_see_only_decoded_anchors():
  """Anchors' parameters ignore every latent; the others' parameters change
  with the anchors but not with any non-anchor latent (decodable in two
  passes)."""
  model = _tiny("mbt2018-mean-checkerboard")
  for v in model.context.trainable_variables:  # A context that is not zero.
    v.assign(tf.random.normal(v.shape, stddev=.1))
  hyper = (tf.random.normal([1, 6, 6, 24]), tf.random.normal([1, 6, 6, 24]))
  anchor = coding_passes.checkerboard(6, 6).numpy()
  assert anchor.sum() == 18 and anchor[0, 0, 0, 0] == 1
  latents = tf.random.normal([1, 6, 6, 24]) * 4.
  changed = latents + 3. * (1. - anchor)
  first = model.context_parameters(hyper, latents * anchor)
  second = model.context_parameters(hyper, changed * anchor)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  moved = model.context_parameters(hyper, (latents + 1.) * anchor)
  non_anchor = anchor[..., 0] == 0
  for a, b in zip(first, moved):
    assert np.all(np.abs(a.numpy() - b.numpy())[non_anchor] > 0)
