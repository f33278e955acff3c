"""The tile grid: how the codec codes an image of any size in bounded memory.

An image is coded in tiles of TILE x TILE latents (1024 x 1024 px; the last
row and column of tiles take what is left), in raster order. Each transform
runs on one tile plus a halo that covers its receptive field, so a tile's
results equal the whole image's: no seams, and the memory of a transform is
that of one tile. z is coded for the whole image (one string; 1/4096 of the
pixels); the latents of each tile have their own coder string (container),
so that tiles decode independently once z is known. The grid is part of
the format: every encoder and decoder computes the same tiles.

Graph code. The codec runs band by band (Band: BAND tile columns with a
tile of margin on each side) and in a band a row of tiles at a time,
keeping three rows of latents (strips, zero-padded to TILE rows), from
which each transform's window is cut; the analysis and the synthesis run
on parts of a tile (PART). Results are written tile by tile into their
buffers in place (fill). Memory holds the image, three rows of a band's
latents and one part's activations, whatever the image's width or height.
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
# Part of the format in effect: with sixteenths (0.18 GB less when
# decoding) the synthesis rounded 55 of 2.3M pixels of a mosaic 1 apart.
PART = TILE // 2
# Tile columns coded together (see Band): memory grows with a band's width,
# not the image's. Not part of the format (streams do not depend on it).
BAND = 16


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

  def bands(self, columns=BAND):
    """How many bands of `columns` tile columns cover the grid."""
    return (self.shape[1] + columns - 1) // columns

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


class Band:
  """Tile columns [first, stop) of a grid, coded together, a row of tiles at
  a time. Its strips also hold the tile on each side (`held`), whose
  hyper-latents (and, when refining, their refinement) the tiles at the
  band's edge need, and the latent strips PART latents more, those tiles'
  hyper-analysis halo; so a band computes what the whole image would."""

  def __init__(self, grid, index, columns=BAND):
    self.grid = grid
    self.first = index * columns
    self.stop = tf.minimum(self.first + columns, grid.shape[1])
    self.held_first = tf.maximum(self.first - 1, 0)
    self.held_stop = tf.minimum(self.stop + 1, grid.shape[1])
    # The strips' columns: latents [start, start + width), hyper-latents
    # [z_start, z_start + z_width).
    self.start = tf.maximum(self.held_first * TILE - PART, 0)
    self.width = tf.minimum(self.held_stop * TILE + PART,
                            grid.latent_shape[1]) - self.start
    self.z_start = self.held_first * Z_TILE
    self.z_width = tf.minimum(self.held_stop * Z_TILE,
                              grid.z_shape[1]) - self.z_start

  def _tiles(self, row, first, stop):
    inside = (row >= 0) & (row < self.grid.shape[0])
    begin = row * self.grid.shape[1] + first
    return begin, tf.where(inside, begin + stop - first, begin)

  def coded(self, row):
    """[first, stop) tile indexes the band codes in tile row `row` (none
    outside the grid)."""
    return self._tiles(row, self.first, self.stop)

  def held(self, row):
    """[first, stop) tile indexes the band's strips hold in row `row`."""
    return self._tiles(row, self.held_first, self.held_stop)

  def strip_start(self, index):
    """Where tile `index`'s latents start in the band's strips."""
    return self.grid.box(index)[0] - tf.stack([self.grid.position(index)[0]
                                               * TILE, self.start])

  def z_strip_start(self, index):
    """Where tile `index`'s hyper-latents start in the band's z strips."""
    return self.grid.z_box(index)[0] - tf.stack([
        self.grid.position(index)[0] * Z_TILE, self.z_start])


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


def zeros(height, width, channels, dtype):
  """A zero buffer [height, width, channels] for `fill` and `write_block`."""
  return tf.raw_ops.Empty(shape=tf.stack([height, width, channels]),
                          dtype=dtype, init=True)


def write_block(out, start, block):
  """out [H, W, C] with block [h, w, C] written from (row, column) `start`.
  In place: TensorStridedSliceUpdate reuses its input's buffer when no
  other op holds it (else it copies), so buffers are filled without copies
  of the whole."""
  stop = start + tf.shape(block)[:2]
  return tf.raw_ops.TensorStridedSliceUpdate(
      input=out, begin=tf.concat([start, [0]], 0),
      end=tf.concat([stop, tf.shape(out)[2:]], 0), strides=[1, 1, 1],
      value=block)


def fill(buffers, fn, first, stop):
  """`buffers` with, for each index in [first, stop), the blocks fn(index)
  -> [(start [2], block) or None (nothing), ...] (one per buffer) written;
  one index at a time, so memory is one index's (two entropy-coding loops at a time were
  not faster on 2 cores: 16 Mpx decoded in 23 s against 19 s)."""

  def body(index, buffers):
    return index + 1, [b if w is None else write_block(b, *w)
                       for b, w in zip(buffers, fn(index))]

  _, buffers = tf.while_loop(lambda index, _: index < stop, body,
                             (first, list(buffers)), parallel_iterations=1)
  return buffers


def block_window(strips, first_row, first_column, start, size):
  """The window (start, size) of consecutive strips, the first of tile row
  `first_row`, each holding the columns from `first_column`: [1, h, w, C].
  Only the window is copied (a block of whole strips would be a copy of
  three rows)."""
  height = strips[0].shape[0]
  left = start[1] - first_column
  pieces = []
  for n, strip in enumerate(strips):
    top = (first_row + n) * height
    low, high = (tf.clip_by_value(edge - top, 0, height)
                 for edge in (start[0], start[0] + size[0]))
    pieces.append(strip[low:high, left:left + size[1]])
  return tf.concat(pieces, 0)[None]
