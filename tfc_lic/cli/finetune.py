"""Stage 2: finetunes per-quantizer syntheses of a trained stage-1 model.

  tfc-lic-finetune --flagfile=configs/mbt2018-mean-vr-stage2.cfg

Freezes everything that makes the bitstream, quantizes latents with the real
USQ/TCQ, and trains one synthesis per --quantizers (see tfc_lic/finetuning.py).
The result is a run directory like stage 1's; tfc-lic-export exports it, and
its codec decodes streams of the stage-1 model (same model id).
"""

import os
import sys

from absl import app
from absl import flags

from tfc_lic import cli
from tfc_lic import codec as codec_lib
from tfc_lic import data
from tfc_lic import finetuning
from tfc_lic import precision
from tfc_lic import settings
from tfc_lic import training

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Stage-1 run directory (config + weights).")
flags.DEFINE_string("train_dir", None, "Stage-2 run directory.")
flags.DEFINE_list("quantizers", ["usq", "tcq8"],
                  "Quantizers to finetune a synthesis for.")
# Defaults: the shipped settings (tfc_lic/settings.py), which export writes.
flags.DEFINE_list("delta_indexes", settings.as_flag(settings.DELTA_INDEXES),
                  "Step index per quantizer, 'name=j' (Δ = 2**(j/8)).")
flags.DEFINE_float("tcq_lambda", settings.TCQ_LAMBDA,
                   "TCQ rate weight λ (units of Δ²).")
cli.define_precision_flag("Compute precision of the synthesis while "
                          "training.")
cli.define_training_flags(steps=2000, decay_start=0.5, checkpoint_every=250,
                          log_every=25, validate_every=500, average_decay=0.)
flags.mark_flags_as_required(["run", "train_dir", "dataset"])


def main(argv):
  del argv
  try:
    strategy = cli.training_strategy()
    run = os.path.expanduser(FLAGS.run)
    train_dir = os.path.expanduser(FLAGS.train_dir)
    for q in FLAGS.quantizers:
      codec_lib.quantizer_id(q)
    delta_indexes = cli.per_quantizer("delta_indexes", int)
    stage1 = training.load_config(os.path.join(run, "config.json"))
    # The syntheses train in --precision; the frozen encoder computes in
    # float32, as the codec does, so they train on the codec's own latents.
    config = dict(stage1, precision=precision.resolve(FLAGS.precision),
                  frozen_precision="float32",
                  finetuned_quantizers=list(FLAGS.quantizers))
    training.init_run_dir(train_dir, config)
    with strategy.scope():
      model = training.model_from_config(config)
      training.load_weights(model, run)
      for q in FLAGS.quantizers:
        finetuning.copy_synthesis(model, q)
      finetuner = finetuning.SynthesisFinetuner(
          model, tcq_lambda=FLAGS.tcq_lambda, delta_indexes=delta_indexes)
    trainer = training.Trainer(
        finetuner, train_dir, FLAGS.steps, learning_rate=FLAGS.learning_rate,
        decay_start=FLAGS.decay_start,
        checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every,
        validate_every=FLAGS.validate_every, clip_norm=FLAGS.clip_norm,
        average_decay=FLAGS.average_decay, weights_of=model,
        strategy=strategy)
    train_data, validation_data = data.train_and_validation(
        FLAGS.dataset, FLAGS.validation, FLAGS.patch_size, FLAGS.batch_size,
        FLAGS.validation_patch_size, FLAGS.seed, strategy,
        FLAGS.max_downscale)
    trainer.fit(train_data, validation_data)
  except (training.TrainingError, ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
