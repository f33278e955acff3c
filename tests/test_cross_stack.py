"""The shipped SavedModel on the newest TensorFlow (#59): a second venv
(Python 3.12, the newest tensorflow-cpu from the registry, no tfc and no
tfc_lic; `make test` builds it) round-trips Kodak images, writes the same
bytes as this stack (TF 2.14) but where a float32 rounding of the analysis
flips, and decodes either stack's streams to the same pixels."""

import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import KODAK, REPO
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import zoo

NEWEST_TF_PYTHON = os.environ.get(
    "TFC_LIC_NEWEST_TF_PYTHON",
    os.path.join(REPO, ".venv-newest-tf", "bin", "python"))
IMAGES = ("kodim19.png",)
RATES = (0., 5.)

NEWEST = """
import sys, numpy as np, tensorflow as tf
from PIL import Image
model = tf.saved_model.load(sys.argv[1])
folder, images, rates = sys.argv[2], sys.argv[3].split(","), sys.argv[4]
for i, path in enumerate(images):
  image = np.asarray(Image.open(path).convert("RGB"))
  for q in (0, 1, 2):
    for j, rate in enumerate(float(r) for r in rates.split(",")):
      name = f"{folder}/{i}-{q}-{j}"
      stream = model.signatures["compress_with_options"](
          image=tf.constant(image), quantizer=tf.constant(q),
          rate=tf.constant(rate), delta_index=tf.constant(4))["stream"]
      open(f"{name}-newest.tlic", "wb").write(stream.numpy())
      for who in ("newest", "ours"):
        data = open(f"{name}-{who}.tlic", "rb").read()
        np.save(f"{name}-{who}-by-newest.npy", model.signatures["decompress"](
            stream=tf.constant(data))["image"].numpy())
assert "tensorflow_compression" not in sys.modules
print(tf.__version__)
"""


def test_newest_tensorflow_codes_as_this_stack_does(tmp_path):
  if not os.path.exists(NEWEST_TF_PYTHON):
    pytest.fail(f"{NEWEST_TF_PYTHON} missing: `make newest-tf` builds it")
  model = zoo.load()
  # Top halves: both stacks code each image six times (the suite's time).
  images = [image_io.read_image(os.path.join(KODAK, name)) for name in IMAGES]
  images = [image[:image.shape[0] // 2] for image in images]
  paths = [str(tmp_path / name) for name in IMAGES]
  for path, image in zip(paths, images):
    with open(path, "wb") as f:
      f.write(image_io.encode_png(image))
  for i, image in enumerate(images):
    for q in (0, 1, 2):
      for j, rate in enumerate(RATES):
        stream = model.signatures["compress_with_options"](
            image=tf.constant(image), quantizer=tf.constant(q),
            rate=tf.constant(rate), delta_index=tf.constant(4))["stream"]
        with open(tmp_path / f"{i}-{q}-{j}-ours.tlic", "wb") as f:
          f.write(stream.numpy())
  result = subprocess.run(
      [NEWEST_TF_PYTHON, "-c", NEWEST, zoo.find(zoo.DEFAULT_MODEL),
       str(tmp_path), ",".join(paths), ",".join(map(str, RATES))],
      capture_output=True, text=True, timeout=900,
      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert result.returncode == 0, result.stderr[-3000:]
  version = result.stdout.split()[-1]
  assert int(version.split(".")[1]) > 14, version
  differing = []
  for i, image in enumerate(images):
    for q in (0, 1, 2):
      for j, _ in enumerate(RATES):
        name = tmp_path / f"{i}-{q}-{j}"
        ours = open(f"{name}-ours.tlic", "rb").read()
        newest = open(f"{name}-newest.tlic", "rb").read()
        if ours != newest:
          differing.append(f"{IMAGES[i]} quantizer {q} rate {RATES[j]}")
        # Decoding must agree exactly, whichever stack wrote the stream.
        for who, data in (("ours", ours), ("newest", newest)):
          decoded = model.signatures["decompress"](
              stream=tf.constant(data))["image"].numpy()
          np.testing.assert_array_equal(
              np.load(f"{name}-{who}-by-newest.npy"), decoded,
              err_msg=f"{name}-{who}: TF {version} decoded other pixels")
          assert metrics.psnr(image, decoded) > 24
  # The analysis runs in float32, whose last bits may differ between TF
  # builds; where one rounds a latent the other way, the streams differ
  # (both decode identically, above). Measured on TF 2.21.0: 1 of 12 with
  # kodim04 beside kodim19 (dropped for the suite's time).
  print("streams differing:", differing)
  assert len(differing) <= 2, differing
