"""Input pipelines: crops of local folders, their flips and random downscale,
the seeded pipeline's reproducibility, and a TFDS dataset by name (prepared
offline from local files) in the pipeline and in bin/train.py."""

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import file_utils

from tests.conftest import REPO, smooth_image
from tfc_lic import data


def _write(folder, name, array):
  folder.mkdir(parents=True, exist_ok=True)
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


class TfcLicTestImages(tfds.core.GeneratorBasedBuilder,
                       skip_registration=True):
  """PNGs of <manual_dir>/<split>/ as a TFDS dataset.

  Unregistered, like a user's builder that ran elsewhere: readers find the
  prepared files by name in the data dirs, without this code.
  """

  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = "PNG files in <manual_dir>/<split>/."

  def _info(self):
    image = tfds.features.Image(shape=(None, None, 3), encoding_format="png")
    return tfds.core.DatasetInfo(
        builder=self, features=tfds.features.FeaturesDict({"image": image}))

  def _split_generators(self, dl_manager):
    return {split: self._generate_examples(dl_manager.manual_dir / split)
            for split in ("train", "validation")}

  def _generate_examples(self, folder):
    for path in sorted(folder.glob("*.png")):
      yield path.name, {"image": path}


TFDS_NAME = "tfc_lic_test_images"


@pytest.fixture(scope="module")
def tfds_dataset(tmp_path_factory):
  """(data_dir, validation images): TFDS_NAME prepared there, offline.

  Training pixels are even and validation ones odd, to tell the splits apart.
  """
  root = tmp_path_factory.mktemp("tfds")
  sizes = {"train": [(80, 96), (96, 128), (64, 72)],
           "validation": [(80, 96), (72, 64), (100, 90)]}
  images = {}
  for split, shapes in sizes.items():
    images[split] = [smooth_image(h, w, seed=i) & 0xfe | (split != "train")
                     for i, (h, w) in enumerate(shapes)]
    for i, image in enumerate(images[split]):
      _write(root / "images" / split, f"{i}.png", image)
  builder = TfcLicTestImages(data_dir=str(root / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=str(root / "images"), try_download_gcs=False))
  assert builder.name == TFDS_NAME
  return str(root / "data"), images["validation"]


@pytest.fixture
def tfds_loads(tfds_dataset, monkeypatch):
  """The data dir registered for this test; records tfds.load's names."""
  monkeypatch.setattr(file_utils, "_REGISTERED_DATA_DIRS", set())
  tfds.core.add_data_dir(tfds_dataset[0])
  names, real_load = [], tfds.load

  def load(name, **kwargs):
    names.append(name)
    return real_load(name, **kwargs)

  monkeypatch.setattr(tfds, "load", load)
  return names


def test_tfds_training_crops(tfds_loads):
  assert not data.is_local(TFDS_NAME)
  batches = _batches(TFDS_NAME, 3, seed=1)
  assert tfds_loads == [TFDS_NAME]
  for batch in batches:
    assert batch.dtype == np.float32 and batch.shape == (8, 64, 64, 3)
    assert batch.min() >= 0 and batch.max() <= 255
    np.testing.assert_array_equal(batch % 2, 0)  # all from "train"


def test_tfds_validation_takes_each_central_crop_once(tfds_dataset,
                                                      tfds_loads):
  batches = [b.numpy() for b in data.crops(
      TFDS_NAME, 64, 2, training=False, split="validation")]
  assert [b.shape[0] for b in batches] == [2, 1]
  central = [tf.image.resize_with_crop_or_pad(x, 64, 64).numpy()
             for x in tfds_dataset[1]]
  assert (sorted(c.astype(np.uint8).tobytes() for c in np.concatenate(batches))
          == sorted(c.tobytes() for c in central))


@pytest.mark.slow  # 57 s; the folder and tfds readers are tested above
def test_train_binary_reads_a_prepared_tfds_dataset(tfds_dataset, tmp_path):
  """bin/train.py finds it by name in TFDS_DATA_DIR, without the builder."""
  train_dir = str(tmp_path / "run")
  done = subprocess.run(
      [sys.executable, "bin/train.py", "--flagfile=configs/tiny-test.cfg",
       f"--train_dir={train_dir}", f"--dataset={TFDS_NAME}",
       f"--validation={TFDS_NAME}", "--steps=2", "--log_every=1"],
      cwd=REPO, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=REPO, TFDS_DATA_DIR=tfds_dataset[0]))
  assert done.returncode == 0, done.stdout + done.stderr
  history = [json.loads(l) for l in open(
      os.path.join(train_dir, "history.jsonl"))]
  recorded = [(l["kind"], l["step"]) for l in history]
  assert ("train", 2) in recorded and ("validation", 2) in recorded
  assert tf.train.latest_checkpoint(
      os.path.join(train_dir, "checkpoints")).endswith("-2")
