"""Finding and loading models for inference: the one place that does it.

A codec SavedModel is named by its path or by a zoo name: a folder looked up
in each directory of $TFC_LIC_MODELS (os.pathsep-separated), then in the
checkout's saved_models/; a model folder stands for its newest version,
and its core model (`find_core`) is the folder beside it named <model>-core.
`load_trained` rebuilds the Keras model of a training run, of committed
weights (checkpoints/<model>) or of a codec SavedModel, in float32, as the
codec runs it.
"""

import json
import os

import tensorflow as tf

from tfc_lic import client
from tfc_lic import export
from tfc_lic import training

MODELS_ENV = "TFC_LIC_MODELS"
DEFAULT_MODEL = "mbt2018-mean-vr"
CHECKOUT_MODELS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "saved_models")


def search_path():
  """The folders a zoo name is looked up in, in order."""
  folders = [f for f in os.environ.get(MODELS_ENV, "").split(os.pathsep) if f]
  return [os.path.expanduser(f) for f in folders] + [CHECKOUT_MODELS]


def resolve(model_dir):
  """A version directory: `model_dir` itself, or its highest version."""
  if os.path.exists(os.path.join(model_dir, "saved_model.pb")):
    return model_dir
  versions = [d for d in os.listdir(model_dir) if d.isdigit()] if (
      os.path.isdir(model_dir)) else []
  if not versions:
    raise FileNotFoundError(f"no SavedModel at {model_dir}")
  return os.path.join(model_dir, max(versions, key=int))


def find(model):
  """The SavedModel version directory of a path or a zoo name."""
  path = os.path.expanduser(model)
  if os.path.exists(path):
    return resolve(path)
  for folder in search_path():
    if os.path.isdir(os.path.join(folder, model)):
      return resolve(os.path.join(folder, model))
  zoos = [f for f in search_path() if os.path.isdir(f)]
  raise FileNotFoundError(
      f"no model {model!r}: not a path, nor in "
      f"{', '.join(zoos) or 'a zoo folder'} (set {MODELS_ENV} to the folder "
      "of your models, or pass a path)")


def find_core(model):
  """The core-op SavedModel (export.py) of the same version beside the codec
  SavedModel of a path or a zoo name: what refined encoding runs on."""
  path = os.path.normpath(find(model))
  folder, version = os.path.split(path)
  core = os.path.join(folder + export.CORE_SUFFIX, version)
  if not os.path.exists(os.path.join(core, "saved_model.pb")):
    raise FileNotFoundError(f"no core model {core} beside {path} "
                            "(tfc-lic-export writes both)")
  return core


def load_core(model=DEFAULT_MODEL):
  """A tfc_lic.client.Client over the core model of `model` (see
  find_core), loaded in this process: how a SavedModel refines."""
  return client.Client(client.saved_model_transport(find_core(model)))


def load(model=DEFAULT_MODEL):
  """Loads a codec SavedModel (path or zoo name); `.info` is its metadata."""
  path = find(model)
  loaded = tf.saved_model.load(path)
  loaded.info = metadata(path)
  return loaded


def metadata(path):
  """The export metadata of a SavedModel version directory."""
  with open(os.path.join(path, "assets", export.METADATA_FILE)) as f:
    return json.load(f)


def _from_saved_model(path, precision):
  config = metadata(path)["config"]
  model = training.model_from_config(dict(config, precision=precision))
  reader = tf.train.load_checkpoint(os.path.join(path, "variables",
                                                 "variables"))
  for i, variable in enumerate(model.variables):
    value = reader.get_tensor(
        f"codec/transforms/model_variables/{i}/.ATTRIBUTES/VARIABLE_VALUE")
    if value.shape != tuple(variable.shape):
      raise ValueError(f"{path} does not fit its own config ({config})")
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))
  return model, config, os.path.join(*path.split(os.sep)[-2:])


def load_trained(path, precision="float32"):
  """(model, config, weights) of a run, weights or SavedModel at `path`, or
  of the SavedModel of a zoo name.

  `weights` names what was read (a checkpoint prefix, an .npz, or
  <model>/<version>). Inference runs in float32 whatever the training
  precision (bf16 is a training speed-up); `precision` overrides it.
  """
  path = os.path.expanduser(path)
  if not os.path.exists(path):
    path = find(path)
  try:
    saved_model = resolve(path)
  except FileNotFoundError:
    saved_model = None
  if saved_model:
    return _from_saved_model(saved_model, precision)
  config = training.config_of(path)
  if config is None:
    raise FileNotFoundError(f"no config.json at {path} or above it")
  model = training.model_from_config(dict(config, precision=precision))
  return model, config, training.load_weights(model, path)

