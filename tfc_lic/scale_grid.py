"""The octave scale grid that the entropy model, its coding tables and the
quantizers' steps share.

Gaussian scales are σ_i = scale_min * 2**(i/8) and steps Δ = 2**(j/8), so a
step is a shift of the scale index by j and one set of coding tables serves
every step size.
"""

import math

import tensorflow as tf

SCALES_PER_OCTAVE = 8


def scale_fn(scale_min):
  """Maps scale index i to a Gaussian scale: scale_min * 2**(i / 8)."""
  log_min = math.log(scale_min)
  factor = math.log(2.) / SCALES_PER_OCTAVE
  return lambda i: tf.math.exp(log_min + factor * i)


def step_size(delta_index):
  """Quantizer step Δ = 2**(delta_index / 8)."""
  return tf.pow(2., tf.cast(delta_index, tf.float32) / SCALES_PER_OCTAVE)
