"""Exports a trained run as codec SavedModels (TF Serving layout).

Writes <output_dir>/<name>/<version> (compress/decompress, needs tfc's ops)
and <output_dir>/<name>-core/<version> (core ops only, for stock TF Serving).

  python bin/export.py --run=~/runs/mbt2018-mean-vr --name=mbt2018-mean-vr \
      --version=1

--saved_model instead of --run exports a shipped model's weights again, e.g.
as a new version after a change to the codec graph.
"""

# First: starts TensorFlow (oneDNN kernels, no C++ log noise).
from tfc_lic import startup  # pylint: disable=unused-import

import os
import shutil

from absl import app
from absl import flags

from tfc_lic import cli
from tfc_lic import codec as codec_lib
from tfc_lic import export
from tfc_lic import training

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Run directory (config.json + weights).")
flags.DEFINE_string("saved_model", None,
                    "Instead of --run: a codec SavedModel (e.g. "
                    "saved_models/<name>/<version>) whose weights to export.")
flags.DEFINE_string("name", None, "Model name (folder under --output_dir); "
                    "without it only --compact_dir is written.")
flags.DEFINE_integer("version", 1, "Model version (TF Serving subfolder).")
flags.DEFINE_string("output_dir", cli.ZOO_DIR, "Base folder of the zoo.")
flags.DEFINE_enum("default_quantizer", "usq", list(codec_lib.QUANTIZERS),
                  "Quantizer of the `compress` signature.")
flags.DEFINE_list("delta_indexes", ["usq=0", "tcq4=0", "tcq8=0"],
                  "Default step index j per quantizer (Δ = 2**(j/8)), "
                  "'name=j'; from bin/tune_tcq.py for TCQ.")
flags.DEFINE_float("tcq_lambda", None, "TCQ rate weight λ (units of Δ²).")
flags.DEFINE_list("refine_lambda_scales", [],
                  "Factor c on λ with which a quantizer refines latents "
                  "(compress_refined), 'name=c'; 1 for those not named.")
flags.DEFINE_list("refine_learning_rates", [],
                  "Adam's first step with which a quantizer refines latents, "
                  "'name=rate'; tfc_lic.refinement.LEARNING_RATE for those "
                  "not named.")
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
    if FLAGS.saved_model:
      if FLAGS.compact_dir:
        raise ValueError("--compact_dir needs --run (a run's history)")
      path = export.resolve(os.path.expanduser(FLAGS.saved_model))
      model, config = export.model_from_saved_model(path)
      weights = os.path.join(*path.split(os.sep)[-2:])
    else:
      run = os.path.expanduser(FLAGS.run)
      config = training.load_config(os.path.join(run, "config.json"))
      # Inference runs in float32 whatever the training precision: bf16 is
      # a training speed-up; weights are stored as float16 (export_model).
      model = training.model_from_config(dict(config, precision="float32"))
      weights = os.path.basename(training.load_weights(model, run))
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


if __name__ == "__main__":
  app.run(main)
