"""Image codec: model + latent codecs + container -> real bitstreams.

The codec has two halves, so that a deployment can split them:
  `Transforms`     the model side (analysis, quantization incl. the TCQ
                   search, hyper decoding, synthesis): core TF ops only, so
                   it exports to a SavedModel that stock TF Serving loads;
  `EntropyCoder`   range coding with tfc's ops and the container.
`ImageCodec` joins them: `compress` takes a uint8 image and returns the
container bytes, `decompress` inverts it. Both are tf.functions with input
signatures (graph code end to end) so that they export unchanged. `encode`
and `decode` return the intermediate tensors too (y_hat, estimated bits).
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
    digest.update(np.ascontiguousarray(v.numpy(), np.float32).tobytes())
  return int.from_bytes(digest.digest()[:4], "big")


def quantizer_id(name):
  if name not in latent_codecs.QUANTIZER_IDS:
    raise CodecError(f"unknown quantizer {name!r}; choose from "
                     f"{', '.join(QUANTIZERS)}")
  return latent_codecs.QUANTIZER_IDS[name]


def latent_shape(height, width):
  """Spatial shape of y for an image (the analysis downsamples by 16)."""
  return tf.stack([(height + 15) // 16, (width + 15) // 16])


def container_rate(rate):
  """The rate index as the container stores it (1/256 steps)."""
  return tf.round(tf.cast(rate, tf.float32) * 256.) / 256.


def _switch(quantizer, fn):
  """fn(latent codec index) for the (tensor) quantizer id."""
  return tf.switch_case(tf.convert_to_tensor(quantizer, tf.int32),
                        [lambda i=i: fn(i) for i in range(len(QUANTIZERS))])


class Transforms(tf.Module):
  """The model half of the codec; core TensorFlow ops only."""

  def __init__(self, model, side_model, codecs, name="transforms"):
    super().__init__(name=name)
    # The Keras model and tfc's entropy model are kept out of the object
    # graph (Keras traces every layer on save, which tfc.GDN does not
    # survive); their variables are tracked directly.
    object.__setattr__(self, "model", model)
    object.__setattr__(self, "side_model", side_model)
    self.model_variables = list(model.variables)
    self.side_variables = list(side_model.variables)
    self.latent_codecs = codecs

  def latents(self, x, rate):
    """Images [B, H, W, 3] -> y, z, z_hat and the hyperprior's loc, scale."""
    y, z = self.model.analyze(x, rate)
    z_hat = self.side_model.quantize(z)
    loc, scale_index = self.model.hyper_decode(
        z_hat, tf.shape(y)[1:3], exact=True)
    return dict(y=y, z=z, z_hat=z_hat, loc=loc, scale_index=scale_index)

  def quantize(self, latents, quantizer, delta_index):
    """(k, table ids, y_hat) of the latents under a quantizer id."""
    return _switch(quantizer, lambda i: self.latent_codecs[i].quantize(
        latents["y"], latents["loc"], latents["scale_index"], delta_index))

  def analyze(self, image, quantizer, rate, delta_index):
    """uint8 image [H, W, 3] -> latents plus indexes k, tables and y_hat."""
    shape = tf.shape(image)
    check = container.assert_size(
        shape[0], shape[1],
        f"image size outside the codec limit of 1 to {container.MAX_PIXELS} "
        "pixels")
    with tf.control_dependencies([check]):
      image = tf.identity(image)
    latents = self.latents(tf.cast(image, tf.float32)[None], rate)
    k, table, y_hat = self.quantize(latents, quantizer, delta_index)
    return dict(latents, k=k, table=table, y_hat=y_hat)

  def hyper_decode(self, z_hat, height, width):
    """Decoded z [1, h, w, C] -> (loc, scale_index) for the image's y."""
    return self.model.hyper_decode(z_hat, latent_shape(height, width),
                                   exact=True)

  def synthesize(self, y_hat, quantizer, rate, height, width):
    """y_hat -> uint8 image with the synthesis finetuned for its quantizer."""
    x_hat = _switch(quantizer, lambda i: self.model.synthesize(
        y_hat, rate, tf.stack([height, width]),
        self.model.synthesis_for(QUANTIZERS[i])))
    return tf.saturate_cast(tf.round(x_hat[0]), tf.uint8)


class EntropyCoder(tf.Module):
  """The entropy-coding half: tfc range coding of z and k, and the container."""

  def __init__(self, side_model, codecs, model_id, name="entropy_coder"):
    super().__init__(name=name)
    self.side_model = side_model
    self.latent_codecs = codecs
    self.model_id = tf.constant(model_id, tf.int64)

  def encode(self, z, k, table, quantizer, delta_index, rate, height, width):
    """Container bytes of z [1, h, w, C] and indexes k coded with `table`."""
    z_string = self.side_model.compress(z)[0]
    y_string = _switch(quantizer,
                       lambda i: self.latent_codecs[i].encode(k, table))
    return container.pack(self.model_id, quantizer, delta_index, rate, height,
                          width, z_string, y_string)

  def decode_side(self, stream):
    """Parses a container and decodes z: (fields dict, z_hat [1, h, w, C])."""
    fields = container.unpack(stream, self.model_id)
    z_shape = (latent_shape(fields["height"], fields["width"]) + 3) // 4
    z_hat = self.side_model.decompress(fields["z_string"][None], z_shape)
    tf.debugging.Assert(
        (fields["quantizer"] >= 0) & (fields["quantizer"] < len(QUANTIZERS)),
        ["unknown quantizer id in stream"])
    return fields, z_hat

  def decode_latents(self, fields, loc, scale_index):
    """(k, y_hat) from the container's y string and the hyperprior's output."""
    return _switch(fields["quantizer"], lambda i: self.latent_codecs[i].decode(
        fields["y_string"], loc, scale_index, fields["delta_index"]))


class ImageCodec(tf.Module):
  """Compresses RGB images with a trained hyperprior model."""

  def __init__(self, model, tcq_lambda=None, name="image_codec"):
    super().__init__(name=name)
    side_model = model.side_entropy_model(compression=True)
    self.tables = entropy_tables.EntropyTables.build(
        model.num_scales, model.scale_min)
    self.latent_codecs = [latent_codecs.create(q, self.tables, tcq_lambda)
                          for q in QUANTIZERS]
    self.transforms = Transforms(model, side_model, self.latent_codecs)
    self.coder = EntropyCoder(side_model, self.latent_codecs,
                              encoder_fingerprint(model))
    self.model_id = self.coder.model_id

  @property
  def model(self):
    return self.transforms.model

  @property
  def side_entropy_model(self):
    return self.coder.side_model

  def encode(self, image, quantizer, rate, delta_index):
    """Returns a dict: container, y, y_hat, k, estimated bits of y and z."""
    quantizer = tf.convert_to_tensor(quantizer, tf.int32)
    delta_index = tf.convert_to_tensor(delta_index, tf.int32)
    rate = container_rate(rate)
    out = self.transforms.analyze(image, quantizer, rate, delta_index)
    packed = self.coder.encode(
        out["z"], out["k"], out["table"], quantizer, delta_index, rate,
        tf.shape(image)[0], tf.shape(image)[1])
    _, z_bits = self.model.side_entropy_model()(out["z"], training=False)
    y_bits = tf.reduce_sum(self.tables.bits(out["table"], out["k"]))
    return dict(container=packed, y_hat=out["y_hat"], k=out["k"],
                y_bits=y_bits, z_bits=z_bits[0], y=out["y"])

  def decode(self, stream):
    """Returns a dict: image (uint8), y_hat, k and the container fields."""
    fields, z_hat = self.coder.decode_side(stream)
    loc, scale_index = self.transforms.hyper_decode(
        z_hat, fields["height"], fields["width"])
    k, y_hat = self.coder.decode_latents(fields, loc, scale_index)
    image = self.transforms.synthesize(
        y_hat, fields["quantizer"], fields["rate"], fields["height"],
        fields["width"])
    return dict(image=image, y_hat=y_hat, k=k, **fields)

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
