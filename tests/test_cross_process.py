"""Streams decode to the same pixels in other processes: other thread counts
and other convolution kernels (the shipped models, one subprocess each).

Its own file (not test_zoo's) so that the parallel suite schedules it beside
the zoo's other checks rather than after them."""

import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from tests.test_zoo import MODELS, ZOO
from tfc_lic import image_io
from tfc_lic import zoo

CROSS_PROCESS = """
import sys, numpy as np, tensorflow as tf
threads = int(sys.argv[3])
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
from PIL import Image
model = tf.saved_model.load(sys.argv[1])
out, mode, rate = sys.argv[4], sys.argv[5], float(sys.argv[6])
for i, path in enumerate(sys.argv[2].split(",")):
  for q in (0, 1, 2):
    name = f"{out}/{i}-{q}"
    if mode == "encode":
      image = np.asarray(Image.open(path).convert("RGB"))
      stream = model.signatures["compress_with_options"](
          image=tf.constant(image), quantizer=tf.constant(q),
          rate=tf.constant(rate), delta_index=tf.constant(0))["stream"]
      open(f"{name}.tlic", "wb").write(stream.numpy())
    stream = open(f"{name}.tlic", "rb").read()
    image = model.signatures["decompress"](stream=tf.constant(stream))["image"]
    np.save(f"{name}-{mode}.npy", image.numpy())
"""


def _encode_then_decode(name, images, rate, tmp_path, encoder, decoders):
  """Encodes in one process, decodes in others; each process is a dict of
  environment changes (and "threads"). Returns, per decoder label, a list of
  (image decoded by the encoder, image decoded by that decoder)."""
  path = zoo.resolve(os.path.join(ZOO, name))
  for mode, settings in (("encode", encoder), *decoders.items()):
    settings = dict(settings)
    threads = settings.pop("threads", 0)
    result = subprocess.run(
        [sys.executable, "-c", CROSS_PROCESS, path, ",".join(images),
         str(threads), str(tmp_path), mode, str(rate)],
        capture_output=True, text=True, timeout=900,
        env=dict(os.environ, **settings))
    assert result.returncode == 0, result.stderr[-3000:]
  load = lambda i, q, mode: np.load(tmp_path / f"{i}-{q}-{mode}.npy").astype(
      int)
  return {label: [(load(i, q, "encode"), load(i, q, label))
                  for i in range(len(images)) for q in range(3)]
          for label in decoders}


@pytest.mark.parametrize("name", MODELS)
def test_streams_decode_across_processes_threads_and_kernels(name, kodak_dir,
                                                             tmp_path):
  """Encoded by one process (oneDNN, 1 thread), decoded by two others; an
  image of one tile and one of two.

  With oneDNN (TF's default on AVX512 CPUs; the binaries set
  TF_ENABLE_ONEDNN_OPTS=1 elsewhere) and 2 threads: pixel for pixel. With
  Eigen's kernels, as on another machine or TF build: their float32 sums
  differ by ~1e-4, and before the codec ran the hyper-synthesis in float64
  that picked other coding tables for a few latents of both images, and
  decoding failed. Now the latents decode identically (a desynchronised
  entropy decoder would garble the image); Eigen's thread-dependent sums may
  round a few synthesised pixels the other way.
  """
  # The top halves of kodim04, and of kodim01 beside its mirror image: two
  # tiles (1024 + 512 px). Halves: the test's three processes take half
  # as long (it was the suite's slowest).
  paths = []
  for kodim, cut in (("kodim04", lambda x: x),
                     ("kodim01", lambda x: np.concatenate([x, x[:, ::-1]],
                                                          1))):
    image = image_io.read_image(os.path.join(kodak_dir, kodim + ".png"))
    paths.append(os.path.join(tmp_path, kodim + ".png"))
    Image.fromarray(cut(image[:image.shape[0] // 2])).save(paths[-1])
  decoded = _encode_then_decode(
      name, paths, 5., tmp_path, dict(TF_ENABLE_ONEDNN_OPTS="1", threads=1),
      {"onednn": dict(TF_ENABLE_ONEDNN_OPTS="1", threads=2),
       "eigen": dict(TF_ENABLE_ONEDNN_OPTS="0", threads=2)})
  for encoder_side, decoder_side in decoded["onednn"]:
    np.testing.assert_array_equal(encoder_side, decoder_side)
  for encoder_side, decoder_side in decoded["eigen"]:
    assert np.abs(encoder_side - decoder_side).max() <= 1
    assert np.mean(encoder_side != decoder_side) < 1e-3
