"""Uniform scalar quantization around the predicted mean."""

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import scale_grid


def scale_indexes(scale_index, num_scales):
  """Rounds the hyperprior's continuous scale index to a table row."""
  return tf.cast(tf.round(tf.clip_by_value(
      scale_index, 0., num_scales - 1.)), tf.int32)


def assert_fully_decoded(handle):
  """An op that fails unless the decoder consumed its string exactly."""
  return tf.debugging.assert_equal(
      tfc.entropy_decode_finalize(handle), True,
      message="latent stream does not decode (corrupt or truncated)")


class LatentCodec(tf.Module):
  """Quantizes y around the predicted mean and range codes the indexes.

  Subclasses define `quantize`, `write` and `read`. The codec writes and
  reads several groups of latents (the passes of a context model) through
  one range coder, so a codec appends to a coder's handle, not owning it.
  """

  def __init__(self, tables, name=None):
    super().__init__(name=name)
    self.tables = tables


class UniformQuantizer(LatentCodec):
  """USQ: k = round((y - μ) / Δ), y_hat = μ + kΔ, each latent on its own."""

  bank = 0

  def __init__(self, tables, name="usq"):
    super().__init__(tables, name=name)

  def quantize(self, y, loc, scale_index, delta_index):
    """Returns (indexes k, table ids, y_hat), all shaped like `y`."""
    delta = scale_grid.step_size(delta_index)
    k = tf.cast(tf.round((y - loc) / delta), tf.int32)
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    return k, table, loc + tf.cast(k, tf.float32) * delta

  def coding_order(self, x):
    """Flattens a [B, H, W, M] tensor into the order symbols are coded."""
    return tf.reshape(x, [-1])

  def write(self, handle, k, table):
    """Appends indexes `k`, coded with tables `table`, to a range encoder."""
    table = self.coding_order(table)
    symbols = self.coding_order(k) - tf.gather(self.tables.offset, table)
    return tfc.entropy_encode_index(handle, table, symbols)

  def read(self, handle, loc, scale_index, delta_index):
    """Inverse of quantize + write on a range decoder: (handle, k, y_hat)."""
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    flat = self.coding_order(table)
    handle, symbols = tfc.entropy_decode_index(
        handle, flat, tf.shape(flat), tf.int32)
    k = tf.reshape(symbols + tf.gather(self.tables.offset, flat),
                   tf.shape(table))
    return handle, k, loc + tf.cast(k, tf.float32) * scale_grid.step_size(delta_index)
