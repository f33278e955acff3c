"""The tile grid: how the codec codes an image of any size in bounded memory.

An image is coded in tiles of TILE x TILE latents (1024 x 1024 px; the last
row and column of tiles take what is left), in raster order. Each transform
runs on one tile plus a halo that covers its receptive field, so a tile's
results equal the whole image's: no seams, and the memory of a transform is
that of one tile. z is coded for the whole image (one string; 1/4096 of the
pixels); the latents of each tile have their own coder string (container),
so that tiles decode independently once z is known. The grid is part of
the format: every encoder and decoder computes the same tiles.

Graph code; tiles are held padded to TILE x TILE (zeros beyond the image)
in TensorArrays, and a transform's window is cut from the 3 x 3 tiles
around its tile (halos are at most one tile).
"""

import math

import tensorflow as tf

TILE = 64   # latents a side
STRIDE = 16  # pixels a latent
Z_STRIDE = 4  # latents a hyper-latent


def halo(radius, unit):
  """A halo covering `radius` input positions, in multiples of `unit` (so
  that windows keep the transform's sampling phase)."""
  return math.ceil(radius / unit) * unit


class Grid:
  """The tiles of an image of height x width pixels (int32 tensors)."""

  def __init__(self, height, width):
    self.height = tf.convert_to_tensor(height, tf.int32)
    self.width = tf.convert_to_tensor(width, tf.int32)
    self.latent_shape = tf.stack([(self.height + STRIDE - 1) // STRIDE,
                                  (self.width + STRIDE - 1) // STRIDE])
    self.z_shape = (self.latent_shape + Z_STRIDE - 1) // Z_STRIDE
    self.shape = (self.latent_shape + TILE - 1) // TILE  # rows, columns
    self.count = self.shape[0] * self.shape[1]

  def position(self, index):
    """(row, column) of a tile."""
    return tf.stack([index // self.shape[1], index % self.shape[1]])

  def box(self, index):
    """(start [2], size [2]) of a tile in latents, cut at the image's edge."""
    start = self.position(index) * TILE
    return start, tf.minimum(start + TILE, self.latent_shape) - start

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


def pad(x):
  """A tile's x [1, h, w, C] zero-padded to [TILE, TILE, C]."""
  shape = tf.shape(x)
  return tf.pad(x[0], [[0, TILE - shape[1]], [0, TILE - shape[2]], [0, 0]])


def map_tiles(fn, count, dtypes):
  """TensorArrays of fn(index) for index in [0, count), one per dtype. One
  tile at a time: memory is one tile's (two entropy-coding loops at a time
  were not faster on 2 cores: 16 Mpx decoded in 23 s against 19 s)."""

  def body(index, arrays):
    return index + 1, [a.write(index, v) for a, v in zip(arrays, fn(index))]

  arrays = [tf.TensorArray(d, size=count, infer_shape=False,
                           clear_after_read=False) for d in dtypes]
  _, arrays = tf.while_loop(lambda index, _: index < count, body,
                            (tf.constant(0), arrays), parallel_iterations=1)
  return arrays


def assemble(fn, grid, dtype):
  """The tiles fn(index) -> [h, w, C] (a tile's box, in any unit) joined
  into one [H, W, C], a row of tiles at a time."""

  def row(r):
    columns = grid.shape[1]
    # Each tile transposed, so that the row joins on axis 0.
    (tiles,) = map_tiles(
        lambda c: [tf.transpose(fn(r * columns + c), [1, 0, 2])], columns,
        [dtype])
    return [tf.transpose(tiles.concat(), [1, 0, 2])]

  (rows,) = map_tiles(row, grid.shape[0], [dtype])
  return rows.concat()


def join(tiles, grid):
  """A TensorArray of padded latent tiles as one [1, h, w, C]."""
  return assemble(lambda i: crop(tiles.read(i)[None], [0, 0],
                                 grid.box(i)[1])[0], grid, tiles.dtype)[None]


def neighbourhood(tiles, grid, index):
  """The 3 x 3 padded tiles around tile `index` of a TensorArray, zeros
  beyond the grid: ([1, 3 TILE, 3 TILE, C], its origin [2] in latents)."""
  position = grid.position(index)
  rows = []
  for dr in (-1, 0, 1):
    row = []
    for dc in (-1, 0, 1):
      at = position + [dr, dc]
      inside = tf.reduce_all((at >= 0) & (at < grid.shape))
      clamped = tf.clip_by_value(at, 0, grid.shape - 1)
      value = tiles.read(clamped[0] * grid.shape[1] + clamped[1])
      row.append(tf.where(inside, value, tf.zeros_like(value)))
    rows.append(tf.concat(row, 1))
  return tf.concat(rows, 0)[None], (position - 1) * TILE


def latent_window(tiles, grid, index, margin):
  """The latents of grid.latent_window(index, margin), cut from a
  TensorArray of padded tiles: [1, h, w, C]."""
  block, origin = neighbourhood(tiles, grid, index)
  low, length = grid.latent_window(index, margin)
  return crop(block, low - origin, length)


def split(x, grid):
  """Latents [1, h, w, C] as a TensorArray of padded tiles."""
  return map_tiles(lambda i: [pad(crop(x, *grid.box(i)))], grid.count,
                   [x.dtype])[0]
