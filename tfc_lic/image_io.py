"""Reading images and writing outputs safely.

Images are read with Pillow into uint8 RGB arrays; anything the codec can't
take raises `ImageError` with a one-line reason, before any decoding where it
can. Outputs are written atomically (a synced temporary file in the same
folder, then rename) and never replace an existing file unless asked.
"""

import contextlib
import os

from absl import logging
import numpy as np
from PIL import Image
from PIL import ImageOps
import tensorflow as tf

from tfc_lic import container



class ImageError(ValueError):
  """An input image the codec cannot read (one-line message)."""


# The formats read: Pillow's plugins for still raster images only. Opening
# with an allow-list keeps untrusted files away from plugins that run
# programs (EPS: Ghostscript) or parse what the codec has no use for.
FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "PPM", "GIF")
# Sample ranges of the modes that are not 8-bit: 16-bit integers, and floats
# taken as [0, 1] (the convention of float image data).
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I")


def read_image(path):
  """Reads an image file as uint8 RGB [H, W, 3], upright.

  Checks come before decoding: an allow-list of formats (FORMATS), the
  pixel limit, a single frame. EXIF orientation is applied; grayscale is
  expanded to RGB; alpha is dropped with a warning; 16-bit samples are
  scaled by 255/65535 and float samples by 255 (rounded).
  """
  if not os.path.isfile(path):
    raise ImageError(f"{path}: no such file")
  if os.path.getsize(path) == 0:
    raise ImageError(f"{path}: empty file")
  try:
    with _pixel_limit(), Image.open(path, formats=FORMATS) as image:
      width, height = image.size
      if not container.size_ok(height, width):
        raise ImageError(f"{path}: {container.size_error(height, width)}")
      frames = getattr(image, "n_frames", 1)
      if frames > 1:
        raise ImageError(f"{path}: {frames} frames (an animation or a "
                         "multi-page file); the codec takes still images")
      image.load()
      image = ImageOps.exif_transpose(image)
      array = _to_rgb8(path, image)
  except Image.DecompressionBombError:
    raise ImageError(f"{path}: larger than the codec limit of "
                     f"{container.MAX_PIXELS / 1e6:.1f} megapixels") from None
  except Image.UnidentifiedImageError:
    raise ImageError(f"{path}: not an image in a format the codec reads "
                     f"({', '.join(FORMATS)})") from None
  except ImageError:
    raise
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path}: not a readable image ({e})") from None
  return np.ascontiguousarray(array, dtype=np.uint8)


@contextlib.contextmanager
def _pixel_limit():
  """Pillow's decompression-bomb limit raised to the codec's (Pillow
  refuses twice its default of 89 Mpx; the codec checks the size itself
  before decoding)."""
  default = Image.MAX_IMAGE_PIXELS
  Image.MAX_IMAGE_PIXELS = container.MAX_PIXELS
  try:
    yield
  finally:
    Image.MAX_IMAGE_PIXELS = default


def _to_rgb8(path, image):
  """uint8 RGB samples of a loaded Pillow image."""
  mode = image.mode
  if mode in _SIXTEEN_BIT or mode == "F":
    samples = np.asarray(image, dtype=np.float64)
    low, high = (0, 65535) if mode in _SIXTEEN_BIT else (0., 1.)
    if samples.size and (samples.min() < low or samples.max() > high):
      raise ImageError(f"{path}: samples outside [{low}, {high}], the range "
                       f"of its mode {mode}")
    logging.warning("%s: %s samples scaled to 8 bits", path,
                    "16-bit" if mode in _SIXTEEN_BIT else "float")
    array = np.round(samples * (255. / high)).astype(np.uint8)
    return np.repeat(array[..., None], 3, axis=-1)
  if "A" in mode or mode == "P" and "transparency" in image.info:
    logging.warning("%s: alpha channel dropped", path)
  return np.asarray(image.convert("RGB"))


def read_stream(path):
  """The bytes of a stream file, refusing what no stream can be: not a
  regular file (e.g. /dev/zero), or above container.MAX_STREAM_BYTES."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such file" if not os.path.exists(
        path) else f"{path}: not a regular file")
  with open(path, "rb") as f:
    data = f.read(container.MAX_STREAM_BYTES + 1)
  if len(data) > container.MAX_STREAM_BYTES:
    raise ValueError(f"{path}: larger than any stream "
                     f"({container.MAX_STREAM_BYTES >> 20} MB)")
  return data


def _stale_temps(path):
  """Temporary files an earlier, killed write to `path` left behind."""
  directory, name = os.path.split(os.path.abspath(path))
  stale = []
  for entry in os.listdir(directory):
    prefix, _, pid = entry.rpartition(".")
    if prefix == f".{name}.tmp" and pid.isdigit() and not _alive(int(pid)):
      stale.append(os.path.join(directory, entry))
  return stale


def _alive(pid):
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  return True


def check_destination(path, overwrite=False):
  """Fails before any work if `path` cannot be written: exists (without
  `overwrite`), or its folder is missing or not writable."""
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
  if os.path.isdir(path):
    raise IsADirectoryError(f"{path} is a folder")
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"{directory}: no such folder")
  if not os.access(directory, os.W_OK | os.X_OK):
    raise PermissionError(f"{directory}: not writable")


def write_atomic(path, data, overwrite=False):
  """Writes bytes to `path` completely or not at all.

  The bytes go to `.<name>.tmp.<pid>` beside `path` (a later write removes
  such files of dead processes, e.g. one killed mid-write), are synced to
  disk, take the umask's permissions and are renamed over `path`. Raises
  FileExistsError if `path` exists and `overwrite` is False.
  """
  check_destination(path, overwrite)
  for stale in _stale_temps(path):
    with contextlib.suppress(FileNotFoundError):
      os.unlink(stale)
  directory, name = os.path.split(os.path.abspath(path))
  temp = os.path.join(directory, f".{name}.tmp.{os.getpid()}")
  try:
    # O_CREAT's mode goes through the umask, as for any new file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(temp)
    raise
  with contextlib.suppress(OSError):
    directory_fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(directory_fd)
    finally:
      os.close(directory_fd)


def to_tensor(image):
  """A uint8 array [H, W, 3] as a tensor, holding one copy of its pixels:
  tf.constant and tf.convert_to_tensor of a NumPy array hold two (TF 2.14;
  measured 0.56 GB for a 0.28-GB, 100-Mpx image)."""
  return tf.identity(np.asarray(image, np.uint8))


def encode_png(image):
  """uint8 RGB image [H, W, 3] (array or tensor) -> PNG bytes. TF's encoder
  reads the pixels where they are (Pillow would copy them to 4 bytes a
  pixel, then the file twice): a 100-Mpx image writes in bounded memory."""
  return tf.io.encode_png(image).numpy()
