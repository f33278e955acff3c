"""Input pipelines: crops of local folders, their flips and random downscale,
and the seeded pipeline's reproducibility."""

import numpy as np
from PIL import Image
import pytest

from tfc_lic import data


def _write(folder, name, array):
  folder.mkdir(exist_ok=True)
  Image.fromarray(array).save(folder / name)


@pytest.fixture
def stripes(tmp_path):
  """A 200x300 image of 1-pixel stripes (0/255) and a 64x64 one."""
  row = np.where(np.arange(300) % 2, 255, 0).astype(np.uint8)
  _write(tmp_path / "images", "stripes.png",
         np.repeat(np.repeat(row[None, :, None], 200, 0), 3, 2))
  _write(tmp_path / "images", "small.png", np.full((64, 64, 3), 7, np.uint8))
  return str(tmp_path / "images")


def _batches(spec, count, **kwargs):
  dataset = data.crops(spec, 64, 8, **kwargs)
  return [b.numpy() for b, _ in zip(dataset, range(count))]


def test_training_crops_are_full_resolution_by_default(stripes):
  for batch in _batches(stripes, 4, seed=1):
    assert batch.shape == (8, 64, 64, 3)
    stripes_only = batch[batch.std(axis=(1, 2, 3)) > 1]
    assert stripes_only.size  # the 64x64 image gives flat crops
    assert set(np.unique(stripes_only)) == {0., 255.}


def test_downscaled_crops_are_blurred_8bit_patches(stripes):
  batches = _batches(stripes, 4, seed=1, max_downscale=3.)
  crops = np.concatenate(batches)
  assert crops.shape[1:] == (64, 64, 3)
  np.testing.assert_array_equal(crops, np.round(crops))
  assert crops.min() >= 0 and crops.max() <= 255
  stripes_only = crops[crops.std(axis=(1, 2, 3)) > 1]
  # Antialiased downscaling averages neighbouring stripes towards 127.5.
  assert np.abs(stripes_only - 127.5).mean() < 0.8 * 127.5
  # The image smaller than 3x the patch (and the one equal to it) still
  # crops: the downscale is bounded by the image.
  flat = crops[crops.std(axis=(1, 2, 3)) <= 1]
  np.testing.assert_array_equal(flat, 7.)


def test_seeded_crops_repeat(stripes):
  first = _batches(stripes, 3, seed=5, max_downscale=2.)
  second = _batches(stripes, 3, seed=5, max_downscale=2.)
  other = _batches(stripes, 3, seed=6, max_downscale=2.)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, c) for a, c in zip(first, other))


def test_validation_takes_central_crops_once(stripes):
  batches = [b.numpy() for b in data.crops(stripes, 64, 8, training=False)]
  assert len(batches) == 1 and batches[0].shape == (2, 64, 64, 3)


def test_whole_images_are_batches_of_one(stripes):
  shapes = sorted(tuple(b.shape) for b in data.whole_images(stripes))
  assert shapes == [(1, 64, 64, 3), (1, 200, 300, 3)]
