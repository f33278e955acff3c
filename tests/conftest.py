"""Shared fixtures: data locations and small models built once per session."""

# Before TensorFlow loads: the binaries' kernels, so that a test's in-process
# results equal what a binary it runs computes (on AVX2-only CPUs TF would
# otherwise pick other kernels here, whose sums round differently).
from tfc_lic import startup  # pylint: disable=unused-import

import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("TFC_LIC_SHARED", os.path.join(REPO, "..", "shared"))
KODAK = os.path.join(SHARED, "data", "kodak")
TRAIN = os.path.join(SHARED, "data", "train")
TESTDATA = os.path.join(REPO, "testdata")
# The slowest files (~100-300 s each on 2 cores, 2026-12-07), run first:
# `make test` hands files to its two workers in collection order, and a
# slow file at the end ran alone while the other worker idled.
SLOWEST_FILES = ("test_zoo.py", "test_training.py", "test_serving.py",
                 "test_cross_process.py", "test_benchmark.py",
                 "test_cross_stack.py", "test_checkerboard.py",
                 "test_finetune.py")


def pytest_collection_modifyitems(items):
  """SLOWEST_FILES first, in that order; the rest as collected."""
  rank = {name: i for i, name in enumerate(SLOWEST_FILES)}
  items.sort(key=lambda item: rank.get(os.path.basename(str(item.fspath)),
                                       len(rank)))


@pytest.fixture(scope="session")
def kodak_dir():
  assert os.path.isdir(KODAK), f"Kodak images expected at {KODAK}"
  return KODAK


@pytest.fixture
def start_training():
  """Starts `bin/train.py` with the given flags, output piped; processes still
  running when the test ends (e.g. it failed) are killed, never left behind."""
  processes = []

  def start(*flags, env=None):
    processes.append(subprocess.Popen(
        [sys.executable, "bin/train.py", *flags], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=REPO, **(env or {})),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return processes[-1]

  yield start
  for process in processes:
    if process.poll() is None:
      process.kill()
    process.communicate()


# An untrained mean-scale model small enough for fast graph tests.
TINY_CONFIG = dict(architecture="mbt2018-mean", lmbdas=[0.01, 0.05],
                   num_filters=16, latent_channels=24)


@pytest.fixture(scope="session")
def tiny_model():
  from tfc_lic import training  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.keras.utils.set_random_seed(1)
  return training.model_from_config(TINY_CONFIG)


@pytest.fixture(scope="session")
def tiny_codec(tiny_model):
  from tfc_lic import codec  # pylint: disable=g-import-not-at-top
  return codec.ImageCodec(tiny_model)


@pytest.fixture(scope="session")
def kodim23():
  from tfc_lic import image_io  # pylint: disable=g-import-not-at-top
  return image_io.read_image(os.path.join(TESTDATA, "kodim23.png"))


def smooth_image(height, width, seed=0):
  """A smooth random RGB image (compresses like a photo, unlike noise)."""
  rng = np.random.default_rng(seed)
  coarse = rng.uniform(0, 255, size=(height // 8 + 2, width // 8 + 2, 3))
  rows = np.linspace(0, coarse.shape[0] - 1.001, height)
  cols = np.linspace(0, coarse.shape[1] - 1.001, width)
  r0, c0 = rows.astype(int), cols.astype(int)
  fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
  image = ((1 - fr) * (1 - fc) * coarse[r0][:, c0] +
           fr * (1 - fc) * coarse[r0 + 1][:, c0] +
           (1 - fr) * fc * coarse[r0][:, c0 + 1] +
           fr * fc * coarse[r0 + 1][:, c0 + 1])
  return np.clip(image, 0, 255).astype(np.uint8)
