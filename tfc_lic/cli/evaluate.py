"""Evaluates image codecs on a folder of images: RD tables, BD-rates, plot.

  tfc-lic-evaluate --images=/path/to/kodak \
      --reference=results/reference/kodak.json --output_dir=results/<name>

Writes <output_dir>/rd.json (every RD point, per image, with library and
machine info) and <output_dir>/rd.png, and prints a table per codec and the
BD-rate/BD-PSNR of every curve (reference curves included) against --anchor.
"""

import json
import os
import sys

from absl import app
from absl import flags
from absl import logging

from tfc_lic import classic
from tfc_lic import evaluation
from tfc_lic import learned_codec

FLAGS = flags.FLAGS
flags.DEFINE_string("images", None, "Folder of PNG/JPEG test images, or "
                    "globs of them (comma-separated).")
flags.DEFINE_list("codecs", list(classic.CODECS),
                  "Codecs to evaluate, by name; learned ones as "
                  "'<model>:<quantizer>' (e.g. mbt2018-mean-vr:tcq8).")
flags.DEFINE_multi_string("settings", [],
                          "Replaces a codec's default sweep: 'codec=q1,q2,...' "
                          "(integer qualities; 'rate' or 'rate@j' for learned "
                          "codecs); repeat for more codecs.")
flags.DEFINE_string("reference", None,
                    "JSON file of published RD curves to plot and compare "
                    "(e.g. results/reference/kodak.json).")
flags.DEFINE_list("anchor", ["webp"],
                  "Curves (codecs or references) that BD-rates are against; "
                  "one table each.")
flags.DEFINE_string("results", None,
                    "Recompute the tables and plot from this rd.json instead "
                    "of encoding (e.g. with other anchors).")
flags.DEFINE_list("add_codecs", [],
                  "With --results: also evaluate these codecs (on the saved "
                  "run's images) and add them to its tables, e.g. a slower "
                  "encoder of a model evaluated before.")
flags.DEFINE_string("output_dir", None, "Where to write rd.json and rd.png.")
flags.DEFINE_integer("max_images", None,
                     "Evaluate only the first N images (quick runs).",
                     lower_bound=1)
flags.DEFINE_string("title", None, "Plot title (default: from --images).")
flags.DEFINE_list("plot", ["*"],
                  "Curves (codecs and references) to draw in rd.png, as "
                  "shell-style patterns, e.g. 'webp,avif,*-v15*'; rd.json and "
                  "the tables keep every curve.")
flags.DEFINE_float("plot_max_bpp", None,
                   "Right end of rd.png's bpp axis (default: every point), "
                   "to zoom in on where the curves differ.", lower_bound=0.01)
flags.DEFINE_boolean("overwrite", False, "Replace existing outputs.")
flags.mark_flags_as_required(["output_dir"])


def build_codecs(names):
  """Maps codec names to codec objects, skipping unavailable ones.

  Args:
    names: Codec names, e.g. ["jpeg", "webp", "mbt2018-mean-vr:usq"].

  Returns:
    A dict from name to codec, for the codecs that can run on this machine
    (the others are skipped with a warning).

  Raises:
    ValueError: A name is unknown, or no named codec can run here.
  """
  available, unavailable = classic.available_codecs()
  codecs = {}
  for name in names:
    if learned_codec.is_learned(name):
      codecs[name] = learned_codec.LearnedCodec(name)
    elif name in available:
      codecs[name] = available[name]
    elif name in unavailable:
      logging.warning("skipping %s: %s", name, unavailable[name])
    else:
      raise ValueError(f"unknown codec {name!r} (known: "
                       f"{', '.join(classic.CODECS)})")
  if not codecs:
    raise ValueError("none of the requested codecs can run on this machine")
  return codecs


def parse_settings(specs, codecs):
  """Parses --settings values 'codec=q1,q2,...' into {codec: [q1, q2, ...]}."""
  overrides = {}
  for spec in specs:
    name, _, values = spec.partition("=")
    if name not in codecs:
      raise ValueError(f"--settings={spec}: expected 'codec=q1,q2,...' with a "
                       f"codec from --codecs ({', '.join(codecs)})")
    parse = learned_codec.parse_setting if learned_codec.is_learned(
        name) else int
    try:
      overrides[name] = [parse(v) for v in values.split(",")]
    except ValueError:
      raise ValueError(f"--settings={spec}: bad setting") from None
  return overrides


def _images(spec):
  """--images as the results record it: a folder's absolute path, or the
  globs as given."""
  return os.path.abspath(spec) if os.path.isdir(spec) else spec


def evaluate():
  """Evaluates, prints and writes everything; raises ValueError on bad input."""
  json_path = os.path.join(FLAGS.output_dir, "rd.json")
  plot_path = os.path.join(FLAGS.output_dir, "rd.png")
  existing = [p for p in (json_path, plot_path) if os.path.exists(p)]
  if existing and not FLAGS.overwrite:
    raise ValueError(f"refusing to overwrite {', '.join(existing)} (use "
                     f"--overwrite)")
  reference, reference_curves = {}, {}
  if FLAGS.reference:
    reference, reference_curves = evaluation.load_reference(FLAGS.reference)
  if FLAGS.results:
    with open(FLAGS.results) as f:
      saved = json.load(f)
    params = {n: c["params"] for n, c in saved["codecs"].items()}
    results = {n: c["results"] for n, c in saved["codecs"].items()}
    images = dict.fromkeys(saved["images"]["names"])
    folder = _images(FLAGS.images) if FLAGS.images else (
        saved["images"]["folder"])
    names = [n for n in FLAGS.add_codecs if n and n not in results]
  else:
    if not FLAGS.images:
      raise ValueError("--images (or --results) is required")
    if FLAGS.add_codecs:
      raise ValueError("--add_codecs extends a saved run: pass --results")
    folder = _images(FLAGS.images)
    params, results = {}, {}
    names = [n for n in FLAGS.codecs if n]
  codecs = build_codecs(names) if names or not FLAGS.results else {}
  params.update({n: getattr(c, "params", {}) for n, c in codecs.items()})
  results.update(dict.fromkeys(codecs))
  settings = parse_settings(FLAGS.settings, codecs)
  for anchor in FLAGS.anchor:
    if anchor not in results and anchor not in reference_curves:
      raise ValueError(f"--anchor={anchor} is neither an evaluated codec nor "
                       f"a reference curve")
  plotted = evaluation.select_curves([*results, *reference_curves], FLAGS.plot)
  if codecs:
    loaded = evaluation.load_images(folder)
    if FLAGS.results:
      missing = [n for n in images if n not in loaded]
      if missing:
        raise ValueError(f"{folder} lacks the saved run's {missing[0]}")
      images = {n: loaded[n] for n in images}
    else:
      images = dict(list(loaded.items())[:FLAGS.max_images])
  os.makedirs(FLAGS.output_dir, exist_ok=True)

  for name in results:
    if results[name] is None:
      results[name] = evaluation.evaluate_codec(codecs[name], images,
                                                settings.get(name))
    print(evaluation.format_rd_table(name, results[name]) + "\n", flush=True)
  curves = {name: evaluation.rd_curve(r) for name, r in results.items()}
  bd = {}
  for anchor in FLAGS.anchor:
    bd[anchor] = evaluation.bd_table(dict(curves, **reference_curves), anchor)
    print(evaluation.format_bd_table(bd[anchor], anchor) + "\n")

  evaluation.write_results(json_path, dict(
      command=sys.argv,
      images=dict(folder=folder, names=list(images)),
      codecs={name: dict(params=params[name], results=r)
              for name, r in results.items()},
      reference=dict(reference, path=FLAGS.reference) if reference else None,
      anchor=FLAGS.anchor,
      bd=bd,
      library_versions=classic.library_versions()))
  title = FLAGS.title or (f"{os.path.basename(os.path.normpath(folder))}"
                          f" ({len(images)} images)")
  evaluation.rd_plot(
      {n: c for n, c in curves.items() if n in plotted}, plot_path, title,
      {n: c for n, c in reference_curves.items() if n in plotted},
      FLAGS.plot_max_bpp)
  print(f"\nwrote {json_path} and {plot_path}")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments: {' '.join(argv[1:])}")
  try:
    evaluate()
  except (ValueError, OSError) as e:
    sys.exit(f"error: {e}")


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
