"""Tiled coding: a tile's results equal the whole image's, multi-tile
streams round-trip bit-exactly, and the tile grid is what the format says."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import smooth_image
from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import tiling

# Multi-tile sizes with edge tiles of 1 latent, odd sizes, a single column.
SHAPES = [(1100, 1300), (1030, 70), (80, 2070)]


@pytest.fixture(scope="module")
def encode(tiny_codec):
  return tf.function(tiny_codec.encode,
                     input_signature=codec_lib.ENCODE_SIGNATURE)


@pytest.fixture(scope="module")
def decode(tiny_codec):
  return tf.function(tiny_codec.decode,
                     input_signature=codec_lib.DECODE_SIGNATURE)


def test_halos_cover_the_transforms_receptive_fields(tiny_codec):
  """From the layers' kernels and strides: 5x5 convolutions, 4 down by 2
  (analysis: 30 px a side), 3x3 + 2 down by 2 (hyper-analysis: 7 latents),
  2 up by 2 + 3x3 (hyper-synthesis), 4 up by 2 (synthesis)."""
  assert tiny_codec.transforms.halos == dict(
      analysis=32, hyper_analysis=8, hyper_synthesis=2, synthesis=2)


def test_grid_boxes_cover_the_image_once():
  grid = tiling.Grid(1100, 1300)  # 69 x 82 latents
  assert grid.shape.numpy().tolist() == [2, 2]
  covered = np.zeros([1100, 1300], int)
  for index in range(int(grid.count)):
    start, size = (t.numpy() for t in grid.pixel_box(index))
    covered[start[0]:start[0] + size[0], start[1]:start[1] + size[1]] += 1
    z_start, z_size = (t.numpy() for t in grid.z_box(index))
    assert (z_start == start // 64).all() and (z_size >= 1).all()
  assert (covered == 1).all()


def test_tiles_equal_the_whole_image(tiny_codec, encode, decode):
  """Latents, hyper-latents, entropy parameters and pixels of a 2 x 2 tile
  image against the transforms run on the whole image (float rounding
  apart)."""
  model = tiny_codec.model
  image = smooth_image(*SHAPES[0])
  rate = tf.constant(1.)
  y, z = model.analyze(tf.cast(image, tf.float32)[None], rate)
  enc = encode(image, 0, rate, 0)
  np.testing.assert_allclose(enc["y"], y, atol=1e-4)
  np.testing.assert_allclose(enc["z"], z, atol=1e-4)
  z_hat = tiny_codec.side_entropy_model.quantize(enc["z"])
  loc, scale_index = model.hyper_decode(z_hat, tf.shape(y)[1:3], exact=True)
  grid = tiling.Grid(*image.shape[:2])
  transforms = tiny_codec.transforms
  tile_parameters = tf.function(
      lambda z_hat, index: transforms.hyperprior(z_hat, grid, index))
  for index in range(int(grid.count)):
    start, size = grid.box(index)
    tile = tile_parameters(z_hat, index)
    for got, whole in zip(tile, (loc, scale_index)):
      np.testing.assert_allclose(got, tiling.crop(whole, start, size),
                                 atol=1e-6)
  dec = decode(enc["container"], container.MAX_PIXELS)
  whole = model.synthesize(dec["y_hat"], rate, image.shape[:2])
  expected = tf.saturate_cast(tf.round(whole[0]), tf.uint8).numpy()
  assert np.abs(dec["image"].numpy().astype(int) - expected).max() <= 1


@pytest.mark.parametrize("quantizer", codec_lib.QUANTIZERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_multi_tile_round_trip_is_bit_exact(encode, decode, quantizer, shape):
  image = smooth_image(*shape)
  enc = encode(image, codec_lib.quantizer_id(quantizer), 1., 0)
  dec = decode(enc["container"], container.MAX_PIXELS)
  np.testing.assert_array_equal(enc["k"], dec["k"])
  np.testing.assert_array_equal(enc["y_hat"], dec["y_hat"])
  assert dec["image"].shape == shape + (3,)


def test_each_tile_has_its_own_string(encode, decode):
  """The header lists one length per tile; a single-tile image keeps the
  29-byte overhead of one z and one y string."""
  small = encode(smooth_image(64, 64), 0, 1., 0)["container"].numpy()
  large = encode(smooth_image(*SHAPES[0]), 0, 1., 0)["container"].numpy()
  fields = decode(large, container.MAX_PIXELS)
  assert fields["y_strings"].shape == (4,)
  lengths = [len(s) for s in fields["y_strings"].numpy()]
  assert container.header_size(4) + len(fields["z_string"].numpy()) + sum(
      lengths) + container.CHECKSUM_SIZE == len(large)
  assert container.header_size(1) + container.CHECKSUM_SIZE == 29
  assert len(decode(small, container.MAX_PIXELS)["y_strings"].numpy()) == 1


def test_swapped_tile_strings_are_refused(encode, decode):
  """Two tiles' strings swapped, lengths and checksum fixed up: the decoder
  fails a string it does not decode exactly, never a wrong picture."""
  from tfc_lic import stream_fuzz  # pylint: disable=g-import-not-at-top
  stream = encode(smooth_image(*SHAPES[0]), 2, 1., 0)["container"].numpy()
  header, z, ys = stream_fuzz.strings(stream[:-container.CHECKSUM_SIZE])
  swapped = stream_fuzz.repack(header, z, [ys[1], ys[0]] + ys[2:])
  with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt stream"):
    decode(swapped, container.MAX_PIXELS)


def test_decode_budget_holds_for_tiled_images(encode, decode):
  stream = encode(smooth_image(*SHAPES[0]), 0, 1., 0)["container"]
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
    decode(stream, 1100 * 1300 - 1)


@pytest.mark.slow
def test_images_above_the_old_limit_round_trip(encode, decode):
  """4100 x 4100 (16.8 Mpx, v19 refused it) and the largest side."""
  for shape in ((4100, 4100), (24, container.MAX_SIDE)):
    image = tf.image.resize(smooth_image(96, 96)[None], shape)[0]
    image = tf.saturate_cast(image, tf.uint8)
    enc = encode(image, 0, 1., 0)
    dec = decode(enc["container"], container.MAX_PIXELS)
    np.testing.assert_array_equal(enc["y_hat"], dec["y_hat"])


def _banded_encode(tiny_model, band_columns):
  banded = codec_lib.ImageCodec(tiny_model, band_columns=band_columns)
  return banded, tf.function(banded.encode,
                             input_signature=codec_lib.ENCODE_SIGNATURE)


# 2 x 3 tiles, coded in bands of one tile column: a band with a margin tile
# on its right, on both sides, on its left.
BANDED_SHAPE = (1100, 2100)


def test_bands_write_the_streams_and_pixels_of_the_whole_width(
    tiny_model, encode, decode):
  """Coding in bands of one tile column (each with a tile of margin on
  either side) writes the stream and decodes the pixels and latents that
  one band of the whole width does."""
  banded, banded_encode = _banded_encode(tiny_model, 1)
  image = smooth_image(*BANDED_SHAPE, seed=3)
  whole, part = encode(image, 2, 1., 0), banded_encode(image, 2, 1., 0)
  for key in ("container", "k", "y_hat", "y", "z"):
    np.testing.assert_array_equal(whole[key], part[key])
  np.testing.assert_allclose(whole["y_bits"], part["y_bits"], rtol=1e-6)
  decoded = [decode(whole["container"], container.MAX_PIXELS),
             banded.decode(whole["container"])]
  for key in ("image", "k", "y_hat"):
    np.testing.assert_array_equal(*(d[key] for d in decoded))


@pytest.mark.slow  # 150 s: two refining encoders traced
def test_bands_refine_as_the_whole_width(tiny_model):
  """The margin tiles' z are refined as their own band refines them."""
  image = smooth_image(*BANDED_SHAPE, seed=3)
  refine = lambda c: c.compress_refined(image, 0, 1., 0, 2).numpy()
  assert refine(codec_lib.ImageCodec(tiny_model, band_columns=1)) == refine(
      codec_lib.ImageCodec(tiny_model))
