"""Adapter that lets evaluation measure a codec SavedModel like a classic codec.

Name "<model>:<quantizer>" (model: zoo name or path), or
"<model>:<quantizer>+refine<N>" to encode with the latents refined by N
gradient steps (tfc_lic.refinement; through the model's core SavedModel and
tfc_lic.client, as a served model refines; same decoder); a setting is a pair
(rate index, step index j) and is written "rate" or "rate@j" on the command
line. The default sweep is every trained rate at the model's step for that
quantizer.
"""

import tensorflow as tf

from tfc_lic import image_io
from tfc_lic import latent_codecs
from tfc_lic import zoo

_LOADED = {}
_CLIENTS = {}


def is_learned(name):
  return ":" in name


def parse_setting(text):
  rate, _, delta_index = str(text).partition("@")
  return (float(rate), int(delta_index) if delta_index else None)


class LearnedCodec:
  """Encodes through `compress_with_options` (refining: the client over the
  core model), decodes through `decompress`."""

  def __init__(self, name):
    model, _, quantizer = name.rpartition(":")
    quantizer, _, refine = quantizer.partition("+")
    if quantizer not in latent_codecs.QUANTIZER_IDS:
      raise ValueError(f"{name}: quantizer must be one of "
                       f"{', '.join(latent_codecs.QUANTIZER_IDS)}")
    steps = refine[len("refine"):]
    if refine and not (refine.startswith("refine") and steps.isdigit()):
      raise ValueError(f"{name}: expected <model>:<quantizer>+refine<steps>")
    self.refine_steps = int(steps) if refine else None
    path = zoo.find(model)
    if path not in _LOADED:
      _LOADED[path] = zoo.load(path)
    self.saved_model = _LOADED[path]
    self.name = name
    self.quantizer = quantizer
    info = self.saved_model.info
    self.default_delta_index = info["delta_indexes"][quantizer]
    self.settings = [(float(r), self.default_delta_index)
                     for r in range(len(info["lmbdas"]))]
    self.params = dict(model=path, quantizer=quantizer,
                       model_id=info["model_id"])
    if self.refine_steps is not None:
      self.params["refine_steps"] = self.refine_steps
      if path not in _CLIENTS:
        _CLIENTS[path] = zoo.load_core(path)
      self.client = _CLIENTS[path]

  def encode(self, image, setting):
    rate, delta_index = setting
    if delta_index is None:
      delta_index = self.default_delta_index
    if self.refine_steps is not None:
      return self.client.compress(image, self.quantizer, rate, delta_index,
                                  self.refine_steps)
    return self.saved_model.signatures["compress_with_options"](
        image=image_io.to_tensor(image),
        quantizer=tf.constant(latent_codecs.QUANTIZER_IDS[self.quantizer]),
        rate=tf.constant(rate, tf.float32),
        delta_index=tf.constant(delta_index, tf.int32))["stream"].numpy()

  def decode(self, data):
    return self.saved_model.signatures["decompress"](
        stream=tf.constant(data))["image"].numpy()
