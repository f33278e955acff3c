"""Helpers shared by the absl binaries: one-line errors and model lookup."""

import contextlib
import os
import re
import sys

import tensorflow as tf

from tfc_lic import image_io

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO_DIR = os.path.join(REPO_ROOT, "saved_models")
DEFAULT_MODEL = "mbt2018-mean-vr"


def model_path(model):
  """A SavedModel path, or a zoo name (a folder under saved_models/)."""
  if os.path.exists(model):
    return model
  candidate = os.path.join(ZOO_DIR, model)
  if os.path.exists(candidate):
    return candidate
  raise FileNotFoundError(f"no model at {model} (nor in {ZOO_DIR})")


def check_output(path, overwrite):
  """Refuses to replace an existing file unless --overwrite."""
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")


def stream_error(error):
  """The first line of a TF error: our container/decoder messages if any."""
  message = getattr(error, "message", str(error))
  match = re.search(r"\[(not a tfc-lic stream[^\]]*|corrupt[^\]]*|"
                    r"unsupported[^\]]*|stream was made[^\]]*|"
                    r"latent stream[^\]]*|unknown quantizer[^\]]*)\]", message)
  if match:
    return match.group(1)
  return "corrupt or unreadable stream (" + message.splitlines()[0][:200] + ")"


@contextlib.contextmanager
def one_line_errors():
  """Turns expected failures into `error: ...` on stderr and exit code 1."""
  try:
    yield
  except (image_io.ImageError, FileExistsError, FileNotFoundError,
          ValueError) as e:
    sys.exit(f"error: {e}")
  except tf.errors.OpError as e:
    sys.exit(f"error: {stream_error(e)}")
  except OSError as e:
    sys.exit(f"error: {e.strerror}: {e.filename}")
