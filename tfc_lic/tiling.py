"""The tile grid: how the codec codes an image of any size in bounded memory.

An image is coded in tiles of TILE x TILE latents (1024 x 1024 px; the last
row and column of tiles take what is left), in raster order. Each transform
runs on one tile plus a halo that covers its receptive field, so a tile's
results equal the whole image's: no seams, and the memory of a transform is
that of one tile. z is coded for the whole image (one string; 1/4096 of the
pixels); the latents of each tile have their own coder string (container),
so that tiles decode independently once z is known. The grid is part of
the format: every encoder and decoder computes the same tiles.

Graph code. The codec runs a row of tiles at a time and keeps three rows
of latents (strips, zero-padded to TILE rows), from which each
transform's window is cut (halos are at most one tile); the analysis and
the synthesis run on parts of a tile (PART): memory holds the image, three
rows of latents and one part's activations.
"""

import math

import tensorflow as tf

TILE = 64   # latents a side
STRIDE = 16  # pixels a latent
Z_STRIDE = 4  # latents a hyper-latent
Z_TILE = TILE // Z_STRIDE  # hyper-latents a side
# Latents a side of the parts of a tile that the analysis and the synthesis
# run on, each with its own halo: their activations at a whole tile's size
# would be the codec's largest (0.45 and 1.1 GB), at a part's a quarter.
PART = TILE // 2


def halo(radius, unit):
  """A halo covering `radius` input positions, in multiples of `unit` (so
  that windows keep the transform's sampling phase)."""
  return math.ceil(radius / unit) * unit


class Grid:
  """The tiles of an image of height x width pixels (int32 tensors); `tile`:
  latents a side (the format's TILE; smaller for a transform that runs in
  parts of a tile)."""

  def __init__(self, height, width, tile=TILE):
    self.tile = tile
    self.height = tf.convert_to_tensor(height, tf.int32)
    self.width = tf.convert_to_tensor(width, tf.int32)
    self.latent_shape = tf.stack([(self.height + STRIDE - 1) // STRIDE,
                                  (self.width + STRIDE - 1) // STRIDE])
    self.z_shape = (self.latent_shape + Z_STRIDE - 1) // Z_STRIDE
    self.shape = (self.latent_shape + tile - 1) // tile  # rows, columns
    self.count = self.shape[0] * self.shape[1]

  def position(self, index):
    """(row, column) of a tile."""
    return tf.stack([index // self.shape[1], index % self.shape[1]])

  def box(self, index):
    """(start [2], size [2]) of a tile in latents, cut at the image's edge."""
    start = self.position(index) * self.tile
    return start, tf.minimum(start + self.tile, self.latent_shape) - start

  def z_box(self, index):
    """The tile's (start, size) in hyper-latents."""
    start, size = self.box(index)
    stop = tf.minimum((start + size + Z_STRIDE - 1) // Z_STRIDE, self.z_shape)
    return start // Z_STRIDE, stop - start // Z_STRIDE

  def pixel_box(self, index):
    """The tile's (start, size) in pixels."""
    start, size = self.box(index)
    stop = tf.minimum((start + size) * STRIDE,
                      tf.stack([self.height, self.width]))
    return start * STRIDE, stop - start * STRIDE

  def pixel_window(self, index, margin):
    """(start, size) of the tile's pixels and `margin` around them."""
    return window(*self.pixel_box(index), margin,
                  tf.stack([self.height, self.width]))

  def latent_window(self, index, margin):
    """(start, size) of the tile's latents and `margin` around them."""
    return window(*self.box(index), margin, self.latent_shape)

  def z_window(self, index, margin):
    """(start, size) of the tile's hyper-latents and `margin` around them."""
    return window(*self.z_box(index), margin, self.z_shape)


def windows(grid, index, halos):
  """(start, size) of each window of tile `index` that a transform reads,
  given the model's halos: pixels for the analysis, latents for the
  hyper-analysis and the synthesis, hyper-latents for the hyper-synthesis."""
  return dict(
      analysis=grid.pixel_window(index, halos["analysis"]),
      hyper_analysis=grid.latent_window(index, halos["hyper_analysis"]),
      hyper_synthesis=grid.z_window(index, halos["hyper_synthesis"]),
      synthesis=grid.latent_window(index, halos["synthesis"]))


def window(start, size, margin, extent):
  """(start, size) of [start - margin, start + size + margin) cut to
  [0, extent)."""
  low = tf.maximum(start - margin, 0)
  return low, tf.minimum(start + size + margin, extent) - low


def crop(x, start, size):
  """x [1, H, W, C] at rows/columns [start, start + size)."""
  return tf.slice(x, tf.concat([[0], start, [0]], 0),
                  tf.concat([[1], size, [-1]], 0))


def map_tiles(fn, count, dtypes):
  """TensorArrays of fn(index) for index in [0, count), one per dtype. One
  tile at a time: memory is one tile's (two entropy-coding loops at a time
  were not faster on 2 cores: 16 Mpx decoded in 23 s against 19 s)."""

  def body(index, arrays):
    return index + 1, [a.write(index, v) for a, v in zip(arrays, fn(index))]

  arrays = [tf.TensorArray(d, size=count, infer_shape=False)
            for d in dtypes]
  _, arrays = tf.while_loop(lambda index, _: index < count, body,
                            (tf.constant(0), arrays), parallel_iterations=1)
  return arrays


def row_strips(fn, grid, row, dtypes):
  """The tiles fn(index) -> [[h, w, C], ...] (one per dtype) of tile row
  `row` side by side: [[h, W, C], ...]."""
  columns = grid.shape[1]
  # Each tile transposed, so that the row joins on axis 0.
  tiles = map_tiles(
      lambda c: [tf.transpose(t, [1, 0, 2]) for t in fn(row * columns + c)],
      columns, dtypes)
  return [tf.transpose(t.concat(), [1, 0, 2]) for t in tiles]


def padded_strips(fn, grid, row, height, width, channels, dtypes):
  """row_strips zero-padded to `height` rows, all zeros for a row outside
  the grid (see block_window); `channels` and `dtypes`: one per output of
  fn."""

  def compute():
    return [tf.pad(s, [[0, height - tf.shape(s)[0]], [0, 0], [0, 0]])
            for s in row_strips(fn, grid, row, dtypes)]

  strips = tf.cond(
      (row >= 0) & (row < grid.shape[0]), compute,
      lambda: [tf.zeros(tf.stack([height, width, c]), d)
               for c, d in zip(channels, dtypes)])
  for strip, c in zip(strips, channels):
    strip.set_shape([height, None, c])
  return strips


def unpad(strip, grid, row, extent):
  """A padded strip of tile row `row` cut to its rows inside [0, extent)
  (none for a row outside the grid)."""
  height = strip.shape[0]
  rows = tf.clip_by_value(extent - row * height, 0, height)
  return strip[:tf.where((row >= 0) & (row < grid.shape[0]), rows, 0)]


def block_window(strips, first_row, start, size):
  """The window (start, size) of consecutive padded strips, the first of
  tile row `first_row`: [1, h, w, C]. Only the window is copied (a block
  of whole strips would be a copy of three rows)."""
  height = strips[0].shape[0]
  pieces = []
  for n, strip in enumerate(strips):
    top = (first_row + n) * height
    low, high = (tf.clip_by_value(edge - top, 0, height)
                 for edge in (start[0], start[0] + size[0]))
    pieces.append(strip[low:high, start[1]:start[1] + size[1]])
  return tf.concat(pieces, 0)[None]


def write_rows(out, top, rows):
  """out [H, W, C] with rows [h, W, C] written from row `top`, in place:
  InplaceUpdate's CPU kernel aliases its input, so an image is assembled
  without a second copy (no other op may read `out`)."""
  return tf.raw_ops.InplaceUpdate(
      x=out, i=top + tf.range(tf.shape(rows)[0]), v=rows)


def assemble(fn, grid, dtype):
  """The tiles fn(index) -> [h, w, C] of a grid (in any unit) joined into
  one [H, W, C]."""
  (rows,) = map_tiles(lambda r: row_strips(lambda i: [fn(i)], grid, r,
                                           [dtype]), grid.shape[0], [dtype])
  return rows.concat()
