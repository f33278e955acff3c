"""Uniform scalar quantization around the predicted mean."""

import tensorflow as tf

from tfc_lic import index_coder
from tfc_lic import scale_grid


def scale_indexes(scale_index, num_scales):
  """Rounds the hyperprior's continuous scale index to a table row."""
  return tf.cast(tf.round(tf.clip_by_value(
      scale_index, 0., num_scales - 1.)), tf.int32)


class LatentCodec(tf.Module):
  """Quantizes y around the predicted mean and entropy codes the indexes.

  Subclasses define `quantize`, `coding_order` and `read`. The codec codes
  several groups of latents (the passes of a context model) into one
  string, so a codec gives its indexes in coding order (`symbols`) and
  reads at a cursor of an index_coder.IndexCoder, not owning either.
  """

  def __init__(self, tables, name=None):
    super().__init__(name=name)
    self.tables = tables

  def symbols(self, k, table):
    """(indexes, table ids) [N] in the order they are coded."""
    return (tf.reshape(self.coding_order(k), [-1]),
            tf.reshape(self.coding_order(table), [-1]))


class UniformQuantizer(LatentCodec):
  """USQ: k = round((y - μ) / Δ), y_hat = μ + kΔ, each latent on its own."""

  bank = 0

  def __init__(self, tables, name="usq"):
    super().__init__(tables, name=name)

  def quantize(self, y, loc, scale_index, delta_index):
    """Returns (indexes k, table ids, y_hat), all shaped like `y`."""
    delta = scale_grid.step_size(delta_index)
    k = tf.cast(tf.round(tf.clip_by_value(
        (y - loc) / delta, -index_coder.MAX_INDEX, index_coder.MAX_INDEX)),
                tf.int32)
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    return k, table, loc + tf.cast(k, tf.float32) * delta

  def coding_order(self, x):
    """Flattens a [B, H, W, M] tensor into the order symbols are coded."""
    return tf.reshape(x, [-1])

  def read(self, coder, cursor, loc, scale_index, delta_index):
    """Inverse of quantize + symbols at a cursor of `coder`:
    (cursor, k, y_hat)."""
    table = self.tables.table_index(
        self.bank, scale_indexes(scale_index, self.tables.num_scales),
        delta_index)
    cursor, k, _ = coder.decode(cursor, self.coding_order(table))
    k = tf.reshape(k, tf.shape(table))
    return cursor, k, loc + tf.cast(k, tf.float32) * scale_grid.step_size(
        delta_index)
