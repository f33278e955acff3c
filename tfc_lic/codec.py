"""Image codec: model + latent codecs + container -> real bitstreams.

The codec has two halves, so that a deployment can split them:
  `Transforms`     the model side (analysis, quantization incl. the TCQ
                   search, hyper decoding, each coding pass's parameters,
                   synthesis): core TF ops only, so it exports to a
                   SavedModel that stock TF Serving loads;
  `EntropyCoder`   entropy coding of z and the indexes (index_coder:
                   rANS in core TF ops, compiled with XLA), pass by pass
                   (see coding_passes), and the container.
`ImageCodec` joins them: `compress` takes a uint8 image and returns the
container bytes, `decompress` inverts it. Both are tf.functions with input
signatures (graph code end to end) so that they export unchanged. `encode`
and `decode` return the intermediate tensors too (y_hat, estimated bits).
"""

import hashlib
import re

import numpy as np
import tensorflow as tf

from tfc_lic import coding_passes
from tfc_lic import container
from tfc_lic import entropy_tables
from tfc_lic import index_coder
from tfc_lic import latent_codecs
from tfc_lic import refinement
from tfc_lic import settings

QUANTIZERS = tuple(latent_codecs.QUANTIZER_IDS)

# Inputs of an encode (and of the exported signatures that encode).
ENCODE_SIGNATURE = [
    tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
    tf.TensorSpec([], tf.int32, name="quantizer"),
    tf.TensorSpec([], tf.float32, name="rate"),
    tf.TensorSpec([], tf.int32, name="delta_index"),
]
REFINED_ENCODE_SIGNATURE = ENCODE_SIGNATURE + [
    tf.TensorSpec([], tf.int32, name="refine_steps")]
DECODE_SIGNATURE = [tf.TensorSpec([], tf.string, name="stream"),
                    tf.TensorSpec([], tf.int64, name="max_pixels")]


class CodecError(ValueError):
  """A stream or an image the codec cannot handle (one-line message)."""


def error_message(error):
  """The one-line message of a TF error: the text of the codec's failed
  check (tf.debugging.Assert's data), else the op's own message, which TF
  puts after the traceback of the node; None if there is neither."""
  message = getattr(error, "message", str(error))
  match = (re.search(r"assertion failed: \[([^\]]*)\]", message) or
           re.search(r"Summarized data: b'([^']*)'", message))
  if match:
    return match.group(1)
  lines = [line for line in message.splitlines() if line.strip() and
           not line[0].isspace() and not line.startswith(
               ("Graph execution error", "Detected at node", "Node:"))]
  return lines[-1][:200] if lines else None


def encoder_fingerprint(model):
  """32-bit id of everything that determines the bitstream.

  Covers the analysis, hyper transforms, factorized prior and gains, but not
  the synthesis: a stage-2 model (new synthesis) still decodes stage-1 streams.
  """
  digest = hashlib.sha256()
  parts = [model.analysis_transform, model.hyper_analysis_transform,
           model.hyper_synthesis_transform, model.hyperprior] + (
               [model.context] if model.context is not None else [])
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


def _per_quantizer(values, defaults, what):
  """[value of each of QUANTIZERS] from {quantizer: value}, `defaults`'
  for those not named; every value must be positive."""
  values = dict(values or {})
  for quantizer, value in values.items():
    quantizer_id(quantizer)
    if not value > 0:
      raise ValueError(f"{what} for {quantizer} must be positive, not {value}")
  return [float(values.get(q, defaults[q])) for q in QUANTIZERS]


def latent_shape(height, width):
  """Spatial shape of y for an image (the analysis downsamples by 16)."""
  return tf.stack([(height + 15) // 16, (width + 15) // 16])


def container_rate(rate):
  """The rate index as the container stores it (1/256 steps)."""
  return tf.round(tf.cast(rate, tf.float32) * 256.) / 256.


def check_arguments(quantizer, rate, delta_index, num_rates, what=""):
  """Ops that fail, naming the argument (after `what`), unless the quantizer
  id, rate index and step index are ones the codec takes (tf.switch_case
  would run its last branch for an unknown id; the header would wrap
  others)."""
  message = lambda name, allowed: f"{what}{name} must be {allowed}"
  return [
      tf.debugging.Assert(
          (quantizer >= 0) & (quantizer < len(QUANTIZERS)),
          [message("quantizer", ", ".join(
              f"{i} ({q})" for i, q in enumerate(QUANTIZERS)))]),
      tf.debugging.Assert(
          tf.math.is_finite(rate) & (rate >= 0.) & (rate <= num_rates - 1.),
          [message("rate", f"a rate index from 0 to {num_rates - 1}")]),
      container.assert_delta_index(
          delta_index, message("delta_index", f"from "
                               f"{container.MIN_DELTA_INDEX} to "
                               f"{container.MAX_DELTA_INDEX} (Δ = 2**(j/8))"))]


def switch_quantizer(quantizer, fn):
  """fn(latent codec index) for the (tensor) quantizer id."""
  return tf.switch_case(tf.convert_to_tensor(quantizer, tf.int32),
                        [lambda i=i: fn(i) for i in range(len(QUANTIZERS))])


class Transforms(tf.Module):
  """The model half of the codec; core TensorFlow ops only."""

  def __init__(self, model, side_model, codecs, refine_lambda_scales,
               refine_learning_rates, name="transforms"):
    super().__init__(name=name)
    # The Keras model and tfc's entropy model are kept out of the object
    # graph (Keras traces every layer on save, which tfc.GDN does not
    # survive); their variables are tracked directly.
    object.__setattr__(self, "model", model)
    object.__setattr__(self, "side_model", side_model)
    self.model_variables = list(model.variables)
    self.side_variables = list(side_model.variables)
    self.latent_codecs = codecs
    self.refine_lambda_scales = refine_lambda_scales
    self.refine_learning_rates = refine_learning_rates

  def latents(self, x, rate, refine=None):
    """Images [B, H, W, 3] -> y, z, z_hat and the hyperprior's loc, scale.

    `refine` (quantizer, delta_index, steps): y and z refined for that
    quantizer's synthesis (see refinement; one image at a time).
    """
    y, z = self.model.analyze(x, rate)
    if refine is not None:
      quantizer, delta_index, steps = refine
      y, z = switch_quantizer(quantizer, lambda i: refinement.refine(
          self.model, self.side_model.quantize, self.latent_codecs[i], x, y,
          z, rate, delta_index, steps,
          self.model.synthesis_for(QUANTIZERS[i]),
          self.refine_lambda_scales[i], self.refine_learning_rates[i]))
    z_hat = self.side_model.quantize(z)
    loc, scale_index = self.model.hyper_decode(
        z_hat, tf.shape(y)[1:3], exact=True)
    return dict(y=y, z=z, z_hat=z_hat, loc=loc, scale_index=scale_index)

  def pass_parameters(self, loc, scale_index, decoded):
    """(loc, scale_index) of a coding pass given the latents decoded so far
    (zero elsewhere); the hyperprior's own for a model without context."""
    return self.model.pass_parameters((loc, scale_index), decoded, exact=True)

  def quantize(self, latents, quantizer, delta_index):
    """(k, table ids, y_hat) of the latents under a quantizer id, pass by
    pass (a pass's parameters depend on the y_hat of the earlier ones)."""
    y = latents["y"]
    k = table = tf.zeros(tf.shape(y), tf.int32)
    y_hat = tf.zeros_like(y)
    shape = tf.shape(y)
    for indexes in coding_passes.positions(
        self.model.coding_scheme, shape[1], shape[2]):
      loc, scale_index = self.pass_parameters(
          latents["loc"], latents["scale_index"], y_hat)
      gather = lambda t, indexes=indexes: coding_passes.gather(t, indexes)
      out = switch_quantizer(quantizer, lambda i: self.latent_codecs[
          i].quantize(gather(y), gather(loc), gather(scale_index),
                      delta_index))
      k, table, y_hat = (coding_passes.scatter(t, indexes, v)
                         for t, v in zip((k, table, y_hat), out))
    return k, table, y_hat

  def analyze(self, image, quantizer, rate, delta_index, refine_steps=None):
    """uint8 image [H, W, 3] -> latents plus indexes k, tables and y_hat;
    with `refine_steps`, latents refined by that many steps (see refinement;
    images up to refinement.MAX_PIXELS)."""
    shape = tf.shape(image)
    checks = [container.assert_size(
        shape[0], shape[1],
        f"image size outside the codec limit of 1 to {container.MAX_PIXELS} "
        f"pixels, {container.MAX_SIDE} a side")] + check_arguments(
            quantizer, rate, delta_index, self.model.num_rates)
    refine = None
    if refine_steps is not None:
      checks.append(refinement.assert_refinable(shape[0], shape[1],
                                                refine_steps))
    # Everything downstream waits for the checks (a NaN rate would
    # otherwise fail first, in a gather).
    with tf.control_dependencies(checks):
      image, quantizer, rate, delta_index = map(
          tf.identity, (image, quantizer, rate, delta_index))
    if refine_steps is not None:
      refine = (quantizer, delta_index, refine_steps)
    latents = self.latents(tf.cast(image, tf.float32)[None], rate, refine)
    k, table, y_hat = self.quantize(latents, quantizer, delta_index)
    return dict(latents, k=k, table=table, y_hat=y_hat)

  def hyper_decode(self, z_hat, height, width):
    """Decoded z [1, h, w, C] -> (loc, scale_index) for the image's y."""
    return self.model.hyper_decode(z_hat, latent_shape(height, width),
                                   exact=True)

  def synthesize(self, y_hat, quantizer, rate, height, width):
    """y_hat -> uint8 image with the synthesis finetuned for its quantizer."""
    checks = [container.assert_size(height, width, "image size outside the "
                                    "codec limit")] + check_arguments(
                                        quantizer, rate, 0,
                                        self.model.num_rates)
    with tf.control_dependencies(checks):
      y_hat, quantizer, rate = map(tf.identity, (y_hat, quantizer, rate))
    x_hat = switch_quantizer(quantizer, lambda i: self.model.synthesize(
        y_hat, rate, tf.stack([height, width]),
        self.model.synthesis_for(QUANTIZERS[i])))
    return tf.saturate_cast(tf.round(x_hat[0]), tf.uint8)


class EntropyCoder(tf.Module):
  """The entropy-coding half: z and the indexes k to strings, and the
  container. Core TF ops only (index_coder), so it runs in any TF.

  z is coded with the factorized prior's tables, one row per channel. The
  latents are coded pass by pass (`coding_scheme`, see coding_passes) into
  one string; decoding a pass needs its entropy parameters, which the model
  half computes from the passes before it.
  """

  def __init__(self, side_tables, codecs, model_id, num_rates,
               coding_scheme="raster", name="entropy_coder"):
    """side_tables: the side model's (cdf, cdf_offset, quantization_offset)
    as tfc's ContinuousBatchedEntropyModel holds them."""
    super().__init__(name=name)
    cdf, cdf_offset, quantization_offset = side_tables
    self.z_coder = index_coder.IndexCoder.from_flat_cdf(cdf, cdf_offset,
                                                        name="z_coder")
    self.z_offset = tf.Variable(
        tf.broadcast_to(tf.cast(quantization_offset, tf.float32),
                        tf.shape(self.z_coder.offsets)),
        trainable=False, name="z_offset")
    tables = codecs[0].tables
    self.y_coder = index_coder.IndexCoder.from_lookup(
        tables.lookup.numpy(), tables.offset.numpy(), name="y_coder")
    self.num_rates = num_rates
    self.latent_codecs = codecs
    self.model_id = tf.constant(model_id, tf.int64)
    self.coding_scheme = coding_scheme

  def passes(self, height, width):
    """Each coding pass's latent positions for an image of this size."""
    shape = latent_shape(height, width)
    return coding_passes.positions(self.coding_scheme, shape[0], shape[1])

  def _z_rows(self, count):
    """Table rows of `count` z values in coding order (channel fastest)."""
    channels = tf.size(self.z_offset)
    return tf.range(count) % channels

  def encode(self, z, k, table, quantizer, delta_index, rate, height, width):
    """Container bytes of z [1, h, w, C] and indexes k coded with `table`."""
    z_index = tf.reshape(tf.cast(tf.round(z - self.z_offset), tf.int32), [-1])
    z_string = self.z_coder.encode(z_index, self._z_rows(tf.size(z_index)))
    y_string = self.y_coder.encode(*self.latent_symbols(
        k, table, quantizer, height, width))
    return container.pack(self.model_id, quantizer, delta_index, rate, height,
                          width, z_string, y_string)

  def latent_symbols(self, k, table, quantizer, height, width):
    """Indexes k and their tables [N] in the order they are coded."""
    symbols = []
    for indexes in self.passes(height, width):
      k_pass, table_pass = (coding_passes.gather(t, indexes)
                            for t in (k, table))
      symbols.append(switch_quantizer(
          quantizer, lambda i: self.latent_codecs[i].symbols(k_pass,
                                                             table_pass)))
    return tuple(tf.concat(s, 0) for s in zip(*symbols))

  def decode_side(self, stream, max_pixels=container.MAX_PIXELS):
    """Parses a container and decodes z: (fields dict, z_hat [1, h, w, C]).

    `max_pixels`: the decode budget; a larger image is refused from its
    header, before any decoding."""
    fields = container.unpack(stream, self.model_id)
    pixels = tf.cast(fields["height"], tf.int64) * tf.cast(fields["width"],
                                                           tf.int64)
    with tf.control_dependencies(check_arguments(
        fields["quantizer"], fields["rate"], fields["delta_index"],
        self.num_rates, what="corrupt stream: its ") + [tf.debugging.Assert(
            pixels <= tf.cast(max_pixels, tf.int64),
            ["the stream's image is larger than max_pixels (the decode "
             "budget)"])]):
      z_string = tf.identity(fields["z_string"])
    z_shape = tf.concat([[1], (latent_shape(fields["height"], fields["width"])
                               + 3) // 4, tf.shape(self.z_offset)], 0)
    cursor, z_index, _ = self.z_coder.decode(
        self.z_coder.start(z_string), self._z_rows(tf.reduce_prod(z_shape)))
    (z_index,) = self.z_coder.finish(cursor, z_index)
    z_hat = tf.reshape(tf.cast(z_index, tf.float32), z_shape) + self.z_offset
    return fields, z_hat

  def start_latents(self, fields):
    """A cursor at the start of the container's y string."""
    return self.y_coder.start(fields["y_string"])

  def read_pass(self, cursor, quantizer, delta_index, loc, scale_index):
    """Decodes one pass, given its gathered parameters [1, 1, N, M]:
    (cursor, k, y_hat)."""
    return switch_quantizer(quantizer, lambda i: self.latent_codecs[i].read(
        self.y_coder, cursor, loc, scale_index, delta_index))

  def finish_latents(self, cursor, *tensors):
    """`tensors`, once the y string is checked to be decoded exactly."""
    return self.y_coder.finish(cursor, *tensors)

  def decode_latents(self, fields, loc, scale_index, pass_parameters):
    """(k, y_hat) from the container's y string and the hyperprior's output;
    pass_parameters(loc, scale_index, decoded) gives each pass's."""
    cursor = self.start_latents(fields)
    k = tf.zeros(tf.shape(loc), tf.int32)
    y_hat = tf.zeros_like(loc)
    for indexes in self.passes(fields["height"], fields["width"]):
      gather = lambda t, indexes=indexes: coding_passes.gather(t, indexes)
      loc_pass, scale_pass = pass_parameters(loc, scale_index, y_hat)
      cursor, k_pass, y_hat_pass = self.read_pass(
          cursor, fields["quantizer"], fields["delta_index"],
          gather(loc_pass), gather(scale_pass))
      k = coding_passes.scatter(k, indexes, k_pass)
      y_hat = coding_passes.scatter(y_hat, indexes, y_hat_pass)
    return self.finish_latents(cursor, k, y_hat)


class ImageCodec(tf.Module):
  """Compresses RGB images with a trained hyperprior model."""

  def __init__(self, model, tcq_lambda=settings.TCQ_LAMBDA,
               refine_lambda_scales=None, refine_learning_rates=None,
               name="image_codec"):
    """`refine_lambda_scales` maps quantizers to the factor c on λ with which
    they refine latents (refinement.refine), `refine_learning_rates` to
    Adam's first step; the shipped settings for those not named."""
    super().__init__(name=name)
    side_model = model.side_entropy_model(compression=True)
    self.tables = entropy_tables.EntropyTables.build(
        model.num_scales, model.scale_min)
    self.latent_codecs = [latent_codecs.create(q, self.tables, tcq_lambda)
                          for q in QUANTIZERS]
    self.refine_lambda_scales = _per_quantizer(
        refine_lambda_scales, settings.REFINE_LAMBDA_SCALES,
        "refinement's λ scale")
    self.refine_learning_rates = _per_quantizer(
        refine_learning_rates, settings.REFINE_LEARNING_RATES,
        "refinement's learning rate")
    self.transforms = Transforms(model, side_model, self.latent_codecs,
                                 self.refine_lambda_scales,
                                 self.refine_learning_rates)
    self.coder = EntropyCoder((side_model.cdf.numpy(),
                               side_model.cdf_offset.numpy(),
                               side_model.quantization_offset.numpy()),
                              self.latent_codecs,
                              encoder_fingerprint(model), model.num_rates,
                              model.coding_scheme)
    self.model_id = self.coder.model_id

  @property
  def model(self):
    return self.transforms.model

  @property
  def side_entropy_model(self):
    return self.transforms.side_model

  def encode(self, image, quantizer, rate, delta_index, refine_steps=None):
    """Returns a dict: container, y, y_hat, k, estimated bits of y and z.

    `refine_steps`: refine the latents first (see refinement)."""
    quantizer = tf.convert_to_tensor(quantizer, tf.int32)
    delta_index = tf.convert_to_tensor(delta_index, tf.int32)
    rate = container_rate(rate)
    out = self.transforms.analyze(image, quantizer, rate, delta_index,
                                  refine_steps)
    packed = self.coder.encode(
        out["z"], out["k"], out["table"], quantizer, delta_index, rate,
        tf.shape(image)[0], tf.shape(image)[1])
    _, z_bits = self.model.side_entropy_model()(out["z"], training=False)
    y_bits = tf.reduce_sum(self.tables.bits(out["table"], out["k"]))
    return dict(container=packed, y_hat=out["y_hat"], k=out["k"],
                y_bits=y_bits, z_bits=z_bits[0], y=out["y"])

  def decode(self, stream, max_pixels=container.MAX_PIXELS):
    """Returns a dict: image (uint8), y_hat, k and the container fields;
    images above `max_pixels` are refused before decoding."""
    fields, z_hat = self.coder.decode_side(stream, max_pixels)
    loc, scale_index = self.transforms.hyper_decode(
        z_hat, fields["height"], fields["width"])
    k, y_hat = self.coder.decode_latents(fields, loc, scale_index,
                                         self.transforms.pass_parameters)
    image = self.transforms.synthesize(
        y_hat, fields["quantizer"], fields["rate"], fields["height"],
        fields["width"])
    return dict(image=image, y_hat=y_hat, k=k, **fields)

  @tf.function(input_signature=ENCODE_SIGNATURE)
  def compress(self, image, quantizer, rate, delta_index):
    """uint8 image [H, W, 3] -> container bytes."""
    return self.encode(image, quantizer, rate, delta_index)["container"]

  @tf.function(input_signature=REFINED_ENCODE_SIGNATURE)
  def compress_refined(self, image, quantizer, rate, delta_index,
                       refine_steps):
    """compress, with the latents refined by `refine_steps` gradient steps
    (slower encoding, same decoder; see refinement)."""
    return self.encode(image, quantizer, rate, delta_index,
                       refine_steps)["container"]

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="stream")])
  def decompress(self, stream):
    """Container bytes -> uint8 image [H, W, 3]."""
    return self.decode(stream)["image"]

  @tf.function(input_signature=DECODE_SIGNATURE)
  def decompress_with_options(self, stream, max_pixels):
    """decompress, refusing images above `max_pixels` (a decode budget)."""
    return self.decode(stream, max_pixels)["image"]
