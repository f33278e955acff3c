"""Image codec: model + latent codecs + container -> real bitstreams.

The codec has two halves, so that a deployment can split them:
  `Transforms`     the model side (analysis, quantization incl. the TCQ
                   search, hyper decoding, each coding pass's parameters,
                   synthesis): core TF ops only, so it exports to a
                   SavedModel that stock TF Serving loads;
  `EntropyCoder`   entropy coding of z and the indexes (index_coder:
                   rANS in core TF ops, compiled with XLA), pass by pass
                   (see coding_passes), and the container.
Both work tile by tile (see tiling), a row of a band of tiles at a time,
so that memory holds the image, three rows of a band's latents and a part
of a tile's activations, whatever the image's size. `ImageCodec` joins them:
`compress` takes a uint8 image and returns the container bytes,
`decompress` inverts it. Both are tf.functions
with input signatures (graph code end to end) so that they export
unchanged. `encode` and `decode` return the whole image's intermediate
tensors too (y_hat, estimated bits).
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
from tfc_lic import tiling

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


class QuantizerSwitch:
  """The latent codec of a quantizer id given as a tensor (its `quantize`
  and the `tables` all of them share)."""

  def __init__(self, codecs, quantizer):
    self.codecs, self.quantizer = codecs, quantizer
    self.tables = codecs[0].tables

  def quantize(self, *args):
    return switch_quantizer(self.quantizer,
                            lambda i: self.codecs[i].quantize(*args))


class Transforms(tf.Module):
  """The model half of the codec; core TensorFlow ops only.

  Every transform runs a tile (or a part of one) at a time (see tiling), on
  it and the halo its receptive field needs, so that results equal the
  whole image's.
  """

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
    # Halos: pixels around a tile for the analysis, latents for the
    # hyper-analysis and the synthesis, hyper-latents for the
    # hyper-synthesis; the windows of the first two keep their stride's
    # sampling phase.
    units = dict(analysis=tiling.STRIDE, hyper_analysis=tiling.Z_STRIDE)
    self.halos = {name: tiling.halo(radius, units.get(name, 1))
                  for name, radius in model.receptive_radii().items()}
    if (self.halos["hyper_analysis"] > tiling.PART
        or self.halos["synthesis"] > tiling.TILE
        or self.halos["hyper_synthesis"] > tiling.Z_TILE):
      raise ValueError(f"halos {self.halos} exceed what the strips hold "
                       "around a tile (see tiling.Band)")

  def latents(self, pixels, low, grid, start, size, rate):
    """(count, fn): the latent box (start, size) of an image in parts
    (tiling.PART), each computed on its pixels and its halo from `pixels`
    [H, W, 3] (the image's from pixel `low` on); fn(part) -> [(start in
    the box, y [h, w, M])] (see tiling.fill)."""
    halo = self.halos["analysis"]
    extent = tf.stack([grid.height, grid.width])
    pixel_start = start * tiling.STRIDE
    parts = tiling.Grid(*tf.unstack(tf.maximum(tf.minimum(
        (start + size) * tiling.STRIDE, extent) - pixel_start, 0)),
                        tile=tiling.PART)

    def part(i):
      part_start, part_size = parts.pixel_box(i)
      part_low, length = tiling.window(pixel_start + part_start, part_size,
                                       halo, extent)
      y = self.model.latents(tf.cast(tiling.crop(
          pixels[None], part_low - low, length), tf.float32), rate)
      box_start, box_size = parts.box(i)
      return [(box_start, tiling.crop(
          y, (pixel_start + part_start - part_low) // tiling.STRIDE,
          box_size)[0])]

    return parts.count, part

  def tile_latents(self, window, grid, index, rate):
    """y [1, h, w, M] of a tile from its pixels' window [1, H, W, 3] (see
    tiling.windows)."""
    start, size = grid.box(index)
    count, part = self.latents(
        window[0], grid.pixel_window(index, self.halos["analysis"])[0], grid,
        start, size, rate)
    (y,) = tiling.fill([tiling.zeros(size[0], size[1],
                                     self.model.latent_channels, tf.float32)],
                       part, 0, count)
    return y[None]

  def tile_hyper_latents(self, window, grid, index):
    """z [1, h, w, C] of a tile from its latents' window."""
    low, _ = grid.latent_window(index, self.halos["hyper_analysis"])
    start, size = grid.z_box(index)
    z = self.model.hyper_latents(window)
    return tiling.crop(z, start - low // tiling.Z_STRIDE, size)

  def latent_strip(self, image, band, row, rate):
    """y [TILE, w, M] of tile row `row` in `band`'s columns (zeros below the
    image and outside the grid)."""
    grid = band.grid
    rows = tf.clip_by_value(grid.latent_shape[0] - row * tiling.TILE, 0,
                            tiling.TILE)
    count, part = self.latents(
        image, tf.zeros([2], tf.int32), grid,
        tf.stack([row * tiling.TILE, band.start]),
        tf.stack([rows, band.width]), rate)
    (strip,) = tiling.fill([tiling.zeros(tiling.TILE, band.width,
                                         self.model.latent_channels,
                                         tf.float32)], part, 0, count)
    strip.set_shape([tiling.TILE, None, self.model.latent_channels])
    return strip

  def hyper_latent_strip(self, y_strips, band, row):
    """z [Z_TILE, w, C] of the tiles `band` holds in tile row `row`, from
    the y strips of rows row - 1 to row + 1."""
    grid = band.grid
    (strip,) = tiling.fill(
        [tiling.zeros(tiling.Z_TILE, band.z_width, self.model.hyper_filters,
                      tf.float32)],
        lambda i: [(band.z_strip_start(i), self.tile_hyper_latents(
            tiling.block_window(y_strips, row - 1, band.start,
                                *grid.latent_window(
                                    i, self.halos["hyper_analysis"])),
            grid, i)[0])], *band.held(row))
    strip.set_shape([tiling.Z_TILE, None, self.model.hyper_filters])
    return strip

  def refine_strip(self, image, y_strip, z_strip, band, row, rate, quantizer,
                   delta_index, steps):
    """The y and z strips of tile row `row` with the tiles `band` holds
    refined one by one (see refine_tile)."""
    grid = band.grid

    def tile(i):
      y, z = self.refine_tile(
          tiling.crop(image[None], *grid.pixel_box(i)),
          tiling.block_window([y_strip], row, band.start, *grid.box(i)),
          tiling.block_window([z_strip], row, band.z_start, *grid.z_box(i)),
          rate, quantizer, delta_index, steps)
      return [(band.strip_start(i), y[0]), (band.z_strip_start(i), z[0])]

    refined = tiling.fill([tf.zeros_like(y_strip), tf.zeros_like(z_strip)],
                          tile, *band.held(row))
    for r, t in zip(refined, (y_strip, z_strip)):
      r.set_shape(t.shape)
    return refined

  def refine_tile(self, pixels, y, z, rate, quantizer, delta_index, steps):
    """A tile's (y, z) refined (see refinement) for `quantizer`'s synthesis,
    on the tile's own pixels [1, H, W, 3] as if it were the image: memory
    stays one tile's at any image size. One refinement loop whose latent
    codec and synthesis switch on the quantizer inside: a loop for each
    would triple the largest graph of the SavedModel (its memory)."""
    pick = lambda values: tf.gather(tf.constant(values, tf.float32),
                                    quantizer)
    synthesis = lambda t, training=False: switch_quantizer(
        quantizer, lambda i: self.model.synthesis_for(QUANTIZERS[i])(
            t, training=training))
    return refinement.refine(
        self.model, self.side_model.quantize,
        QuantizerSwitch(self.latent_codecs, quantizer),
        tf.cast(pixels, tf.float32), y, z, rate, delta_index, steps,
        synthesis, pick(self.refine_lambda_scales),
        pick(self.refine_learning_rates))

  def untiled_latents(self, x, rate):
    """Images x [B, H, W, 3] (float) run whole: dict of y, z and the
    hyperprior's loc, scale_index. For images within one tile (stage 2's
    crops) this is what the codec computes; see quantize."""
    y, z = self.model.analyze(x, rate)
    loc, scale_index = self.model.hyper_decode(
        self.side_model.quantize(z), tf.shape(y)[1:3], exact=True)
    return dict(y=y, z=z, loc=loc, scale_index=scale_index)

  def tile_parameters(self, window, grid, index):
    """The hyperprior's (loc, scale_index) [1, h, w, M] for a tile, from the
    hyper-synthesis of its window of decoded z."""
    low, length = grid.z_window(index, self.halos["hyper_synthesis"])
    loc, scale_index = self.model.hyper_decode(
        window, length * tiling.Z_STRIDE, exact=True)
    start, size = grid.box(index)
    offset = start - low * tiling.Z_STRIDE
    return (tiling.crop(loc, offset, size),
            tiling.crop(scale_index, offset, size))

  def hyperprior(self, z_hat, grid, index):
    """tile_parameters of tile `index`, its window cut from the image's
    decoded z [1, h, w, C]."""
    return self.tile_parameters(tiling.crop(z_hat, *grid.z_window(
        index, self.halos["hyper_synthesis"])), grid, index)

  def pass_parameters(self, loc, scale_index, decoded):
    """(loc, scale_index) of a coding pass given the latents decoded so far
    (zero elsewhere); the hyperprior's own for a model without context."""
    return self.model.pass_parameters((loc, scale_index), decoded, exact=True)

  def quantize(self, y, loc, scale_index, quantizer, delta_index):
    """(k, table ids, y_hat) of a tile's latents under a quantizer id, pass
    by pass (a pass's parameters depend on the y_hat of the earlier ones)."""
    k = table = tf.zeros(tf.shape(y), tf.int32)
    y_hat = tf.zeros_like(y)
    shape = tf.shape(y)
    for indexes in coding_passes.positions(
        self.model.coding_scheme, shape[1], shape[2]):
      loc_pass, scale_pass = self.pass_parameters(loc, scale_index, y_hat)
      gather = lambda t, indexes=indexes: coding_passes.gather(t, indexes)
      out = QuantizerSwitch(self.latent_codecs, quantizer).quantize(
          gather(y), gather(loc_pass), gather(scale_pass), delta_index)
      k, table, y_hat = (coding_passes.scatter(t, indexes, v)
                         for t, v in zip((k, table, y_hat), out))
    return k, table, y_hat

  def quantize_tile(self, y_strip, z_hat_strips, band, index, quantizer,
                    delta_index):
    """(k, table ids, y_hat) [1, h, w, M] of tile `index`, from its row's y
    strip and the decoded z strips of the rows around, in `band`."""
    grid = band.grid
    row = grid.position(index)[0]
    y = tiling.block_window([y_strip], row, band.start, *grid.box(index))
    loc, scale_index = self.tile_parameters(tiling.block_window(
        z_hat_strips, row - 1, band.z_start, *grid.z_window(
            index, self.halos["hyper_synthesis"])), grid, index)
    return self.quantize(y, loc, scale_index, quantizer, delta_index)

  def check(self, image, quantizer, rate, delta_index, refine_steps=None):
    """(image, quantizer, rate, delta_index, refine_steps), each once the
    image's size and the arguments are checked."""
    shape = tf.shape(image)
    checks = [container.assert_size(
        shape[0], shape[1],
        f"image size outside the codec limit of 1 to {container.MAX_PIXELS} "
        f"pixels, {container.MAX_SIDE} px a side")] + check_arguments(
            quantizer, rate, delta_index, self.model.num_rates)
    if refine_steps is not None:
      checks.append(refinement.assert_steps(refine_steps))
    # Everything downstream waits for the checks (a NaN rate would
    # otherwise fail first, in a gather).
    with tf.control_dependencies(checks):
      return tuple(None if t is None else tf.identity(t) for t in (
          image, quantizer, rate, delta_index, refine_steps))

  def synthesize_tile(self, window, grid, index, quantizer, rate):
    """uint8 pixels [h, w, 3] of a tile from its window of decoded latents,
    with the synthesis finetuned for `quantizer`; in parts (tiling.PART)."""
    halo = self.halos["synthesis"]
    low, _ = grid.latent_window(index, halo)
    start = grid.box(index)[0]
    parts = tiling.Grid(*tf.unstack(grid.pixel_box(index)[1]),
                        tile=tiling.PART)

    def part(i):
      part_start, part_size = parts.box(i)
      part_low, length = tiling.window(start + part_start, part_size, halo,
                                       grid.latent_shape)
      part_window = tiling.crop(window, part_low - low, length)
      x_hat = switch_quantizer(quantizer, lambda q: self.model.synthesize(
          part_window, rate, length * tiling.STRIDE,
          self.model.synthesis_for(QUANTIZERS[q])))
      pixel_start, pixel_size = parts.pixel_box(i)
      x_hat = tiling.crop(x_hat, (start + part_start - part_low) *
                          tiling.STRIDE, pixel_size)[0]
      return [(pixel_start, tf.saturate_cast(tf.round(x_hat), tf.uint8))]

    size = grid.pixel_box(index)[1]
    (pixels,) = tiling.fill([tiling.zeros(size[0], size[1], 3, tf.uint8)],
                            part, 0, parts.count)
    return pixels


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

  def _z_rows(self, count):
    """Table rows of `count` z values in coding order (channel fastest)."""
    channels = tf.size(self.z_offset)
    return tf.range(count) % channels

  def encode_side(self, z):
    """The string of z [1, h, w, C]."""
    z_index = tf.reshape(tf.cast(tf.round(z - self.z_offset), tf.int32), [-1])
    return self.z_coder.encode(z_index, self._z_rows(tf.size(z_index)))

  def encode_tile(self, k, table, quantizer):
    """The string of a tile's indexes k [1, h, w, M] coded with `table`."""
    return self.y_coder.encode(*self.latent_symbols(k, table, quantizer))

  def latent_symbols(self, k, table, quantizer):
    """A tile's indexes k and their tables [N] in the order they are coded."""
    shape = tf.shape(k)
    symbols = []
    for indexes in coding_passes.positions(self.coding_scheme, shape[1],
                                           shape[2]):
      k_pass, table_pass = (coding_passes.gather(t, indexes)
                            for t in (k, table))
      symbols.append(switch_quantizer(
          quantizer, lambda i: self.latent_codecs[i].symbols(k_pass,
                                                             table_pass)))
    return tuple(tf.concat(s, 0) for s in zip(*symbols))

  def pack(self, z_string, y_strings, quantizer, delta_index, rate, height,
           width):
    """Container bytes of the strings of z and of each tile's latents."""
    return container.pack(self.model_id, quantizer, delta_index, rate, height,
                          width, z_string, y_strings)

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
    grid = tiling.Grid(fields["height"], fields["width"])
    z_shape = tf.concat([[1], grid.z_shape, tf.shape(self.z_offset)], 0)
    cursor, z_index, _ = self.z_coder.decode(
        self.z_coder.start(z_string), self._z_rows(tf.reduce_prod(z_shape)))
    (z_index,) = self.z_coder.finish(cursor, z_index)
    z_hat = tf.reshape(tf.cast(z_index, tf.float32), z_shape) + self.z_offset
    return fields, z_hat

  def read_pass(self, cursor, quantizer, delta_index, loc, scale_index):
    """Decodes one pass, given its gathered parameters [1, 1, N, M]:
    (cursor, k, y_hat)."""
    return switch_quantizer(quantizer, lambda i: self.latent_codecs[i].read(
        self.y_coder, cursor, loc, scale_index, delta_index))

  def decode_tile(self, y_string, quantizer, delta_index, loc, scale_index,
                  pass_parameters):
    """(k, y_hat) of a tile from its string and the hyperprior's (loc,
    scale_index) [1, h, w, M]; pass_parameters(loc, scale_index, decoded)
    gives each pass's."""
    cursor = self.start_tile(y_string)
    k = tf.zeros(tf.shape(loc), tf.int32)
    y_hat = tf.zeros_like(loc)
    shape = tf.shape(loc)
    for indexes in coding_passes.positions(self.coding_scheme, shape[1],
                                           shape[2]):
      gather = lambda t, indexes=indexes: coding_passes.gather(t, indexes)
      loc_pass, scale_pass = pass_parameters(loc, scale_index, y_hat)
      cursor, k_pass, y_hat_pass = self.read_pass(
          cursor, quantizer, delta_index, gather(loc_pass),
          gather(scale_pass))
      k = coding_passes.scatter(k, indexes, k_pass)
      y_hat = coding_passes.scatter(y_hat, indexes, y_hat_pass)
    return self.finish_tile(cursor, k, y_hat)

  def start_tile(self, y_string):
    """A cursor at the start of a tile's string."""
    return self.y_coder.start(y_string)

  def finish_tile(self, cursor, *tensors):
    """`tensors`, once the tile's string is checked to be decoded exactly."""
    return self.y_coder.finish(cursor, *tensors)


class _Unsaved:
  """Calls a tf.function that tf.saved_model.save does not see (it saves
  every tf.function attribute of the objects it saves)."""

  def __init__(self, function):
    self._function = function

  def __call__(self, *args):
    return self._function(*args)


class ImageCodec(tf.Module):
  """Compresses RGB images with a trained hyperprior model."""

  def __init__(self, model, tcq_lambda=settings.TCQ_LAMBDA,
               refine_lambda_scales=None, refine_learning_rates=None,
               band_columns=tiling.BAND, name="image_codec"):
    """`refine_lambda_scales` maps quantizers to the factor c on λ with which
    they refine latents (refinement.refine), `refine_learning_rates` to
    Adam's first step; the shipped settings for those not named.
    `band_columns`: tile columns coded at a time (tiling.Band; memory only,
    the streams do not depend on it)."""
    super().__init__(name=name)
    self.band_columns = band_columns
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
    # Not a tf.function attribute: tf.saved_model.save would trace and store
    # it, and the refinement's graph costs every process that loads the
    # full SavedModel 0.37 GB (docs/performance.md#memory). Served models
    # refine through their core model (tfc_lic.client).
    self._refining_encoder = _Unsaved(tf.function(
        self._encode_refined, input_signature=REFINED_ENCODE_SIGNATURE))

  @property
  def model(self):
    return self.transforms.model

  @property
  def side_entropy_model(self):
    return self.transforms.side_model

  def encode(self, image, quantizer, rate, delta_index, refine_steps=None,
             diagnostics=True):
    """Returns a dict with the container bytes and, with `diagnostics`, y,
    y_hat, k [1, h, w, M] and z of the whole image and the estimated bits
    of y and z (whole-image latents: compress leaves them out).

    Band by band (tiling.Band), a row of tiles at a time, in a pipeline
    that keeps three rows of latents: at step t, the analysis of row t, the
    hyper-analysis (and refinement) of row t - 1, the quantization and
    coding of row t - 2. `refine_steps`: refine the latents first (see
    refinement)."""
    transforms = self.transforms
    image, quantizer, rate, delta_index, refine_steps = transforms.check(
        image, tf.convert_to_tensor(quantizer, tf.int32),
        container_rate(rate), tf.convert_to_tensor(delta_index, tf.int32),
        refine_steps)
    grid = tiling.Grid(tf.shape(image)[0], tf.shape(image)[1])
    channels = self.model.latent_channels

    def code_row(band, y_strip, z_hat_strips, row, strings, outputs, bits):
      """The strings of the tiles `band` codes in tile row `row` and, with
      `diagnostics`, their k, y_hat and estimated bits."""

      def body(index, strings, outputs, bits):
        k, table, y_hat = transforms.quantize_tile(
            y_strip, z_hat_strips, band, index, quantizer, delta_index)
        strings = strings.write(index, self.coder.encode_tile(k, table,
                                                              quantizer))
        if diagnostics:
          start = grid.box(index)[0]
          outputs = [outputs[0]] + [tiling.write_block(o, start, t[0])
                                    for o, t in zip(outputs[1:3],
                                                    (k, y_hat))] + outputs[3:]
          bits += tf.reduce_sum(self.tables.bits(table, k))
        return index + 1, strings, outputs, bits

      first, stop = band.coded(row)
      _, strings, outputs, bits = tf.while_loop(
          lambda index, *_: index < stop, body,
          (first, strings, outputs, bits), parallel_iterations=1)
      return strings, outputs, bits

    def band_body(b, strings, outputs, bits):
      band = tiling.Band(grid, b, self.band_columns)

      def body(t, y_rows, refined, z_rows, strings, outputs, bits):
        y_new = transforms.latent_strip(image, band, t, rate)
        z_new = transforms.hyper_latent_strip(y_rows + [y_new], band, t - 1)
        refined_new = y_rows[1]
        if refine_steps is not None:
          refined_new, z_new = transforms.refine_strip(
              image, y_rows[1], z_new, band, t - 1, rate, quantizer,
              delta_index, refine_steps)
        # z (with diagnostics also y) of the tiles of row t - 1 into the
        # whole image's.
        def blocks(i):
          z_start, z_size = grid.z_box(i)
          out = [(z_start, tiling.block_window([z_new], t - 1, band.z_start,
                                               z_start, z_size)[0])]
          if diagnostics:
            start, size = grid.box(i)
            out += [None, None, (start, tiling.block_window(
                [refined_new], t - 1, band.start, start, size)[0])]
          return out

        outputs = tiling.fill(outputs, blocks, *band.coded(t - 1))
        strings, outputs, bits = code_row(
            band, refined, [transforms.side_model.quantize(z)
                            for z in z_rows + [z_new]], t - 2, strings,
            outputs, bits)
        return (t + 1, [y_rows[1], y_new], refined_new, [z_rows[1], z_new],
                strings, outputs, bits)

      y_zeros = tiling.zeros(tiling.TILE, band.width, channels, tf.float32)
      z_zeros = tiling.zeros(tiling.Z_TILE, band.z_width,
                             self.model.hyper_filters, tf.float32)
      *_, strings, outputs, bits = tf.while_loop(
          lambda t, *_: t < grid.shape[0] + 2, body,
          (0, [y_zeros, y_zeros], y_zeros, [z_zeros, z_zeros], strings,
           outputs, bits), parallel_iterations=1)
      return b + 1, strings, outputs, bits

    # The whole image's z and, with diagnostics, k, y_hat and y, written
    # tile by tile.
    outputs = [tiling.zeros(grid.z_shape[0], grid.z_shape[1],
                            self.model.hyper_filters, tf.float32)] + [
                                tiling.zeros(grid.latent_shape[0],
                                             grid.latent_shape[1], channels, d)
                                for d in (tf.int32, tf.float32, tf.float32)
                            ][:3 * diagnostics]
    _, strings, outputs, bits = tf.while_loop(
        lambda b, *_: b < grid.bands(self.band_columns), band_body,
        (0, tf.TensorArray(tf.string, size=grid.count), outputs,
         tf.zeros([])), parallel_iterations=1)
    z = outputs[0][None]
    packed = self.coder.pack(
        self.coder.encode_side(z), strings.stack(), quantizer,
        delta_index, rate, grid.height, grid.width)
    if not diagnostics:
      return dict(container=packed)
    _, z_bits = self.model.side_entropy_model()(z, training=False)
    k, y_hat, y = (t[None] for t in outputs[1:])
    return dict(container=packed, k=k, y_hat=y_hat, y=y, z=z, y_bits=bits,
                z_bits=z_bits[0])

  def decode(self, stream, max_pixels=container.MAX_PIXELS,
             diagnostics=True):
    """Returns a dict: image (uint8) and the container fields, with
    `diagnostics` also y_hat and k [1, h, w, M] of the whole image
    (decompress leaves them out); images above `max_pixels` are refused
    before decoding.

    Band by band (tiling.Band), a row of tiles at a time, keeping three
    rows of decoded latents: at step t, the entropy decoding of row t and
    the synthesis of row t - 1, written into the image in place."""
    fields, z_hat = self.coder.decode_side(stream, max_pixels)
    grid = tiling.Grid(fields["height"], fields["width"])
    transforms = self.transforms
    channels = self.model.latent_channels
    dtypes = [tf.float32, tf.int32][:1 + diagnostics]

    def band_body(b, outputs):
      band = tiling.Band(grid, b, self.band_columns)

      def decode_tile(index):
        loc, scale_index = transforms.hyperprior(z_hat, grid, index)
        k, y_hat = self.coder.decode_tile(
            fields["y_strings"][index], fields["quantizer"],
            fields["delta_index"], loc, scale_index,
            transforms.pass_parameters)
        return [(band.strip_start(index), t[0]) for t in (y_hat, k)][
            :len(dtypes)]

      def body(t, y_rows, outputs):
        strips = tiling.fill(
            [tiling.zeros(tiling.TILE, band.width, channels, d)
             for d in dtypes], decode_tile, *band.held(t))
        for strip in strips:
          strip.set_shape([tiling.TILE, None, channels])
        row = t - 1
        (image,) = tiling.fill(outputs[:1], lambda i: [(
            grid.pixel_box(i)[0], transforms.synthesize_tile(
                tiling.block_window(
                    y_rows + strips[:1], row - 1, band.start,
                    *grid.latent_window(i, transforms.halos["synthesis"])),
                grid, i, fields["quantizer"], fields["rate"]))],
                               *band.coded(row))
        # With diagnostics, the latents of row t into the whole image's.
        latents = tiling.fill(outputs[1:], lambda i: [
            (grid.box(i)[0], tiling.block_window(
                [strip], t, band.start, *grid.box(i))[0])
            for strip in strips], *band.coded(t)) if diagnostics else []
        return t + 1, [y_rows[1], strips[0]], [image] + latents

      y_zeros = tiling.zeros(tiling.TILE, band.width, channels, tf.float32)
      y_zeros.set_shape([tiling.TILE, None, channels])
      _, _, outputs = tf.while_loop(
          lambda t, *_: t < grid.shape[0] + 1, body,
          (0, [y_zeros, y_zeros], outputs), parallel_iterations=1)
      return b + 1, outputs

    outputs = [tiling.zeros(grid.height, grid.width, 3, tf.uint8)] + [
        tiling.zeros(grid.latent_shape[0], grid.latent_shape[1], channels, d)
        for d in dtypes][:2 * diagnostics]
    _, outputs = tf.while_loop(
        lambda b, _: b < grid.bands(self.band_columns), band_body,
        (0, outputs), parallel_iterations=1)
    out = dict(fields, image=outputs[0])
    if diagnostics:
      out.update(y_hat=outputs[1][None], k=outputs[2][None])
    return out

  @tf.function(input_signature=ENCODE_SIGNATURE)
  def compress(self, image, quantizer, rate, delta_index):
    """uint8 image [H, W, 3] -> container bytes."""
    return self.encode(image, quantizer, rate, delta_index,
                       diagnostics=False)["container"]

  def compress_refined(self, image, quantizer, rate, delta_index,
                       refine_steps):
    """compress, with the latents refined by `refine_steps` gradient steps
    (slower encoding, same decoder; see refinement)."""
    return self._refining_encoder(image, quantizer, rate, delta_index,
                                  refine_steps)

  def _encode_refined(self, image, quantizer, rate, delta_index,
                      refine_steps):
    return self.encode(image, quantizer, rate, delta_index, refine_steps,
                       diagnostics=False)["container"]

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="stream")])
  def decompress(self, stream):
    """Container bytes -> uint8 image [H, W, 3]."""
    # A call of the other function, so that a SavedModel holds one decoder.
    return self.decompress_with_options(stream, container.MAX_PIXELS)

  @tf.function(input_signature=DECODE_SIGNATURE)
  def decompress_with_options(self, stream, max_pixels):
    """decompress, refusing images above `max_pixels` (a decode budget)."""
    return self.decode(stream, max_pixels, diagnostics=False)["image"]
