"""Round trips through the classic codecs on a small synthetic image."""

import numpy as np
import pytest

from tfc_lic import classic
from tfc_lic import metrics


def _gradient(height=64, width=96):
  y, x = np.mgrid[:height, :width]
  image = np.stack([255 * x / (width - 1), 255 * y / (height - 1),
                    127 + 100 * np.sin(x / 9 + y / 13)], axis=-1)
  return np.round(image).astype(np.uint8)


def _codec(name):
  codec = classic.CODECS[name]
  reason = codec.check()
  if reason is not None:
    pytest.skip(reason)
  return codec


@pytest.mark.parametrize("name, quality", [
    ("jpeg", 90), ("webp", 90), ("avif", 90), ("heif-444", 90),
    ("heif-420", 90)])
def test_round_trip(name, quality):
  codec = _codec(name)
  image = _gradient()
  data = codec.encode(image, quality)
  decoded = codec.decode(data)
  assert isinstance(data, bytes)
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  assert metrics.psnr(image, decoded) > 25
  assert metrics.bpp(len(data), 64, 96) == 8 * len(data) / (64 * 96)


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "heif-444"])
def test_rate_grows_with_quality(name):
  codec = _codec(name)
  image = _gradient()
  low, high = codec.settings[0], codec.settings[-1]
  assert len(codec.encode(image, low)) < len(codec.encode(image, high))


def test_heif_444_keeps_more_chroma_than_420():
  image = _gradient()
  image[::2, :, 2] = 0  # Fine chroma detail that 4:2:0 cannot represent.
  psnr = {}
  for name in ("heif-444", "heif-420"):
    codec = _codec(name)
    psnr[name] = metrics.psnr(image, codec.decode(codec.encode(image, 90)))
  assert psnr["heif-444"] > psnr["heif-420"] + 3


def test_registry_and_versions():
  assert set(classic.CODECS) == {"jpeg", "webp", "avif", "avif-s4",
                                 "heif-444", "heif-420"}
  available, unavailable = classic.available_codecs()
  assert set(available) | set(unavailable) == set(classic.CODECS)
  assert "jpeg" in available
  assert classic.library_versions()["Pillow"]
