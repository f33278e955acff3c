"""Evaluates image codecs on a folder of images: RD tables, BD-rates, plot.

  python bin/evaluate.py --images=/path/to/kodak \
      --reference=results/reference/kodak.json --output_dir=results/<name>

Writes <output_dir>/rd.json (every RD point, per image, with library and
machine info) and <output_dir>/rd.png, and prints a table per codec and the
BD-rate/BD-PSNR of every curve (reference curves included) against --anchor.
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging

from tfc_lic import classic
from tfc_lic import evaluation
from tfc_lic import learned_codec

FLAGS = flags.FLAGS
flags.DEFINE_string("images", None, "Folder of PNG/JPEG test images.")
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
flags.DEFINE_string("anchor", "webp",
                    "Curve (codec or reference) that BD-rates are against.")
flags.DEFINE_string("output_dir", None, "Where to write rd.json and rd.png.")
flags.DEFINE_integer("max_images", None,
                     "Evaluate only the first N images (quick runs).",
                     lower_bound=1)
flags.DEFINE_string("title", None, "Plot title (default: from --images).")
flags.DEFINE_boolean("overwrite", False, "Replace existing outputs.")
flags.mark_flags_as_required(["images", "output_dir"])


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


def run():
  """Evaluates, prints and writes everything; raises ValueError on bad input."""
  json_path = os.path.join(FLAGS.output_dir, "rd.json")
  plot_path = os.path.join(FLAGS.output_dir, "rd.png")
  existing = [p for p in (json_path, plot_path) if os.path.exists(p)]
  if existing and not FLAGS.overwrite:
    raise ValueError(f"refusing to overwrite {', '.join(existing)} (use "
                     f"--overwrite)")
  codecs = build_codecs([n for n in FLAGS.codecs if n])
  settings = parse_settings(FLAGS.settings, codecs)
  reference, reference_curves = {}, {}
  if FLAGS.reference:
    reference, reference_curves = evaluation.load_reference(FLAGS.reference)
  if FLAGS.anchor not in codecs and FLAGS.anchor not in reference_curves:
    raise ValueError(f"--anchor={FLAGS.anchor} is neither an evaluated codec "
                     f"nor a reference curve")
  images = evaluation.load_images(FLAGS.images)
  if FLAGS.max_images:
    images = dict(list(images.items())[:FLAGS.max_images])
  os.makedirs(FLAGS.output_dir, exist_ok=True)

  results = {}
  for name, codec in codecs.items():
    results[name] = evaluation.evaluate_codec(codec, images, settings.get(name))
    print(evaluation.format_rd_table(name, results[name]) + "\n", flush=True)
  curves = {name: evaluation.rd_curve(r) for name, r in results.items()}
  bd_rows = evaluation.bd_table(dict(curves, **reference_curves), FLAGS.anchor)
  print(evaluation.format_bd_table(bd_rows, FLAGS.anchor))

  evaluation.write_results(json_path, dict(
      command=sys.argv,
      images=dict(folder=os.path.abspath(FLAGS.images), names=list(images)),
      codecs={name: dict(params=getattr(codecs[name], "params", {}),
                         results=r) for name, r in results.items()},
      reference=dict(reference, path=FLAGS.reference) if reference else None,
      anchor=FLAGS.anchor,
      bd=bd_rows,
      library_versions=classic.library_versions()))
  title = FLAGS.title or (f"{os.path.basename(os.path.normpath(FLAGS.images))}"
                          f" ({len(images)} images)")
  evaluation.rd_plot(curves, plot_path, title, reference_curves)
  print(f"\nwrote {json_path} and {plot_path}")


def main(argv):
  if len(argv) > 1:
    sys.exit(f"error: unexpected arguments: {' '.join(argv[1:])}")
  try:
    run()
  except (ValueError, OSError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
