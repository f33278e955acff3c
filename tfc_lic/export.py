"""SavedModel export of a codec, laid out as TF Serving expects.

`export_codec` writes <base>/<name>/<version>/ with signatures:
  compress(image)                                   -> stream   (defaults)
  compress_with_options(image, quantizer, rate, delta_index) -> stream
  decompress(stream)                                -> image
  metadata()                                        -> model id, λs, ...
These use tfc's range-coding ops: import tensorflow_compression before
tf.saved_model.load. `load` finds the newest version of a model directory.
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf

from tfc_lic import codec as codec_lib
from tfc_lic import container

METADATA_FILE = "metadata.json"


class CodecModule(tf.Module):
  """What a SavedModel holds: the codec and its default settings."""

  def __init__(self, codec, metadata, default_quantizer, default_rate,
               default_delta_index):
    super().__init__(name="codec_module")
    self.codec = codec
    self.metadata_json = json.dumps(metadata)
    self.default_quantizer = codec_lib.quantizer_id(default_quantizer)
    self.default_rate = float(default_rate)
    self.default_delta_index = int(default_delta_index)

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
  def compress(self, image):
    return {"stream": self.codec.compress(
        image, self.default_quantizer, self.default_rate,
        self.default_delta_index)}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
      tf.TensorSpec([], tf.int32, name="quantizer"),
      tf.TensorSpec([], tf.float32, name="rate"),
      tf.TensorSpec([], tf.int32, name="delta_index")])
  def compress_with_options(self, image, quantizer, rate, delta_index):
    return {"stream": self.codec.compress(image, quantizer, rate, delta_index)}

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="stream")])
  def decompress(self, stream):
    return {"image": self.codec.decompress(stream)}

  @tf.function(input_signature=[])
  def metadata(self):
    return {"json": tf.constant(self.metadata_json)}


def export_codec(codec, base_dir, name, version, metadata,
                 default_quantizer="usq", default_rate=None,
                 delta_indexes=None, overwrite=False):
  """Writes the SavedModel to base_dir/name/version; returns that path.

  `delta_indexes` maps quantizers to their default step index j (metadata for
  clients); `compress` uses the default quantizer with its j.
  """
  delta_indexes = dict({q: 0 for q in codec_lib.QUANTIZERS},
                       **(delta_indexes or {}))
  default_delta_index = delta_indexes[default_quantizer]
  path = os.path.join(base_dir, name, str(int(version)))
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
  if default_rate is None:
    default_rate = codec.model.num_rates - 1
  metadata = dict(
      metadata, model_id=int(codec.model_id.numpy()),
      format_version=container.VERSION,
      quantizers=list(codec_lib.QUANTIZERS),
      lmbdas=list(codec.model.lmbdas),
      default_quantizer=default_quantizer, default_rate=default_rate,
      default_delta_index=default_delta_index, delta_indexes=delta_indexes,
      tcq_lambda=codec.latent_codecs[-1].lmbda)
  module = CodecModule(codec, metadata, default_quantizer, default_rate,
                       default_delta_index)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".export-")
  try:
    tf.saved_model.save(module, staging, signatures={
        "compress": module.compress,
        "compress_with_options": module.compress_with_options,
        "decompress": module.decompress,
        "metadata": module.metadata,
    })
    os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
    with open(os.path.join(staging, "assets", METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=1)
    if os.path.exists(path):
      shutil.rmtree(path)
    os.replace(staging, path)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging)
  return path


def resolve(model_dir):
  """A version directory: `model_dir` itself, or its highest version."""
  if os.path.exists(os.path.join(model_dir, "saved_model.pb")):
    return model_dir
  versions = [d for d in os.listdir(model_dir) if d.isdigit()] if (
      os.path.isdir(model_dir)) else []
  if not versions:
    raise FileNotFoundError(f"no SavedModel at {model_dir}")
  return os.path.join(model_dir, max(versions, key=int))


def load(model_dir):
  """Loads a codec SavedModel (imports tensorflow_compression for its ops)."""
  import tensorflow_compression  # pylint: disable=g-import-not-at-top,unused-import
  path = resolve(model_dir)
  loaded = tf.saved_model.load(path)
  with open(os.path.join(path, "assets", METADATA_FILE)) as f:
    loaded.info = json.load(f)
  return loaded
