"""Trains (or resumes training of) a hyperprior model (stage 1).

  tfc-lic-train --flagfile=configs/mbt2018-mean-vr.cfg

Running the same command again resumes from the newest checkpoint in
--train_dir. See tfc_lic/training.py for the layout of a run directory.
"""

import os
import sys

from absl import app
from absl import flags

from tfc_lic import cli
from tfc_lic import data
from tfc_lic import models
from tfc_lic import precision
from tfc_lic import training

FLAGS = flags.FLAGS
flags.DEFINE_string("train_dir", None, "Run directory (checkpoints, logs).")
flags.DEFINE_enum("architecture", "mbt2018-mean", sorted(models.ARCHITECTURES),
                  "Model architecture.")
flags.DEFINE_list("lmbdas", ["0.0067"],
                  "Rate-distortion trade-offs (loss = bpp + λ·MSE on 0..255); "
                  "more than one trains a variable-rate model.")
flags.DEFINE_integer("num_filters", 128, "Channels N of the transforms.")
flags.DEFINE_integer("latent_channels", 192, "Channels M of the latents.")
flags.DEFINE_integer("hyper_filters", None,
                     "Channels of the hyper-analysis and of z (default: "
                     "--num_filters).")
cli.define_precision_flag("Compute precision of the transforms (entropy "
                          "models are always float32).")
cli.define_training_flags(steps=100000, decay_start=0.8,
                          checkpoint_every=500, log_every=50,
                          validate_every=1000, average_decay=0.999)
flags.DEFINE_enum("up_kernel", "variable", ["variable", "rdft"],
                  "Parameterization of the up-convolution kernels (syntheses, "
                  "hyper-synthesis): the kernel itself, or its RDFT as tfc "
                  "parameterizes the analysis's. A run or milestone of the "
                  "other kind converts on --init_from/--continue_from.")
flags.DEFINE_string("init_from", None,
                    "Warm start: weights of another run or export (only when "
                    "--train_dir has no checkpoint yet); a narrower model's "
                    "weights start a wider one at the same function.")
flags.DEFINE_enum("proxy", "noise", ["noise", "mixed", "round"],
                  "Quantization proxy: additive uniform noise; 'mixed': noise "
                  "for the rates, latents rounded around the mean (straight-"
                  "through) for the syntheses; or rounding everywhere "
                  "(deterministic steps).")
flags.DEFINE_string("continue_from", None,
                    "Carry on a run from its compact weights and history "
                    "(e.g. checkpoints/<model>) on a machine that lacks its "
                    "run directory: steps and history go on, the optimizer "
                    "restarts. Ignored once --train_dir has a checkpoint.")
flags.mark_flags_as_required(["train_dir", "dataset"])


def model_config():
  config = dict(architecture=FLAGS.architecture,
                lmbdas=[float(l) for l in FLAGS.lmbdas],
                num_filters=FLAGS.num_filters,
                latent_channels=FLAGS.latent_channels,
                precision=precision.resolve(FLAGS.precision))
  # Runs without these keep their config.json as it was.
  if FLAGS.hyper_filters:
    config["hyper_filters"] = FLAGS.hyper_filters
  if FLAGS.up_kernel != "variable":
    config["up_kernel"] = FLAGS.up_kernel
  return config


def main(argv):
  del argv
  train_dir = os.path.expanduser(FLAGS.train_dir)
  try:
    strategy = cli.training_strategy()
    config = model_config()
    training.init_run_dir(train_dir, config)
    with strategy.scope():
      model = training.model_from_config(config)
    model.proxy = FLAGS.proxy
    trainer = training.Trainer(
        model, train_dir, FLAGS.steps,
        learning_rate=FLAGS.learning_rate, decay_start=FLAGS.decay_start,
        checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every,
        validate_every=FLAGS.validate_every, clip_norm=FLAGS.clip_norm,
        average_decay=FLAGS.average_decay, strategy=strategy)
    if not trainer.latest_checkpoint:
      if FLAGS.continue_from:
        step = trainer.continue_from(FLAGS.continue_from)
        print(f"continuing {FLAGS.continue_from} at step {step}")
      elif FLAGS.init_from:
        print(f"warm start from {training.load_weights(model, FLAGS.init_from)}")
    train_data, validation_data = data.train_and_validation(
        FLAGS.dataset, FLAGS.validation, FLAGS.patch_size, FLAGS.batch_size,
        FLAGS.validation_patch_size, FLAGS.seed, strategy,
        FLAGS.max_downscale)
    trainer.fit(train_data, validation_data)
    print(f"weights fingerprint {training.weights_fingerprint(model)}")
  except (training.TrainingError, ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
