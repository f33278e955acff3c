"""Reading images: every odd input is an RGB array or a one-line ImageError."""

import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import smooth_image
from tfc_lic import image_io


def _write(tmp_path, name, image, **kwargs):
  path = str(tmp_path / name)
  image.save(path, **kwargs)
  return path


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"), (b"not an image at all", "not a readable image")])
def test_bad_files(tmp_path, content, reason):
  path = tmp_path / "bad.png"
  path.write_bytes(content)
  with pytest.raises(image_io.ImageError, match=reason) as info:
    image_io.read_image(str(path))
  assert "\n" not in str(info.value)


def test_missing_file():
  with pytest.raises(image_io.ImageError, match="no such file"):
    image_io.read_image("/nonexistent/image.png")


def test_truncated_png(tmp_path):
  path = _write(tmp_path, "full.png", Image.fromarray(smooth_image(64, 64)))
  data = open(path, "rb").read()
  truncated = tmp_path / "truncated.png"
  truncated.write_bytes(data[:len(data) // 2])
  with pytest.raises(image_io.ImageError):
    image_io.read_image(str(truncated))


def test_modes_become_rgb(tmp_path):
  rgb = smooth_image(20, 30)
  gray = _write(tmp_path, "gray.png", Image.fromarray(rgb[..., 0]))
  rgba = _write(tmp_path, "rgba.png", Image.fromarray(
      np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])))
  sixteen = _write(tmp_path, "16.png", Image.fromarray(
      rgb[..., 0].astype(np.uint16) * 257))
  np.testing.assert_array_equal(image_io.read_image(rgba), rgb)
  for path in (gray, sixteen):
    image = image_io.read_image(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[..., 1], rgb[..., 0])


def test_write_atomic_never_overwrites(tmp_path):
  path = str(tmp_path / "out.bin")
  image_io.write_atomic(path, b"first")
  with pytest.raises(FileExistsError):
    image_io.write_atomic(path, b"second")
  assert open(path, "rb").read() == b"first"
  image_io.write_atomic(path, b"second", overwrite=True)
  assert open(path, "rb").read() == b"second"
  assert os.listdir(tmp_path) == ["out.bin"]


def test_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  path = _write(tmp_path, "huge.png", Image.new("RGB", (4097, 4096)))
  assert os.path.getsize(path) < 1e6
  with pytest.raises(image_io.ImageError, match="4097x4096 is outside") as info:
    image_io.read_image(path)
  assert f"{container.MAX_PIXELS / 1e6:.1f} megapixels" in str(info.value)
