"""Benchmarks of the codec and of training, one tool per --what.

  tfc-lic-benchmark --what=codec --images=/path/to/kodak
  tfc-lic-benchmark --what=memory --images=/path/to/kodak
  tfc-lic-benchmark --what=seams --images=/path/to/kodak
  tfc-lic-benchmark --what=training --dataset=/path/to/training/images
  tfc-lic-benchmark --what=precision --dataset=/path/to/training/images
  tfc-lic-benchmark --what=variable_rate --dataset=... --validation=...
  tfc-lic-benchmark --what=generalization --weights=A,B \
      --image_sets=val=/path/val_*,train=/path/train_*
  tfc-lic-benchmark --what=synthesis --weights=STAGE2_A,STAGE2_B \
      --image_sets=val=/path/val_*
  tfc-lic-benchmark --what=learning_curve --history=RUN/history.jsonl

Each tool is a module of tfc_lic.benchmarks, whose docstring says what it
measures and why; it writes its results under --output_dir as JSON and, but
for generalization, a PNG plot (e.g. codec_speed.json and codec_speed.png).
"""

import os
import sys

from absl import app
from absl import flags

from tfc_lic import cli
from tfc_lic import codec as codec_lib
from tfc_lic import precision
from tfc_lic import settings
from tfc_lic import zoo
from tfc_lic.benchmarks import codec_memory
from tfc_lic.benchmarks import seams
from tfc_lic.benchmarks import codec_speed
from tfc_lic.benchmarks import entropy_coder
from tfc_lic.benchmarks import generalization
from tfc_lic.benchmarks import harness
from tfc_lic.benchmarks import learning_curve
from tfc_lic.benchmarks import synthesis
from tfc_lic.benchmarks import training_speed
from tfc_lic.benchmarks import variable_rate

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "training",
                  ["codec", "memory", "training", "precision",
                   "variable_rate", "generalization", "synthesis",
                   "learning_curve", "entropy_coder", "seams"],
                  "What to measure: codec speed (codec_speed), the codec's "
                  "peak memory and speed per image size (codec_memory), "
                  "tiled against untiled coding (seams), training "
                  "speed or the loss of fp32 vs bf16 training from one seed "
                  "(training_speed), a variable-rate network against a "
                  "single-rate one (variable_rate), trained weights' loss on "
                  "several image sets (generalization), stage-2 syntheses' "
                  "distortion (synthesis), a run's validation loss "
                  "extrapolated (learning_curve), or the codec's entropy "
                  "coder against tfc's range coder (entropy_coder).")
flags.DEFINE_string("output_dir", "results/benchmarks", "Where to write.")
# codec, memory, entropy_coder
flags.DEFINE_string("model", zoo.DEFAULT_MODEL,
                    "Codec SavedModel (zoo name or path).")
flags.DEFINE_list("quantizers", list(codec_lib.QUANTIZERS),
                  "Quantizers for --what=entropy_coder, seams.")
flags.DEFINE_integer("timed_images", 4,
                     "Images timed for --what=entropy_coder (all are sized).")
flags.DEFINE_list("also_models", [],
                  "More codec SavedModels for --what=codec, measured in the "
                  "same run as --model.")
flags.DEFINE_string("images", None,
                    "Folder of test images for --what=codec, entropy_coder, "
                    "seams; its mosaics for --what=memory.")
flags.DEFINE_integer("max_images", 4,
                     "Images for --what=codec, entropy_coder.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per image for --what=codec, "
                     "entropy_coder (median).")
flags.DEFINE_integer("upscale", 2, "Upscaling of --images for --what=seams "
                     "(so that they span several tiles).")
flags.DEFINE_list("megapixels", ["0.4", "1", "4", "16", "48", "100"],
                  "Image sizes (3:2 mosaics of --images, and a panorama of "
                  "the largest) for --what=memory.")
# training, precision, variable_rate
flags.DEFINE_string("dataset", None, "Training images (folder or glob).")
flags.DEFINE_integer("warmup_steps", 3,
                     "Steps before timing starts (--what=training or "
                     "precision).")
flags.DEFINE_integer("steps", 8,
                     "Timed steps per variant (--what=training or precision).")
flags.DEFINE_string("validation", None,
                    "Validation images for --what=variable_rate.")
flags.DEFINE_integer("rate_steps", 1800,
                     "Training steps per network for --what=variable_rate.")
# generalization, synthesis
flags.DEFINE_list("weights", [],
                  "Trained weights for --what=generalization or synthesis "
                  "(run dirs, committed weights or SavedModels: "
                  "tfc_lic.zoo.load_trained).")
flags.DEFINE_list("image_sets", [],
                  "name=images pairs for --what=generalization or synthesis "
                  "(images as in --dataset; ':' may stand for ',' between "
                  "globs).")
flags.DEFINE_bool("whole_images", False,
                  "--what=generalization or synthesis on whole images (one "
                  "per batch) instead of central 256x256 crops.")
flags.DEFINE_enum("eval_precision", "float32", ["float32", "bfloat16"],
                  "What --what=generalization computes in: float32, as the "
                  "exported codec does, or bfloat16, as a bf16 run's "
                  "validation does (the two differ by a small offset).")
flags.DEFINE_float("tcq_lambda", settings.TCQ_LAMBDA,
                   "TCQ rate weight λ for --what=synthesis (the export's).")
flags.DEFINE_list("delta_indexes", settings.as_flag(settings.DELTA_INDEXES),
                  "quantizer=j pairs, Δ = 2^(j/8), for --what=synthesis (the "
                  "export's); the shipped j for those not named.")
# learning_curve
flags.DEFINE_string("history", None,
                    "A run's history.jsonl for --what=learning_curve.")
flags.DEFINE_integer("fit_from", 40000,
                     "First step --what=learning_curve fits.")
flags.DEFINE_list("project_to", ["100000", "200000", "1000000"],
                  "Steps --what=learning_curve extrapolates to.")
flags.DEFINE_string("worker", None,
                    "Internal: the task of a worker process (JSON, "
                    "tfc_lic.benchmarks.harness.run_worker).")


def _require(*names):
  """Raises ValueError unless each flag of `names` is set."""
  for name in names:
    if not FLAGS[name].value:
      raise ValueError(f"--what={FLAGS.what} needs --{name}")


def _image_sets():
  """{name: images} of --image_sets."""
  sets = {}
  for item in FLAGS.image_sets:
    name, equals, images = item.partition("=")
    if not equals:
      raise ValueError(f"--image_sets: expected name=images, got {item!r}")
    sets[name] = images.replace(":", ",")
  return sets


def _codec():
  _require("images")
  codec_speed.run(FLAGS.output_dir, FLAGS.images, FLAGS.max_images,
                  [FLAGS.model] + FLAGS.also_models, FLAGS.repeats)


def _memory():
  _require("images")
  codec_memory.run(FLAGS.output_dir, [float(s) for s in FLAGS.megapixels],
                   FLAGS.model, FLAGS.images)


def _seams():
  _require("images")
  seams.run(FLAGS.output_dir, FLAGS.model, FLAGS.images, FLAGS.max_images,
            FLAGS.quantizers, FLAGS.upscale)


def _training():
  _require("dataset")
  training_speed.throughput(FLAGS.output_dir, FLAGS.dataset,
                            FLAGS.warmup_steps, FLAGS.steps)


def _precision():
  _require("dataset")
  training_speed.precision(FLAGS.output_dir, FLAGS.dataset,
                           FLAGS.warmup_steps, FLAGS.steps)


def _variable_rate():
  _require("dataset", "validation")
  variable_rate.run(FLAGS.output_dir, FLAGS.dataset, FLAGS.validation,
                    FLAGS.rate_steps)


def _generalization():
  _require("weights", "image_sets")
  if (FLAGS.eval_precision == "bfloat16" and
      not precision.has_fast_bfloat16()):
    raise ValueError("--eval_precision=bfloat16 needs a CPU with AVX512-BF16 "
                     "or AMX, or a GPU of compute capability >= 8.0")
  generalization.run(FLAGS.output_dir, FLAGS.weights, _image_sets(),
                     FLAGS.eval_precision, FLAGS.whole_images)


def _synthesis():
  _require("weights", "image_sets")
  synthesis.run(FLAGS.output_dir, FLAGS.weights, _image_sets(),
                FLAGS.tcq_lambda, cli.per_quantizer("delta_indexes", int),
                FLAGS.whole_images)


def _entropy_coder():
  _require("images")
  entropy_coder.run(FLAGS.output_dir, FLAGS.model, FLAGS.images,
                    FLAGS.max_images, FLAGS.quantizers, FLAGS.repeats,
                    FLAGS.timed_images)


def _learning_curve():
  if not FLAGS.history or not os.path.isfile(FLAGS.history):
    raise ValueError(f"--history must name a run's history.jsonl "
                     f"({FLAGS.history!r})")
  learning_curve.run(FLAGS.output_dir, FLAGS.history, FLAGS.fit_from,
                     [int(t) for t in FLAGS.project_to])


def main(argv):
  del argv
  if FLAGS.worker:
    harness.serve_worker(FLAGS.worker)
    return
  tool = dict(codec=_codec, memory=_memory, training=_training,
              precision=_precision, variable_rate=_variable_rate,
              generalization=_generalization, synthesis=_synthesis,
              learning_curve=_learning_curve,
              entropy_coder=_entropy_coder, seams=_seams)[FLAGS.what]
  try:
    tool()
  except (ValueError, OSError, RuntimeError) as e:
    sys.exit(f"error: {e}")


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
