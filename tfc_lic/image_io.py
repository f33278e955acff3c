"""Reading images and writing outputs safely.

Images are read with Pillow into uint8 RGB arrays; anything the codec can't
take raises `ImageError` with a one-line reason. Outputs are written
atomically (temporary file in the same folder, then rename) and never replace
an existing file unless asked.
"""

import io
import os
import tempfile

from absl import logging
import numpy as np
from PIL import Image

from tfc_lic import container



class ImageError(ValueError):
  """An input image the codec cannot read (one-line message)."""


def read_image(path):
  """Reads PNG/JPEG/... as uint8 RGB [H, W, 3].

  Grayscale is expanded to RGB; alpha is dropped with a warning; 16-bit
  samples are reduced to 8 bits with a warning.
  """
  if not os.path.isfile(path):
    raise ImageError(f"{path}: no such file")
  if os.path.getsize(path) == 0:
    raise ImageError(f"{path}: empty file")
  try:
    with Image.open(path) as image:
      width, height = image.size
      if not 1 <= width * height <= container.MAX_PIXELS:
        raise ImageError(f"{path}: {container.size_error(height, width)}")
      image.load()
      mode = image.mode
      if mode in ("I;16", "I;16B", "I;16L", "I"):
        logging.warning("%s: 16-bit image reduced to 8 bits", path)
        array = np.asarray(image, dtype=np.float64)
        scale = 255 / 65535 if array.max() > 255 else 1
        array = np.clip(np.round(array * scale), 0, 255).astype(np.uint8)
        array = np.repeat(array[..., None], 3, axis=-1)
      else:
        if "A" in mode or mode == "P" and "transparency" in image.info:
          logging.warning("%s: alpha channel dropped", path)
        array = np.asarray(image.convert("RGB"))
  except Image.DecompressionBombError:
    raise ImageError(f"{path}: larger than the codec limit of "
                     f"{container.MAX_PIXELS / 1e6:.1f} megapixels") from None
  except ImageError:
    raise
  except (OSError, SyntaxError, ValueError) as e:
    raise ImageError(f"{path}: not a readable image ({e})") from None
  return np.ascontiguousarray(array, dtype=np.uint8)


def write_atomic(path, data, overwrite=False):
  """Writes bytes to `path` via a temporary file and rename.

  Raises FileExistsError if `path` exists and `overwrite` is False. A failure
  leaves no partial file behind.
  """
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
  directory = os.path.dirname(os.path.abspath(path))
  fd, temp = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                              suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(temp, path)
  except BaseException:
    if os.path.exists(temp):
      os.unlink(temp)
    raise


def encode_png(array):
  """uint8 RGB array -> PNG bytes."""
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format="PNG")
  return buffer.getvalue()
