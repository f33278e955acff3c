"""Uniform scalar quantization around the predicted mean."""

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import models


def step_size(delta_index):
  """Quantizer step Δ = 2**(delta_index / 8) (the scale grid's spacing)."""
  return tf.pow(2., tf.cast(delta_index, tf.float32) / models.SCALES_PER_OCTAVE)


def scale_indexes(scale_index, num_scales):
  """Rounds the hyperprior's continuous scale index to a table row."""
  return tf.cast(tf.round(tf.clip_by_value(
      scale_index, 0., num_scales - 1.)), tf.int32)


def assert_fully_decoded(handle):
  """An op that fails unless the decoder consumed its string exactly."""
  return tf.debugging.assert_equal(
      tfc.entropy_decode_finalize(handle), True,
      message="latent stream does not decode (corrupt or truncated)")


class UniformQuantizer(tf.Module):
  """USQ: k = round((y - μ) / Δ), y_hat = μ + kΔ; all symbols in one pass."""

  bank = 0

  def __init__(self, tables, name="usq"):
    super().__init__(name=name)
    self.tables = tables

  def quantize(self, y, loc, scale_index, delta_index):
    """Returns (indexes k, table ids, y_hat), all shaped like `y`."""
    delta = step_size(delta_index)
    k = tf.cast(tf.round((y - loc) / delta), tf.int32)
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    return k, table, loc + tf.cast(k, tf.float32) * delta

  def coding_order(self, x):
    """Flattens a [B, H, W, M] tensor into the order symbols are coded."""
    return tf.reshape(x, [-1])

  def encode(self, k, table):
    """Range codes indexes `k` with tables `table` into one string."""
    table = self.coding_order(table)
    symbols = self.coding_order(k) - tf.gather(self.tables.offset, table)
    handle = tfc.create_range_encoder([], self.tables.lookup)
    handle = tfc.entropy_encode_index(handle, table, symbols)
    return tfc.entropy_encode_finalize(handle)

  def decode(self, string, loc, scale_index, delta_index):
    """Inverse of quantize + encode: returns (k, y_hat)."""
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    flat = self.coding_order(table)
    handle = tfc.create_range_decoder(string, self.tables.lookup)
    handle, symbols = tfc.entropy_decode_index(
        handle, flat, tf.shape(flat), tf.int32)
    check = assert_fully_decoded(handle)
    k = tf.reshape(symbols + tf.gather(self.tables.offset, flat),
                   tf.shape(table))
    with tf.control_dependencies([check]):
      return k, loc + tf.cast(k, tf.float32) * step_size(delta_index)
