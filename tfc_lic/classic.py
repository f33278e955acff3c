"""Classic image codec baselines (JPEG, WebP, AVIF, HEIF/HEVC), in memory.

Each codec maps a uint8 RGB image and a quality setting to bytes and back,
with the same interface as the learned codec's adapter, so that both are
evaluated by the same code (see evaluation.py). The default quality sweeps
span roughly 0.1-2 bpp on Kodak.
"""

import io

import numpy as np
import PIL
from PIL import features
from PIL import Image

try:
  import pillow_heif
except ImportError:
  pillow_heif = None


class PillowCodec:
  """A codec that Pillow encodes and decodes (JPEG, WebP, AVIF).

  Attributes:
    name: Registry name.
    settings: Default sweep of Pillow `quality` values, increasing rate.
    params: Fixed encoder options passed to `Image.save`.
  """

  def __init__(self, name, image_format, feature, settings, params):
    self.name = name
    self.settings = tuple(settings)
    self.params = dict(params)
    self._format = image_format
    self._feature = feature

  def check(self):
    """Returns why the codec cannot run on this machine, or None if it can."""
    if not features.check(self._feature):
      return f"Pillow {PIL.__version__} was built without {self._feature}"
    return None

  def encode(self, image, setting):
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8), "RGB").save(
        buffer, format=self._format, quality=int(setting), **self.params)
    return buffer.getvalue()

  def decode(self, data):
    with Image.open(io.BytesIO(data)) as image:
      return np.asarray(image.convert("RGB"))


_HEIF_SETTINGS = (12, 18, 24, 30, 36, 42, 48, 54, 59)
_X265_PARAMS = {"x265:psy-rd": "0", "x265:psy-rdoq": "0"}


class HeifCodec:
  """HEIF with the x265 HEVC encoder (libheif via pillow_heif).

  This is the classic "BPG-like" anchor: HEVC intra coding in a HEIF box.
  The RGB image is converted to full-range BT.601 YCbCr (pillow_heif's
  default) with the given chroma subsampling. libheif forces x265's
  psychovisual optimizations on (psy-rd, psy-rdoq = 1), which trade PSNR for
  perceived detail; they are turned off as in BPG (x265 tune "ssim"), which
  measured -10% BD-rate (PSNR) on four Kodak images. Other options are
  libheif's defaults (preset "slow", CRF = (100 - quality) / 2).

  Attributes:
    name: Registry name.
    settings: Default sweep of libheif `quality` values, increasing rate.
    params: Fixed encoder options passed to `pillow_heif.encode`.
  """

  def __init__(self, name, chroma, settings):
    self.name = name
    self.settings = tuple(settings)
    self.params = dict(chroma=chroma, enc_params=_X265_PARAMS)

  def check(self):
    """Returns why the codec cannot run on this machine, or None if it can."""
    if pillow_heif is None:
      return "pillow_heif is not installed"
    if not pillow_heif.libheif_info()["HEIF"]:
      return "libheif in pillow_heif has no HEVC encoder"
    return None

  def encode(self, image, setting):
    image = np.ascontiguousarray(image, np.uint8)
    height, width, _ = image.shape
    buffer = io.BytesIO()
    # pillow_heif adds the chroma to enc_params in place: pass a copy.
    params = dict(self.params, enc_params=dict(self.params["enc_params"]))
    pillow_heif.encode("RGB", (width, height), image.tobytes(), buffer,
                       quality=int(setting), **params)
    return buffer.getvalue()

  def decode(self, data):
    heif_file = pillow_heif.open_heif(io.BytesIO(data))
    return np.asarray(heif_file.to_pillow().convert("RGB"))


# Sweeps measured on every third Kodak image (mean bpp): jpeg 0.095-1.92,
# webp 0.10-2.04, avif 0.10-2.00, heif-444 0.085-2.28, heif-420 0.086-2.09.
# "avif" uses Pillow's default speed 6; "avif-s4" speed 4, which saves
# another ~4% BD-rate at ~5x the encoding time: what a user who wants small
# files runs, and the AVIF that comparisons quote from zoo v19 on (#58).
CODECS = {
    codec.name: codec for codec in (
        PillowCodec("jpeg", "JPEG", "jpg",
                    settings=(3, 5, 8, 12, 20, 30, 45, 60, 75, 85),
                    params=dict(subsampling="4:2:0", optimize=True)),
        PillowCodec("webp", "WEBP", "webp",
                    settings=(0, 5, 15, 30, 50, 65, 75, 85, 90),
                    params=dict(method=6)),
        PillowCodec("avif", "AVIF", "avif",
                    settings=(10, 20, 30, 40, 50, 60, 70, 78, 84),
                    params=dict(subsampling="4:2:0", speed=6)),
        PillowCodec("avif-s4", "AVIF", "avif",
                    settings=(10, 20, 30, 40, 50, 60, 70, 78, 84),
                    params=dict(subsampling="4:2:0", speed=4)),
        HeifCodec("heif-444", "444", settings=_HEIF_SETTINGS),
        HeifCodec("heif-420", "420", settings=_HEIF_SETTINGS),
    )
}


def available_codecs():
  """Splits `CODECS` into ({name: codec} usable here, {name: reason} not)."""
  available, unavailable = {}, {}
  for name, codec in CODECS.items():
    reason = codec.check()
    if reason is None:
      available[name] = codec
    else:
      unavailable[name] = reason
  return available, unavailable


def library_versions():
  """Versions of the image libraries behind the classic codecs."""
  versions = {"Pillow": PIL.__version__}
  for feature, key in (("libjpeg_turbo", "libjpeg-turbo"), ("webp", "libwebp"),
                       ("avif", "libavif")):
    version = features.version(feature)
    if version is not None:
      versions[key] = version
  if features.check("avif"):
    from PIL import _avif  # pylint: disable=g-import-not-at-top
    versions["libavif codecs"] = _avif.codec_versions()
  if pillow_heif is not None:
    info = pillow_heif.libheif_info()
    versions["pillow_heif"] = pillow_heif.__version__
    versions["libheif"] = info["libheif"]
    versions["libheif encoders"] = info["encoders"]
    versions["libheif decoders"] = info["decoders"]
  return versions
