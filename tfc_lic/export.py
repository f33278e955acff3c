"""SavedModel export of a codec, laid out as TF Serving expects.

`export_codec` writes <base>/<name>/<version>/ with signatures:
  compress(image)                                   -> stream   (defaults)
  compress_with_options(image, quantizer, rate, delta_index) -> stream
  decompress(stream)                                -> image
  decompress_with_options(stream, max_pixels)       -> image (decode budget)
  metadata()                                        -> model id, λs, ...
Core TF ops only: the entropy coder (index_coder) runs its loops compiled
with XLA, so any TF from 2.14 on loads it (TF Serving with
--xla_cpu_compilation_enabled=true). Beside it, <base>/<name>-core/<version>/
holds the transforms without the coder and without XLA, for a server that
does not compile (tile by tile: latents, hyper_latents, quantize,
hyper_decode, synthesize; refine, describe; tfc_lic.client does
the tiling and the entropy coding). Refined encoding (refine) is only
there: in the full model its graph would cost every process that loads it
0.37 GB, refining or not. `export_model` exports a trained
model with its weights stored as float16: half the size, same outputs.
"""

import contextlib
import json
import os
import shutil
import tempfile

from keras.src.mixed_precision import autocast_variable
import tensorflow as tf

from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import refinement
from tfc_lic import settings
from tfc_lic import tiling
from tfc_lic import training

METADATA_FILE = "metadata.json"


def _float16_creator(next_creator, **kwargs):
  value = kwargs["initial_value"]
  value = tf.convert_to_tensor(value() if callable(value) else value,
                               kwargs.get("dtype"))
  if value.dtype != tf.float32 or kwargs.get("trainable") is False:
    return next_creator(**dict(kwargs, initial_value=value))
  return autocast_variable.create_autocast_variable(next_creator(**dict(
      kwargs, initial_value=tf.cast(value, tf.float16), dtype=tf.float16)))


@contextlib.contextmanager
def _float16_storage():
  """Trainable float32 variables created inside are float16, read as float32.

  Reads cast in the graph (a core op); uses the variable wrapper of Keras'
  mixed precision.
  """
  with autocast_variable.enable_auto_cast_variables(tf.float32):
    with tf.variable_creator_scope(_float16_creator):
      yield


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

  @tf.function(input_signature=codec_lib.ENCODE_SIGNATURE)
  def compress_with_options(self, image, quantizer, rate, delta_index):
    return {"stream": self.codec.compress(image, quantizer, rate, delta_index)}

  @tf.function(input_signature=[tf.TensorSpec([], tf.string, name="stream")])
  def decompress(self, stream):
    return {"image": self.codec.decompress(stream)}

  @tf.function(input_signature=codec_lib.DECODE_SIGNATURE)
  def decompress_with_options(self, stream, max_pixels):
    return {"image": self.codec.decompress_with_options(stream, max_pixels)}

  @tf.function(input_signature=[])
  def metadata(self):
    return {"json": tf.constant(self.metadata_json)}


# The tile a core-op signature works on: the image's size and its index.
TILE_SIGNATURE = [tf.TensorSpec([], tf.int32, name="height"),
                  tf.TensorSpec([], tf.int32, name="width"),
                  tf.TensorSpec([], tf.int32, name="tile")]


class TransformsModule(tf.Module):
  """The core-op SavedModel: the model half of the codec for stock TF Serving.

  Entropy coding and tiling are left to the client (tfc_lic.client), which
  fetches the coding tables from `describe` and sends one tile's window at a
  time (tiling.windows with the metadata's `halos`), so that no
  message is larger than a tile's. Every signature has an input because TF
  Serving's REST API refuses signatures without one.
  """

  def __init__(self, transforms, tables, metadata):
    super().__init__(name="transforms_module")
    self.transforms = transforms
    self.tables = tables
    self.metadata_json = json.dumps(metadata)

  def _grid(self, height, width, tile, window, which):
    """(tile grid, window) once the size, the tile index and the window's
    spatial shape are checked to be the tile's."""
    checks = [container.assert_size(height, width, "image size outside the "
                                    "codec limit")]
    with tf.control_dependencies(checks):
      grid = tiling.Grid(height, width)
      checks.append(tf.debugging.Assert(
          (tile >= 0) & (tile < grid.count),
          ["tile must be an index of the image's tiles"]))
      _, size = tiling.windows(grid, tile, self.transforms.halos)[which]
      checks.append(tf.debugging.Assert(
          tf.reduce_all(tf.shape(window)[-3:-1] == size),
          [f"window must be the tile's {which} window"]))
    with tf.control_dependencies(checks):
      return (tiling.Grid(tf.identity(height), tf.identity(width)),
              tf.identity(window))

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="window"),
      tf.TensorSpec([], tf.float32, name="rate")] + TILE_SIGNATURE)
  def latents(self, window, rate, height, width, tile):
    """y of a tile from its pixels' window."""
    grid, window = self._grid(height, width, tile, window, "analysis")
    checks = codec_lib.check_arguments(0, rate, 0,
                                       self.transforms.model.num_rates)
    with tf.control_dependencies(checks):
      rate = codec_lib.container_rate(rate)
    return {"y": self.transforms.tile_latents(window[None], grid, tile,
                                              rate)}

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, None], tf.float32, name="window")]
               + TILE_SIGNATURE)
  def hyper_latents(self, window, height, width, tile):
    """z of a tile from its latents' window."""
    grid, window = self._grid(height, width, tile, window, "hyper_analysis")
    return {"z": self.transforms.tile_hyper_latents(window, grid, tile)}

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, None], tf.float32, name="y"),
      tf.TensorSpec([1, None, None, None], tf.float32, name="window"),
      tf.TensorSpec([], tf.int32, name="quantizer"),
      tf.TensorSpec([], tf.int32, name="delta_index")] + TILE_SIGNATURE)
  def quantize(self, y, window, quantizer, delta_index, height, width, tile):
    """Indexes k and tables of a tile's y, given its window of decoded z."""
    grid, window = self._grid(height, width, tile, window, "hyper_synthesis")
    checks = codec_lib.check_arguments(
        quantizer, 0., delta_index, self.transforms.model.num_rates) + [
            tf.debugging.Assert(tf.reduce_all(
                tf.shape(y)[1:3] == grid.box(tile)[1]),
                                ["y must be the tile's latents"])]
    with tf.control_dependencies(checks):
      loc, scale_index = self.transforms.tile_parameters(window, grid, tile)
    k, table, _ = self.transforms.quantize(y, loc, scale_index, quantizer,
                                           delta_index)
    return {"k": k, "table": table}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="window"),
      tf.TensorSpec([1, None, None, None], tf.float32, name="y"),
      tf.TensorSpec([1, None, None, None], tf.float32, name="z"),
      tf.TensorSpec([], tf.int32, name="quantizer"),
      tf.TensorSpec([], tf.float32, name="rate"),
      tf.TensorSpec([], tf.int32, name="delta_index"),
      tf.TensorSpec([], tf.int32, name="refine_steps")] + TILE_SIGNATURE)
  def refine(self, window, y, z, quantizer, rate, delta_index, refine_steps,
             height, width, tile):
    """A tile's y and z refined (see tfc_lic.refinement) on its pixels (the
    tile itself, no halo)."""
    checks = [container.assert_size(height, width, "image size outside the "
                                    "codec limit")]
    with tf.control_dependencies(checks):
      grid = tiling.Grid(height, width)
      inside = (tile >= 0) & (tile < grid.count)
      tile = tf.where(inside, tile, 0)
      fits = [tf.reduce_all(tf.shape(t)[-3:-1] == size) for t, size in (
          (window, grid.pixel_box(tile)[1]), (y, grid.box(tile)[1]),
          (z, grid.z_box(tile)[1]))]
      checks += codec_lib.check_arguments(
          quantizer, rate, delta_index, self.transforms.model.num_rates) + [
              tf.debugging.Assert(inside & tf.reduce_all(fits), [
                  "window, y and z must be a tile's pixels, latents and "
                  "hyper-latents"]),
              refinement.assert_steps(refine_steps)]
    with tf.control_dependencies(checks):
      y, z = self.transforms.refine_tile(
          window[None], y, z, codec_lib.container_rate(rate), quantizer,
          delta_index, refine_steps)
    return {"y": y, "z": z}

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, None], tf.float32, name="window")]
               + TILE_SIGNATURE)
  def hyper_decode(self, window, height, width, tile):
    """The hyperprior's (loc, scale_index) of a tile from its window of
    decoded z."""
    grid, window = self._grid(height, width, tile, window, "hyper_synthesis")
    loc, scale_index = self.transforms.tile_parameters(window, grid, tile)
    return {"loc": loc, "scale_index": scale_index}

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, None], tf.float32, name="loc"),
      tf.TensorSpec([1, None, None, None], tf.float32, name="scale_index"),
      tf.TensorSpec([1, None, None, None], tf.float32, name="decoded")])
  def pass_parameters(self, loc, scale_index, decoded):
    """A coding pass's (loc, scale_index) from the hyperprior's and the
    latents decoded so far (coding_scheme in the metadata says the passes)."""
    loc, scale_index = self.transforms.pass_parameters(loc, scale_index,
                                                       decoded)
    return {"loc": loc, "scale_index": scale_index}

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, None], tf.float32, name="window"),
      tf.TensorSpec([], tf.int32, name="quantizer"),
      tf.TensorSpec([], tf.float32, name="rate")] + TILE_SIGNATURE)
  def synthesize(self, window, quantizer, rate, height, width, tile):
    """uint8 pixels of a tile from its window of decoded latents."""
    grid, window = self._grid(height, width, tile, window, "synthesis")
    checks = codec_lib.check_arguments(quantizer, rate, 0,
                                       self.transforms.model.num_rates)
    with tf.control_dependencies(checks):
      window = tf.identity(window)
    return {"image": self.transforms.synthesize_tile(window, grid, tile,
                                                     quantizer, rate)}

  @tf.function(input_signature=[
      tf.TensorSpec([], tf.int32, name="format_version")])
  def describe(self, format_version):
    """Metadata and coding tables; `compatible`: the client's format is ours."""
    side = self.transforms.side_model
    return {"metadata": tf.constant(self.metadata_json),
            "compatible": tf.equal(format_version, container.VERSION),
            "lookup": tf.identity(self.tables.lookup),
            "offset": tf.identity(self.tables.offset),
            "side_cdf": tf.identity(side.cdf),
            "side_cdf_offset": tf.identity(side.cdf_offset),
            "side_quantization_offset": side.quantization_offset}


def _metadata(codec, metadata, default_quantizer, default_rate,
              delta_indexes):
  delta_indexes = dict(settings.DELTA_INDEXES, **(delta_indexes or {}))
  if default_rate is None:
    default_rate = codec.model.num_rates - 1
  return dict(
      metadata, model_id=int(codec.model_id.numpy()),
      format_version=container.VERSION,
      quantizers=list(codec_lib.QUANTIZERS),
      lmbdas=list(codec.model.lmbdas), num_scales=codec.tables.num_scales,
      default_quantizer=default_quantizer, default_rate=default_rate,
      default_delta_index=delta_indexes[default_quantizer],
      delta_indexes=delta_indexes,
      tcq_lambda=codec.latent_codecs[-1].lmbda,
      refine_lambda_scales=dict(zip(codec_lib.QUANTIZERS,
                                    codec.refine_lambda_scales)),
      refine_learning_rates=dict(zip(codec_lib.QUANTIZERS,
                                     codec.refine_learning_rates)),
      coding_scheme=codec.model.coding_scheme,
      tile=tiling.TILE, halos=dict(codec.transforms.halos))


def _save(module, signatures, metadata, path, overwrite):
  """Saves atomically (staging folder + rename) with metadata in assets/."""
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  staging = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".export-")
  try:
    tf.saved_model.save(module, staging, signatures=signatures)
    os.makedirs(os.path.join(staging, "assets"), exist_ok=True)
    with open(os.path.join(staging, "assets", METADATA_FILE), "w") as f:
      json.dump(metadata, f, indent=1)
    # mkdtemp's folder is private (0700); a server running as another user
    # must be able to read the version folder.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)
    if os.path.exists(path):
      shutil.rmtree(path)
    os.replace(staging, path)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging)
  return path


CORE_SUFFIX = "-core"


def export_codec(codec, base_dir, name, version, metadata,
                 default_quantizer=settings.DEFAULT_QUANTIZER,
                 default_rate=None, delta_indexes=None, overwrite=False):
  """Writes both SavedModels; returns their paths (full, core-op).

  base_dir/name/version holds compress/decompress;
  base_dir/name-core/version holds the transforms only (see above). `delta_indexes` maps quantizers to their default step index j
  (metadata for clients); `compress` uses the default quantizer with its j.
  """
  metadata = _metadata(codec, metadata, default_quantizer, default_rate,
                       delta_indexes)
  module = CodecModule(codec, metadata, default_quantizer,
                       metadata["default_rate"],
                       metadata["default_delta_index"])
  full = _save(module, {
      "compress": module.compress,
      "compress_with_options": module.compress_with_options,
      "decompress": module.decompress,
      "decompress_with_options": module.decompress_with_options,
      "metadata": module.metadata,
  }, metadata, os.path.join(base_dir, name, str(int(version))), overwrite)
  core_module = TransformsModule(codec.transforms, codec.tables, metadata)
  core = _save(core_module, {
      "latents": core_module.latents,
      "hyper_latents": core_module.hyper_latents,
      "quantize": core_module.quantize,
      "refine": core_module.refine,
      "hyper_decode": core_module.hyper_decode,
      "pass_parameters": core_module.pass_parameters,
      "synthesize": core_module.synthesize,
      "describe": core_module.describe,
  }, metadata, os.path.join(base_dir, name + CORE_SUFFIX, str(int(version))),
               overwrite)
  return full, core


def export_model(model, config, base_dir, name, version, metadata,
                 tcq_lambda=settings.TCQ_LAMBDA, refine_lambda_scales=None,
                 refine_learning_rates=None, **kwargs):
  """export_codec for a trained model, its weights stored as float16.

  `config` is the model's (training.model_from_config); the metadata keeps
  it as the export computes it, in float32, for zoo.load_trained.
  Weights are rounded to float16 as checkpoints/ keeps them
  (training.save_compact_weights), so both have the same model id; outputs
  equal a float32 model holding the rounded weights. Returns the paths (full,
  core-op).
  """
  config = {k: v for k, v in config.items() if k != "frozen_precision"}
  config["precision"] = "float32"
  with _float16_storage():
    stored = training.model_from_config(config)
    for target, source in zip(stored.variables, model.variables):
      target.assign(source.numpy().astype(target.dtype.as_numpy_dtype))
    codec = codec_lib.ImageCodec(stored, tcq_lambda=tcq_lambda,
                                 refine_lambda_scales=refine_lambda_scales,
                                 refine_learning_rates=refine_learning_rates)
    return export_codec(codec, base_dir, name, version,
                        dict(metadata, config=config), **kwargs)
