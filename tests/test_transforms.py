"""The hyper-synthesis' float64 codec path computes what its layers compute."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic import models


@pytest.mark.parametrize("architecture", sorted(models.ARCHITECTURES))
def test_float64_hyper_synthesis_matches_the_layers(architecture):
  tf.keras.utils.set_random_seed(3)
  model = models.create_model(architecture, lmbdas=[0.01], num_filters=16,
                              latent_channels=24)
  # Trained-like weights: random instead of the initialisers' near-zeros.
  for v in model.hyper_synthesis_transform.trainable_variables:
    v.assign(tf.random.normal(v.shape, stddev=0.1))
  z_hat = tf.round(tf.random.normal([2, 5, 7, 16], stddev=3.))
  synthesis = model.hyper_synthesis_transform
  exact = synthesis.call_float64(z_hat)
  assert exact.dtype == tf.float64
  np.testing.assert_allclose(exact.numpy(), synthesis(z_hat).numpy(),
                             rtol=1e-4, atol=1e-4)
  loc, scale_index = model.hyper_decode(z_hat, [19, 27], exact=True)
  assert loc.dtype == scale_index.dtype == tf.float32
  assert scale_index.shape == [2, 19, 27, 24]
