"""The order in which the codec codes the latent positions: its passes.

A model without context codes all positions in one pass ("raster"). With a
checkerboard context the anchors (row + column even) come first, then the
others, whose entropy parameters depend on the decoded anchors. Each pass
lists its positions in raster order; the codec gathers the pass's latents
as a [B, 1, N, M] tensor, so a latent codec sees one group of positions at
a time, and all passes go through one range coder.
"""

import tensorflow as tf

SCHEMES = ("raster", "checkerboard")


def checkerboard(height, width):
  """1.0 at the anchors (row + column even), 0.0 elsewhere: [1, H, W, 1]."""
  rows = tf.range(height)[:, None]
  columns = tf.range(width)[None, :]
  anchors = tf.equal((rows + columns) % 2, 0)
  return tf.cast(anchors, tf.float32)[None, :, :, None]


def positions(scheme, height, width):
  """The [N, 2] (row, column) indexes of each pass, in coding order."""
  if scheme == "raster":
    return [tf.where(tf.ones([height, width], tf.bool))]
  if scheme == "checkerboard":
    anchors = checkerboard(height, width)[0, :, :, 0] > 0.
    return [tf.where(anchors), tf.where(tf.logical_not(anchors))]
  raise ValueError(f"unknown coding scheme {scheme!r}; choose from {SCHEMES}")


def gather(x, indexes):
  """[B, H, W, M] -> the positions' [B, 1, N, M] (each example's own)."""
  return tf.transpose(tf.gather_nd(tf.transpose(x, [1, 2, 0, 3]), indexes),
                      [1, 0, 2])[:, None]


def scatter(x, indexes, values):
  """x [B, H, W, M] with the positions set to values [B, 1, N, M]."""
  updated = tf.tensor_scatter_nd_update(
      tf.transpose(x, [1, 2, 0, 3]), indexes,
      tf.transpose(values[:, 0], [1, 0, 2]))
  return tf.transpose(updated, [2, 0, 1, 3])
