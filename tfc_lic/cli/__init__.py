"""The absl commands (`tfc-lic-*`, one module each) and their shared helpers:
one-line errors, per-quantizer flags, training flags."""

# First: starts TensorFlow (oneDNN kernels, no C++ log noise).
from tfc_lic import startup  # pylint: disable=g-bad-import-order,unused-import

import contextlib
import re
import sys

from absl import flags
import tensorflow as tf

from tfc_lic import codec
from tfc_lic import distribute
from tfc_lic import image_io
from tfc_lic import precision
from tfc_lic import zoo

def per_quantizer(flag, parse):
  """{quantizer: value} from a list flag of 'name=value' items."""
  values = {}
  for item in flags.FLAGS[flag].value:
    name, _, value = item.partition("=")
    codec.quantizer_id(name)
    try:
      values[name] = parse(value)
    except ValueError:
      raise ValueError(
          f"--{flag}: expected quantizer=value, got {item!r}") from None
  return values


def stream_error(error):
  """A TF error in one line: the codec's own message (a failed check), else
  the op's, as a stream the codec could not read."""
  message = getattr(error, "message", str(error))
  if re.search(r"assertion failed: \[|Summarized data: b'", message):
    return codec.error_message(error)
  reason = codec.error_message(error) or message.strip()[:200]
  return f"corrupt or unreadable stream ({reason})"


@contextlib.contextmanager
def one_line_errors():
  """Turns expected failures into `error: ...` on stderr and exit code 1."""
  try:
    yield
  except (image_io.ImageError, ValueError) as e:
    sys.exit(f"error: {e}")
  except tf.errors.OpError as e:
    sys.exit(f"error: {stream_error(e)}")
  except OSError as e:  # Ours carry a message, the system's an errno.
    sys.exit(f"error: {e.strerror}: {e.filename}" if e.errno else
             f"error: {e}")


def define_model_flag():
  """--model: the codec SavedModel (tfc_lic.zoo.find's rule)."""
  flags.DEFINE_string("model", zoo.DEFAULT_MODEL,
                      "Codec SavedModel: a path, or a zoo name looked up in "
                      f"${zoo.MODELS_ENV}, then in the checkout's "
                      "saved_models/.")


def define_precision_flag(help_text):
  """--precision: "auto" (bf16 where the hardware has it), float32, bfloat16."""
  flags.DEFINE_enum("precision", "auto", list(precision.CHOICES),
                    help_text + ' "auto" takes bfloat16 only where the '
                    "CPU/GPU computes it natively.")


def define_training_flags(steps, decay_start, checkpoint_every, log_every,
                          validate_every, average_decay):
  """Defines the data, schedule and bookkeeping flags of train/finetune."""
  flags.DEFINE_string("dataset", None,
                      "Training images: a tfds name, or local folders/globs "
                      "(comma-separated).")
  flags.DEFINE_string("validation", None,
                      "Validation images (same forms as --dataset); a tfds "
                      "name uses its 'validation' split.")
  # The bounds make a bad value a one-line flags error before any work.
  flags.DEFINE_integer("patch_size", 256, "Training crop size.",
                       lower_bound=16)
  flags.DEFINE_integer("batch_size", 8, "Crops per step.", lower_bound=1)
  flags.DEFINE_float("max_downscale", 1.,
                     "Training crops cover up to this many times the patch "
                     "side (as the image allows), downscaled to the patch; "
                     "1: crops at full resolution.", lower_bound=1.)
  flags.DEFINE_integer("validation_patch_size", 256, "Validation crop size.",
                       lower_bound=16)
  flags.DEFINE_integer("steps", steps, "Total training steps.", lower_bound=1)
  flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate.",
                     lower_bound=0.)
  flags.DEFINE_float("clip_norm", None,
                     "Clip gradients to this global norm (CompressAI uses "
                     "1.0); guards against loss spikes.", lower_bound=0.)
  flags.DEFINE_float("decay_start", decay_start,
                     "Fraction of --steps after which the rate decays 10x.",
                     lower_bound=0., upper_bound=1.)
  flags.DEFINE_float("average_decay", average_decay,
                     "Keep a moving average of the weights with this decay "
                     "(0: off); validation reports it too and the run's "
                     "weights/ (what export and stage 2 read) hold it.",
                     lower_bound=0., upper_bound=1.)
  flags.DEFINE_integer("checkpoint_every", checkpoint_every,
                       "Steps between checkpoints.", lower_bound=1)
  flags.DEFINE_integer("log_every", log_every, "Steps between progress lines.",
                       lower_bound=1)
  flags.DEFINE_integer("validate_every", validate_every,
                       "Steps between validations (0: never).",
                       lower_bound=0)
  flags.DEFINE_integer("seed", None, "Random seed.")
  flags.DEFINE_enum("strategy", "default", distribute.STRATEGIES,
                    "tf.distribute strategy (multi_worker_mirrored reads "
                    "TF_CONFIG); --batch_size is the global batch.")
  flags.DEFINE_string("tpu", None, "TPU name or address (--strategy=tpu).")
  flags.DEFINE_integer("cpu_devices", 0,
                       "Split the CPU into this many logical devices (for "
                       "--strategy=mirrored without GPUs); 0: don't.")
  flags.DEFINE_integer("intra_op_threads", 0, "TF intra-op threads (0: all).")
  flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0: all).")


def training_strategy():
  """Applies the device flags and returns the strategy (call first in main)."""
  tf.config.threading.set_intra_op_parallelism_threads(
      flags.FLAGS.intra_op_threads)
  tf.config.threading.set_inter_op_parallelism_threads(
      flags.FLAGS.inter_op_threads)
  if flags.FLAGS.cpu_devices:
    distribute.split_cpu(flags.FLAGS.cpu_devices)
  if flags.FLAGS.seed is not None:
    tf.keras.utils.set_random_seed(flags.FLAGS.seed)
  return distribute.create_strategy(flags.FLAGS.strategy, flags.FLAGS.tpu)
