"""Adapter that lets evaluation measure a codec SavedModel like a classic codec.

Name "<model>:<quantizer>" (model: zoo name or path); a setting is a pair
(rate index, step index j) and is written "rate" or "rate@j" on the command
line. The default sweep is every trained rate at the model's step for that
quantizer.
"""

import tensorflow as tf

from tfc_lic import cli
from tfc_lic import export
from tfc_lic import latent_codecs

_LOADED = {}


def is_learned(name):
  return ":" in name


def parse_setting(text):
  rate, _, delta_index = str(text).partition("@")
  return (float(rate), int(delta_index) if delta_index else None)


class LearnedCodec:
  """Encodes through `compress_with_options`, decodes through `decompress`."""

  def __init__(self, name):
    model, _, quantizer = name.rpartition(":")
    if quantizer not in latent_codecs.QUANTIZER_IDS:
      raise ValueError(f"{name}: quantizer must be one of "
                       f"{', '.join(latent_codecs.QUANTIZER_IDS)}")
    path = cli.model_path(model)
    if path not in _LOADED:
      _LOADED[path] = export.load(path)
    self.saved_model = _LOADED[path]
    self.name = name
    self.quantizer = quantizer
    info = self.saved_model.info
    self.default_delta_index = info["delta_indexes"][quantizer]
    self.settings = [(float(r), self.default_delta_index)
                     for r in range(len(info["lmbdas"]))]
    self.params = dict(model=path, quantizer=quantizer,
                       model_id=info["model_id"])

  def encode(self, image, setting):
    rate, delta_index = setting
    if delta_index is None:
      delta_index = self.default_delta_index
    return self.saved_model.signatures["compress_with_options"](
        image=tf.constant(image),
        quantizer=tf.constant(latent_codecs.QUANTIZER_IDS[self.quantizer]),
        rate=tf.constant(rate, tf.float32),
        delta_index=tf.constant(delta_index, tf.int32))["stream"].numpy()

  def decode(self, data):
    return self.saved_model.signatures["decompress"](
        stream=tf.constant(data))["image"].numpy()
