"""Reading images: every odd input is an RGB array or a one-line ImageError."""

import os
import struct
import zlib

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
    (b"", "empty"), (b"not an image at all", "not an image in a format")])
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


def _png_header(width, height):
  """A PNG's signature, header and an empty data chunk: what Pillow reads
  to open it (its size), without the gigabytes of pixels."""
  chunk = lambda kind, data: (struct.pack(">I", len(data)) + kind + data +
                              struct.pack(">I", zlib.crc32(kind + data)))
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
      ">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", b"") +
          chunk(b"IEND", b""))


def test_image_above_the_pixel_limit_is_refused_before_decoding(tmp_path):
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  path = tmp_path / "huge.png"
  path.write_bytes(_png_header(16385, 16384))  # 2**28 + 16384 pixels
  with pytest.raises(image_io.ImageError,
                     match="16385x16384 is outside") as info:
    image_io.read_image(str(path))
  assert f"{container.MAX_PIXELS / 1e6:.1f} megapixels" in str(info.value)


def test_formats_outside_the_allow_list_are_refused_unparsed(tmp_path):
  """EPS would reach Pillow's Ghostscript plugin (a program run on the
  file's PostScript); it is refused before any plugin parses it."""
  path = tmp_path / "drawing.eps"
  path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                   b"showpage\n")
  with pytest.raises(image_io.ImageError, match="not an image in a format"):
    image_io.read_image(str(path))


def test_exif_orientation_is_applied(tmp_path):
  rgb = smooth_image(20, 30)
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: rotate 90° clockwise to view.
  path = _write(tmp_path, "rotated.jpg", Image.fromarray(rgb), exif=exif,
                quality=100)
  image = image_io.read_image(path)
  assert image.shape == (30, 20, 3)
  expected = np.rot90(rgb, k=-1).astype(np.int32)
  assert np.abs(image.astype(np.int32) - expected).mean() < 3


def test_sixteen_bit_and_float_samples_keep_their_scale(tmp_path):
  """A dark 16-bit PNG (all samples < 256) stays dark; a float TIFF in
  [0, 1] spans 0..255; samples outside their mode's range are refused."""
  dark = _write(tmp_path, "dark.png", Image.fromarray(
      np.full((8, 8), 200, np.uint16)))
  np.testing.assert_array_equal(image_io.read_image(dark), 1)
  ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
  tiff = _write(tmp_path, "ramp.tif", Image.fromarray(ramp, mode="F"))
  image = image_io.read_image(tiff)
  assert image.min() == 0 and image.max() == 255
  np.testing.assert_array_equal(image[..., 0], np.round(ramp * 255))
  bright = _write(tmp_path, "bright.tif", Image.fromarray(ramp * 2, mode="F"))
  with pytest.raises(image_io.ImageError, match=r"outside \[0.0, 1.0\]"):
    image_io.read_image(bright)


def test_animations_are_refused(tmp_path):
  frames = [Image.fromarray(smooth_image(16, 16, seed)) for seed in (0, 1)]
  path = str(tmp_path / "anim.gif")
  frames[0].save(path, save_all=True, append_images=frames[1:])
  with pytest.raises(image_io.ImageError, match="2 frames"):
    image_io.read_image(path)


def test_write_atomic_respects_the_umask_and_clears_stale_temps(tmp_path):
  path = tmp_path / "out.tlic"
  stale = tmp_path / ".out.tlic.tmp.999999999"  # No such process.
  stale.write_bytes(b"half")
  other = tmp_path / ".other.tmp.999999999"
  other.write_bytes(b"someone else's")
  old = os.umask(0o027)
  try:
    image_io.write_atomic(str(path), b"data")
  finally:
    os.umask(old)
  assert os.stat(path).st_mode & 0o777 == 0o640
  assert sorted(os.listdir(tmp_path)) == [".other.tmp.999999999",
                                          "out.tlic"]


def test_destination_is_checked_before_any_work(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such folder"):
    image_io.check_destination(str(tmp_path / "missing" / "out.tlic"))
  with pytest.raises(IsADirectoryError):
    image_io.check_destination(str(tmp_path), overwrite=True)


def test_stream_reads_are_bounded(tmp_path):
  """/dev/zero or an oversized file is refused, not read into memory."""
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  with pytest.raises(FileNotFoundError, match="not a regular file"):
    image_io.read_stream("/dev/zero")
  huge = tmp_path / "huge.tlic"
  with open(huge, "wb") as f:
    f.truncate(container.MAX_STREAM_BYTES + 1)  # Sparse: costs no disk.
  with pytest.raises(ValueError, match="larger than any stream"):
    image_io.read_stream(str(huge))
  (tmp_path / "ok.tlic").write_bytes(b"TLIC")
  assert image_io.read_stream(str(tmp_path / "ok.tlic")) == b"TLIC"


def test_to_tensor_holds_its_own_copy():
  """The tensor of an image keeps its pixels when the caller reuses or frees
  the array (one copy, where tf.constant keeps two)."""
  image = smooth_image(24, 40)
  tensor = image_io.to_tensor(image)
  assert tensor.dtype == "uint8" and tensor.shape == image.shape
  expected = image.copy()
  image[...] = 0
  np.testing.assert_array_equal(tensor.numpy(), expected)
