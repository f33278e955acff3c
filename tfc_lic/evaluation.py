"""Rate-distortion evaluation of image codecs, with BD tables, plots and JSON.

A codec is anything with `name`, `settings` (its default sweep),
`encode(image, setting) -> bytes` and `decode(bytes) -> image` on uint8 RGB
arrays: the classic codecs of classic.py and the learned codec's adapter are
measured by the same code, from the real length of their bit streams.
"""

import datetime
import fnmatch
import importlib.metadata
import json
import os
import platform
import sys
import tempfile

import numpy as np
from PIL import Image
import tqdm

from tfc_lic import bd_rate
from tfc_lic import data
from tfc_lic import metrics
from tfc_lic import plotting

_MARKERS = ("o", "s", "^", "D")  # One per ten curves of a plot.

# Packages (module: distribution name) whose version goes into the results
# when this process uses them; read from the installed distribution, since
# not every module has a __version__ (tfc has none).
_VERSIONED_MODULES = {
    "numpy": "numpy", "scipy": "scipy", "tensorflow": "tensorflow",
    "tensorflow_compression": "tensorflow-compression", "PIL": "Pillow",
    "pillow_heif": "pillow_heif", "matplotlib": "matplotlib"}


def load_images(folder):
  """Reads the PNG/JPEG files directly in `folder` as uint8 RGB arrays.

  Args:
    folder: A directory, or globs of image files (comma-separated), e.g.
      "photos/a*.png,photos/b*.png".

  Returns:
    A dict from file name to [height, width, 3] uint8 array, sorted by name.

  Raises:
    ValueError: `folder` names no image, a bad one, or two of one name.
  """
  if os.path.isdir(folder):
    paths = [os.path.join(folder, n) for n in os.listdir(folder)
             if n.lower().endswith(data.IMAGE_EXTENSIONS)]
  else:
    paths = data.list_images(folder)
  if not paths:
    raise ValueError(f"no PNG/JPEG images in {folder}")
  images = {}
  for path in sorted(paths, key=os.path.basename):
    name = os.path.basename(path)
    if name in images:
      raise ValueError(f"{folder}: two images named {name}")
    try:
      with Image.open(path) as image:
        images[name] = np.asarray(image.convert("RGB"))
    except OSError as e:
      raise ValueError(f"cannot read {path}: {e}") from e
  return images


def evaluate_codec(codec, images, settings=None, progress=True):
  """Encodes and decodes every image at every setting and measures it.

  Per setting, bpp, PSNR and MS-SSIM are averaged over the images (the mean
  of per-image values, as in the usual Kodak results, not e.g. the PSNR of
  the mean MSE).

  Args:
    codec: The codec (see module docstring).
    images: A dict from name to uint8 RGB array (see `load_images`).
    settings: The settings to evaluate; defaults to `codec.settings`.
    progress: Whether to show a progress bar on stderr.

  Returns:
    A list with, per setting, a dict {setting, bpp, psnr, ms_ssim,
    per_image}, where per_image lists {image, bytes, bpp, psnr, ms_ssim}.

  Raises:
    ValueError: The codec decoded an image to a different shape or type.
  """
  settings = codec.settings if settings is None else settings
  results = []
  with tqdm.tqdm(total=len(settings) * len(images), desc=codec.name,
                 unit="image", file=sys.stderr, disable=not progress) as bar:
    for setting in settings:
      per_image = []
      for name, image in images.items():
        data = codec.encode(image, setting)
        decoded = np.asarray(codec.decode(data))
        if decoded.shape != image.shape or decoded.dtype != np.uint8:
          raise ValueError(
              f"{codec.name} at setting {setting!r} decoded {name} to "
              f"{decoded.dtype} {decoded.shape}, expected uint8 {image.shape}")
        height, width, _ = image.shape
        per_image.append(dict(
            image=name, bytes=len(data),
            bpp=metrics.bpp(len(data), height, width),
            psnr=metrics.psnr(image, decoded),
            ms_ssim=metrics.ms_ssim(image, decoded)))
        bar.update()
      results.append(dict(
          setting=setting,
          **{key: float(np.mean([r[key] for r in per_image]))
             for key in ("bpp", "psnr", "ms_ssim")},
          per_image=per_image))
  return results


def rd_curve(results):
  """The (bpp, psnr) points of `evaluate_codec` results."""
  return [(r["bpp"], r["psnr"]) for r in results]


def load_reference(path):
  """Reads published RD curves (e.g. results/reference/kodak.json).

  Returns:
    The file's contents and a dict from curve name to (bpp, psnr) points.

  Raises:
    ValueError: The file cannot be read or has the wrong layout.
  """
  try:
    with open(path) as f:
      reference = json.load(f)
    curves = {name: list(zip(curve["bpp"], curve["psnr"], strict=True))
              for name, curve in reference["curves"].items()}
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"cannot read reference curves {path}: {e}") from e
  except (KeyError, TypeError, AttributeError, ValueError) as e:
    raise ValueError(f"{path} is not a reference file (expected "
                     f'{{"curves": {{name: {{"bpp": [...], "psnr": [...]}}}}}}'
                     f")") from e
  return reference, curves


def select_curves(names, patterns):
  """The names matching any of the shell-style patterns, in `names`' order.

  Raises:
    ValueError: A pattern matches none of `names` (a typo would otherwise
      silently drop a curve from the plot).
  """
  for pattern in patterns:
    if not fnmatch.filter(names, pattern):
      raise ValueError(f"--plot={pattern} matches none of the curves "
                       f"({', '.join(names)})")
  return [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns)]


def rd_plot(curves, path, title, reference_curves=None, max_bpp=None):
  """Plots PSNR against bpp to an image file; reference curves are dashed.

  The legend sits beside the axes, off the curves; past ten curves the
  colours repeat with another marker, so that no two curves look alike.

  Args:
    curves: A dict from name to (bpp, psnr) points, drawn solid.
    path: Output file (PNG, or any format matplotlib infers from the name).
    title: Plot title.
    reference_curves: Like `curves`, drawn dashed.
    max_bpp: Right end of the bpp axis (None: all points); the PSNR axis
      then spans the points left of it.
  """
  lines = [(style, name, points)
           for style, group in (("-", curves), ("--", reference_curves or {}))
           for name, points in group.items()]
  fig = plotting.new_figure(10, 6)
  axes = fig.add_subplot()
  shown = []
  for i, (style, name, points) in enumerate(lines):
    points = sorted(p for p in points if np.all(np.isfinite(p)))
    if points:
      axes.plot(*zip(*points), linestyle=style, markersize=4,
                marker=_MARKERS[i // 10 % len(_MARKERS)], color=f"C{i % 10}",
                label=name)
      shown += [p for p in points if max_bpp is None or p[0] <= max_bpp]
  if max_bpp is not None and shown:
    psnr = [p[1] for p in shown]
    axes.set_xlim(0, max_bpp)
    axes.set_ylim(min(psnr) - 0.5, max(psnr) + 0.5)
  axes.set_xlabel("bits per pixel")
  axes.set_ylabel("PSNR-RGB (dB)")
  axes.set_title(title)
  axes.grid(alpha=0.3)
  axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
  fig.savefig(path, dpi=150, bbox_inches="tight")


def bd_table(curves, anchor):
  """BD-rate and BD-PSNR of every curve against the anchor curve.

  Args:
    curves: A dict from name to (bpp, psnr) points.
    anchor: Name of the anchor curve in `curves`.

  Returns:
    A list of dicts {name, bd_rate, bd_psnr, error}, one per curve other than
    the anchor, in the order of `curves`. A value that cannot be computed
    (e.g. the curves do not overlap) is None, and `error` says why.

  Raises:
    ValueError: `anchor` is not in `curves`.
  """
  if anchor not in curves:
    raise ValueError(f"anchor {anchor!r} is not among the curves "
                     f"({', '.join(curves)})")
  rows = []
  for name, points in curves.items():
    if name == anchor:
      continue
    row = dict(name=name, bd_rate=None, bd_psnr=None, error=None)
    errors = []
    for key, function in (("bd_rate", bd_rate.bd_rate),
                          ("bd_psnr", bd_rate.bd_psnr)):
      try:
        row[key] = function(curves[anchor], points)
      except ValueError as e:
        if str(e) not in errors:
          errors.append(str(e))
    row["error"] = "; ".join(errors) or None
    rows.append(row)
  return rows


def format_bd_table(rows, anchor):
  """Renders `bd_table` rows as text."""
  width = max([len(r["name"]) for r in rows] + [5])
  lines = [f"BD against {anchor} (negative BD-rate: less rate for the same "
           f"PSNR)",
           f"{'curve':<{width}}  {'BD-rate':>8}  {'BD-PSNR':>9}"]
  for row in rows:
    rate = "n/a" if row["bd_rate"] is None else f"{row['bd_rate']:+.2f}%"
    quality = ("n/a" if row["bd_psnr"] is None
               else f"{row['bd_psnr']:+.3f} dB")
    note = f"  ({row['error']})" if row["error"] else ""
    lines.append(f"{row['name']:<{width}}  {rate:>8}  {quality:>9}{note}")
  return "\n".join(lines)


def format_rd_table(name, results):
  """Renders `evaluate_codec` results as text."""
  settings = [str(r["setting"]) for r in results]
  width = max([len(s) for s in settings] + [7])
  lines = [name, f"{'setting':>{width}}  {'bpp':>7}  {'PSNR':>6}  "
                 f"{'MS-SSIM':>7}"]
  for setting, r in zip(settings, results):
    lines.append(f"{setting:>{width}}  {r['bpp']:7.4f}  {r['psnr']:6.2f}  "
                 f"{r['ms_ssim']:7.4f}")
  return "\n".join(lines)


def environment():
  """Software versions and machine description, for reproducibility."""
  versions = {"python": platform.python_version()}
  for module, name in _VERSIONED_MODULES.items():
    if module in sys.modules:
      try:
        versions[name] = importlib.metadata.version(name)
      except importlib.metadata.PackageNotFoundError:
        versions[name] = getattr(sys.modules[module], "__version__", "unknown")
  return dict(
      versions=versions,
      machine=dict(platform=platform.platform(), processor=platform.processor(),
                   cpu_count=os.cpu_count()),
      written=datetime.datetime.now(datetime.timezone.utc).isoformat(
          timespec="seconds"))


def _to_json(value):
  """Converts tuples and numpy scalars; non-finite floats become None."""
  if isinstance(value, dict):
    return {str(k): _to_json(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_to_json(v) for v in value]
  if isinstance(value, np.generic):
    value = value.item()
  if isinstance(value, float) and not np.isfinite(value):
    return None
  return value


def write_results(path, payload):
  """Writes `payload` and `environment()` as JSON, atomically.

  JSON has no inf or nan: non-finite numbers (the PSNR of a lossless result,
  the MS-SSIM of a small image) are written as null.

  Args:
    path: Output file; replaced in one step, so readers never see it partial.
    payload: A JSON-able dict (tuples and numpy scalars are converted).
  """
  text = json.dumps(_to_json(dict(payload, environment=environment())),
                    indent=1, allow_nan=False)
  fd, temp_path = tempfile.mkstemp(
      dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text + "\n")
    os.chmod(temp_path, 0o644)
    os.replace(temp_path, path)
  except BaseException:
    os.unlink(temp_path)
    raise
