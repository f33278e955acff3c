"""Exports a trained run as codec SavedModels (TF Serving layout).

Writes <output_dir>/<name>/<version> (compress/decompress; its entropy
coder compiled with XLA) and <output_dir>/<name>-core/<version> (the
transforms tile by tile, for a TF Serving without XLA and tfc_lic.client);
both core TF ops only.

  tfc-lic-export --run=~/runs/mbt2018-mean-vr --name=mbt2018-mean-vr \
      --version=1

--saved_model instead of --run exports a shipped model's weights again, e.g.
as a new version after a change to the codec graph.
"""

import os
import shutil

from absl import app
from absl import flags

from tfc_lic import cli
from tfc_lic import codec as codec_lib
from tfc_lic import export
from tfc_lic import settings
from tfc_lic import training
from tfc_lic import zoo

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Run directory (config.json + weights).")
flags.DEFINE_string("saved_model", None,
                    "Instead of --run: a codec SavedModel (e.g. "
                    "saved_models/<name>/<version>) whose weights to export.")
flags.DEFINE_string("name", None, "Model name (folder under --output_dir); "
                    "without it only --compact_dir is written.")
flags.DEFINE_integer("version", 1, "Model version (TF Serving subfolder).")
flags.DEFINE_string("output_dir", zoo.CHECKOUT_MODELS,
                    "Base folder of the zoo.")
# Defaults: the shipped settings (tfc_lic/settings.py).
flags.DEFINE_enum("default_quantizer", settings.DEFAULT_QUANTIZER,
                  list(codec_lib.QUANTIZERS),
                  "Quantizer of the `compress` signature.")
flags.DEFINE_list("delta_indexes", settings.as_flag(settings.DELTA_INDEXES),
                  "Default step index j per quantizer (Δ = 2**(j/8)), "
                  "'name=j'; the shipped one for those not named.")
flags.DEFINE_float("tcq_lambda", settings.TCQ_LAMBDA,
                   "TCQ rate weight λ (units of Δ²).")
flags.DEFINE_list("refine_lambda_scales",
                  settings.as_flag(settings.REFINE_LAMBDA_SCALES),
                  "Factor c on λ with which a quantizer refines latents "
                  "(compress_refined), 'name=c'.")
flags.DEFINE_list("refine_learning_rates",
                  settings.as_flag(settings.REFINE_LEARNING_RATES),
                  "Adam's first step with which a quantizer refines latents, "
                  "'name=rate'.")
flags.DEFINE_string("compact_dir", None,
                    "Also write the float16 weights, config and training "
                    "history here (what the repo keeps so that training can "
                    "continue on a fresh machine).")
flags.DEFINE_bool("overwrite", False, "Replace an existing version.")
flags.mark_flags_as_mutual_exclusive(["run", "saved_model"], required=True)


def main(argv):
  del argv
  with cli.one_line_errors():
    delta_indexes = cli.per_quantizer("delta_indexes", int)
    refine_lambda_scales = cli.per_quantizer("refine_lambda_scales", float)
    refine_learning_rates = cli.per_quantizer("refine_learning_rates", float)
    if FLAGS.saved_model and FLAGS.compact_dir:
      raise ValueError("--compact_dir needs --run (a run's history)")
    run = os.path.expanduser(FLAGS.run or FLAGS.saved_model)
    model, config, weights = zoo.load_trained(run)
    if FLAGS.run:
      weights = os.path.basename(weights)
    if FLAGS.compact_dir:
      os.makedirs(FLAGS.compact_dir, exist_ok=True)
      training.save_compact_weights(
          model, os.path.join(FLAGS.compact_dir, training.COMPACT_WEIGHTS))
      for name in ("config.json", "history.jsonl"):
        if os.path.exists(os.path.join(run, name)):
          shutil.copy(os.path.join(run, name), FLAGS.compact_dir)
    if not FLAGS.name:
      return
    paths = export.export_model(
        model, config, FLAGS.output_dir, FLAGS.name, FLAGS.version,
        metadata=dict(name=FLAGS.name, weights=weights),
        tcq_lambda=FLAGS.tcq_lambda,
        refine_lambda_scales=refine_lambda_scales,
        refine_learning_rates=refine_learning_rates,
        default_quantizer=FLAGS.default_quantizer,
        delta_indexes=delta_indexes,
        overwrite=FLAGS.overwrite)
    print("exported " + " and ".join(paths))


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
