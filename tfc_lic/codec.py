"""Image codec: model + latent codecs + container -> real bitstreams.

`ImageCodec.compress` takes a uint8 image and returns the container bytes;
`decompress` inverts it. Both are tf.functions with input signatures (graph
code end to end) so that they export to a SavedModel unchanged. `encode` and
`decode` return the intermediate tensors too (y_hat, estimated bits) for tests
and evaluation.
"""

import hashlib

import numpy as np
import tensorflow as tf

from tfc_lic import container
from tfc_lic import entropy_tables
from tfc_lic import latent_codecs

QUANTIZERS = tuple(latent_codecs.QUANTIZER_IDS)


class CodecError(ValueError):
  """A stream or an image the codec cannot handle (one-line message)."""


def encoder_fingerprint(model):
  """32-bit id of everything that determines the bitstream.

  Covers the analysis, hyper transforms, factorized prior and gains, but not
  the synthesis: a stage-2 model (new synthesis) still decodes stage-1 streams.
  """
  digest = hashlib.sha256()
  parts = [model.analysis_transform, model.hyper_analysis_transform,
           model.hyper_synthesis_transform, model.hyperprior]
  variables = [v for p in parts for v in p.trainable_variables] + [model.gain]
  for v in variables:
    digest.update(v.name.encode())
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return int.from_bytes(digest.digest()[:4], "big")


def quantizer_id(name):
  if name not in latent_codecs.QUANTIZER_IDS:
    raise CodecError(f"unknown quantizer {name!r}; choose from "
                     f"{', '.join(QUANTIZERS)}")
  return latent_codecs.QUANTIZER_IDS[name]


class ImageCodec(tf.Module):
  """Compresses RGB images with a trained hyperprior model."""

  def __init__(self, model, tcq_lambda=None, name="image_codec"):
    super().__init__(name=name)
    # The Keras model is kept out of the object graph: saving a Keras model
    # makes Keras trace every layer without AutoGraph, which tfc.GDN does not
    # survive. Its variables are tracked directly, which is all the tf.functions
    # below need.
    object.__setattr__(self, "model", model)
    self.model_variables = list(model.variables)
    self.side_entropy_model = model.side_entropy_model(compression=True)
    self.tables = entropy_tables.EntropyTables(
        model.num_scales, model.scale_min)
    self.latent_codecs = [latent_codecs.create(q, self.tables, tcq_lambda)
                          for q in QUANTIZERS]
    self.model_id = tf.constant(encoder_fingerprint(model), tf.int64)

  def encode(self, image, quantizer, rate, delta_index):
    """Returns a dict: container, y_hat, k, estimated bits of y and z."""
    quantizer = tf.convert_to_tensor(quantizer, tf.int32)
    delta_index = tf.convert_to_tensor(delta_index, tf.int32)
    rate = tf.convert_to_tensor(rate, tf.float32)
    x = tf.cast(image, tf.float32)[None]
    y, z = self.model.analyze(x, rate)
    z_hat = self.side_entropy_model.quantize(z)
    z_string = self.side_entropy_model.compress(z)[0]
    _, z_bits = self.side_entropy_model(z, training=False)
    loc, scale_index = self.model.hyper_decode(z_hat, tf.shape(y)[1:3])

    def branch(codec):
      def fn():
        k, table, y_hat = codec.quantize(y, loc, scale_index, delta_index)
        return (k, y_hat, codec.encode(k, table),
                tf.reduce_sum(self.tables.bits(table, k)))
      return fn

    k, y_hat, y_string, y_bits = tf.switch_case(
        quantizer, [branch(c) for c in self.latent_codecs])
    packed = container.pack(
        self.model_id, quantizer, delta_index, rate, tf.shape(image)[0],
        tf.shape(image)[1], z_string, y_string)
    return dict(container=packed, y_hat=y_hat, k=k, y_bits=y_bits,
                z_bits=z_bits[0], y=y)

  def decode(self, stream):
    """Returns a dict: image (uint8), y_hat, k and the container fields."""
    fields = container.unpack(stream, self.model_id)
    height, width = fields["height"], fields["width"]
    y_shape = tf.stack([(height + 15) // 16, (width + 15) // 16])
    z_shape = (y_shape + 3) // 4
    z_hat = self.side_entropy_model.decompress(
        fields["z_string"][None], z_shape)
    loc, scale_index = self.model.hyper_decode(z_hat, y_shape)

    def branch(codec):
      return lambda: codec.decode(fields["y_string"], loc, scale_index,
                                  fields["delta_index"])

    tf.debugging.Assert(
        (fields["quantizer"] >= 0) & (fields["quantizer"] < len(QUANTIZERS)),
        ["unknown quantizer id in stream"])
    k, y_hat = tf.switch_case(
        fields["quantizer"], [branch(c) for c in self.latent_codecs])
    x_hat = self.synthesize(
        y_hat, fields["quantizer"], fields["rate"], tf.stack([height, width]))
    image = tf.saturate_cast(tf.round(x_hat[0]), tf.uint8)
    return dict(image=image, y_hat=y_hat, k=k, **fields)

  def synthesize(self, y_hat, quantizer, rate, x_shape):
    """Decodes y_hat with the synthesis finetuned for its quantizer, if any."""
    return tf.switch_case(tf.convert_to_tensor(quantizer, tf.int32), [
        lambda q=q: self.model.synthesize(
            y_hat, rate, x_shape, self.model.synthesis_for(q))
        for q in QUANTIZERS])

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
      tf.TensorSpec([], tf.int32, name="quantizer"),
      tf.TensorSpec([], tf.float32, name="rate"),
      tf.TensorSpec([], tf.int32, name="delta_index"),
  ])
  def compress(self, image, quantizer, rate, delta_index):
    """uint8 image [H, W, 3] -> container bytes."""
    return self.encode(image, quantizer, rate, delta_index)["container"]

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="stream")])
  def decompress(self, stream):
    """Container bytes -> uint8 image [H, W, 3]."""
    return self.decode(stream)["image"]
