"""Client half of a split deployment: entropy coding against TF Serving.

A TF Serving that does not compile with XLA runs the core-op SavedModel
(<name>-core, see export.py): the transforms and the quantizer search,
one tile at a time. `Client` does the rest: it cuts each tile's windows
(tiling), so that no message is larger than a tile's, and entropy-codes
with the codec's own coder (core TF ops, no tfc). It produces the same
container bytes as the full SavedModel's `compress`, and decodes any
stream of that model:

  client = Client(rest_transport(
      "http://localhost:8501/v1/models/mbt2018-mean-vr-core"))
  stream = client.compress(image)           # uint8 [H, W, 3] -> bytes
  image = client.decompress(stream)

A transport is any `call(signature_name, inputs) -> outputs` over dicts of
numpy arrays: `saved_model_transport` (in process), `rest_transport` (TF
Serving's REST API) or `grpc_transport` (tensorflow-serving-api).
"""

import concurrent.futures
import json
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf

from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import entropy_tables
from tfc_lic import index_coder
from tfc_lic import latent_codecs
from tfc_lic import tiling

# Output names and dtypes of the core-op signatures (REST returns JSON).
OUTPUTS = {
    "latents": {"y": np.float32},
    "hyper_latents": {"z": np.float32},
    "quantize": {"k": np.int32, "table": np.int32},
    "refine": {"y": np.float32, "z": np.float32},
    "hyper_decode": {"loc": np.float32, "scale_index": np.float32},
    "pass_parameters": {"loc": np.float32, "scale_index": np.float32},
    "synthesize": {"image": np.uint8},
    "describe": {"metadata": str, "compatible": bool, "lookup": np.int32,
                 "offset": np.int32, "side_cdf": np.int32,
                 "side_cdf_offset": np.int32,
                 "side_quantization_offset": np.float32},
}


class TransportError(RuntimeError):
  """The model server could not be reached, refused a request or answered
  with something the client cannot use."""


def saved_model_transport(path):
  """Calls the signatures of a core-op SavedModel loaded in this process."""
  signatures = tf.saved_model.load(path).signatures

  def call(name, inputs):
    outputs = signatures[name](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}

  return call


def _decode_json_outputs(name, outputs):
  if not isinstance(outputs, dict):  # TF Serving unwraps single outputs.
    (only,) = OUTPUTS[name]
    outputs = {only: outputs}
  return outputs


def _checked(name, outputs, shapes):
  """A signature's outputs as OUTPUTS types them, each of the shape
  `shapes` gives (None: any size on that axis) and finite; else a
  TransportError naming what the server got wrong."""
  if not isinstance(outputs, dict):
    raise TransportError(f"{name}: the server sent no outputs")
  checked = {}
  for key, dtype in OUTPUTS[name].items():
    if key not in outputs:
      raise TransportError(f"{name}: the server's reply lacks {key!r}")
    value = outputs[key]
    if dtype is str:
      checked[key] = value.decode() if isinstance(value, bytes) else str(value)
      continue
    try:
      value = np.asarray(value)
      if value.dtype.kind not in "biuf" or (
          value.dtype.kind == "f" and not np.all(np.isfinite(value))):
        raise ValueError("not finite numbers")
      converted = value.astype(dtype)
      if dtype is not np.float32 and not np.array_equal(converted, value):
        raise ValueError(f"not {np.dtype(dtype).name}")
    except (ValueError, TypeError, OverflowError) as e:
      raise TransportError(f"{name}: the server's {key!r} is unusable "
                           f"({e})") from e
    expected = shapes.get(key)
    if expected is not None and (converted.ndim != len(expected) or any(
        e is not None and e != s for e, s in zip(expected, converted.shape))):
      raise TransportError(f"{name}: the server's {key!r} has shape "
                           f"{list(converted.shape)}, not {list(expected)}")
    checked[key] = converted
  return checked


def rest_transport(model_url, timeout=60.):
  """TF Serving's REST API; model_url is
  http://host:8501/v1/models/<name>[/versions/<v>]. `timeout` bounds each
  whole request (urllib's own bounds each socket read)."""
  pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

  def request(name, inputs):
    body = json.dumps({"signature_name": name, "inputs": {
        k: np.asarray(v).tolist() for k, v in inputs.items()}}).encode()
    http = urllib.request.Request(
        model_url + ":predict", data=body,
        headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(http, timeout=timeout) as response:
        return json.loads(response.read())["outputs"]
    except urllib.error.HTTPError as e:
      raise TransportError(f"{model_url} {name}: {e.read().decode()}") from e
    except OSError as e:
      raise TransportError(f"{model_url}: {e}") from e
    except (ValueError, KeyError, TypeError) as e:
      raise TransportError(f"{model_url} {name}: not a TF Serving reply "
                           f"({e})") from e

  def call(name, inputs):
    try:
      outputs = pool.submit(request, name, inputs).result(timeout)
    except concurrent.futures.TimeoutError as e:
      raise TransportError(f"{model_url} {name}: no reply within "
                           f"{timeout:g} s") from e
    return _decode_json_outputs(name, outputs)

  return call


def grpc_transport(target, model_name, timeout=60.):
  """TF Serving gRPC (pip install tensorflow-serving-api); target host:8500."""
  import grpc  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  stub = prediction_service_pb2_grpc.PredictionServiceStub(
      grpc.insecure_channel(target, options=[
          ("grpc.max_receive_message_length", 256 << 20)]))

  def call(name, inputs):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = name
    for key, value in inputs.items():
      request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    try:
      reply = stub.Predict(request, timeout)
    except grpc.RpcError as e:
      raise TransportError(f"{target} {name}: {e}") from e
    return {k: tf.make_ndarray(v) for k, v in reply.outputs.items()}

  return call


class Client:
  """compress/decompress with the transforms behind `call` (a transport).

  Every reply is checked (keys, types, shapes, index and table ranges, the
  decoded image's size) before it is used: a faulty or hostile server gives
  a TransportError, never a hang or a wrong picture passed on as right.
  """

  def __init__(self, call):
    self.call = call
    described = self._call("describe", {"format_version": np.int32(
        container.VERSION)}, dict(
            lookup=(None, None), offset=(None,), side_cdf=(None,),
            side_cdf_offset=(None,), compatible=()))
    if not bool(described["compatible"]):
      raise TransportError("the served model writes another container "
                           "format version than this client reads")
    try:
      self.info = json.loads(described["metadata"])
      num_scales = int(self.info["num_scales"])
      side = (described["side_cdf"], described["side_cdf_offset"],
              np.broadcast_to(described["side_quantization_offset"],
                              described["side_cdf_offset"].shape))
      if len(described["lookup"]) != 3 * num_scales or len(
          described["offset"]) != len(described["lookup"]):
        raise ValueError("coding tables of the wrong size")
      tables = entropy_tables.EntropyTables(
          described["lookup"], described["offset"], num_scales)
      codecs = [latent_codecs.create(q, tables) for q in codec_lib.QUANTIZERS]
      self.coder = codec_lib.EntropyCoder(
          side, codecs, self.info["model_id"], len(self.info["lmbdas"]),
          self.info.get("coding_scheme", "raster"))
      self.latent_channels = int(self.info["config"]["latent_channels"])
    except (ValueError, KeyError, TypeError) as e:
      raise TransportError(f"describe: unusable model description ({e})") from e
    self.num_tables = 3 * num_scales
    self.num_scales = num_scales
    self._encode_side = tf.function(self.coder.encode_side,
                                    reduce_retracing=True)
    self._encode_tile = tf.function(self.coder.encode_tile,
                                    reduce_retracing=True)
    self._pack = tf.function(self.coder.pack, reduce_retracing=True)
    self._decode_side = tf.function(self.coder.decode_side,
                                    reduce_retracing=True)

  def _call(self, name, inputs, shapes):
    """call(name, inputs), its outputs checked (see _checked)."""
    try:
      outputs = self.call(name, inputs)
    except TransportError:
      raise
    except tf.errors.OpError as e:
      raise TransportError(f"{name}: {codec_lib.error_message(e)}") from e
    except (ValueError, KeyError, TypeError) as e:
      raise TransportError(f"{name}: {e!r}") from e
    return _checked(name, outputs, shapes)

  def _tiles(self, height, width):
    """The image's tiles, each a dict: the signatures' tile inputs, and
    slices of its latents (`box`), hyper-latents, pixels and windows (by
    transform, see tiling.windows)."""
    grid = tiling.Grid(height, width)
    slices = lambda box: tuple(slice(int(a), int(a + n)) for a, n in zip(
        *box))
    for index in range(int(grid.count)):
      yield dict(
          inputs=dict(height=np.int32(height), width=np.int32(width),
                      tile=np.int32(index)),
          box=slices(grid.box(index)), z_box=slices(grid.z_box(index)),
          pixels=slices(grid.pixel_box(index)), windows={
              name: slices(window) for name, window in tiling.windows(
                  grid, index, self.info["halos"]).items()})

  def _latent_shape(self, height, width):
    grid = tiling.Grid(height, width)
    return (1, *grid.latent_shape.numpy().tolist(), self.latent_channels)

  def compress(self, image, quantizer=None, rate=None, delta_index=None,
               refine_steps=0):
    """uint8 image [H, W, 3] -> container bytes (the metadata's defaults);
    `refine_steps` > 0: the server refines the latents (tfc_lic.refinement)."""
    quantizer = quantizer or self.info["default_quantizer"]
    q = codec_lib.quantizer_id(quantizer)
    if delta_index is None:
      delta_index = self.info["delta_indexes"][quantizer]
    rate = float(codec_lib.container_rate(
        self.info["default_rate"] if rate is None else rate))
    image = np.asarray(image, np.uint8)
    if image.ndim != 3 or image.shape[-1] != 3:
      raise codec_lib.CodecError(f"expected an RGB image [H, W, 3], not "
                                 f"{list(image.shape)}")
    height, width = image.shape[:2]
    if not container.size_ok(height, width):
      raise codec_lib.CodecError(container.size_error(height, width))
    latent = self._latent_shape(height, width)
    z_channels = int(self.coder.z_offset.shape[0])
    z_shape = (1, *tiling.Grid(height, width).z_shape.numpy().tolist(),
               z_channels)
    tiles = list(self._tiles(height, width))
    y = np.zeros(latent, np.float32)
    for tile in tiles:
      y[(0, *tile["box"])] = self._call("latents", dict(
          tile["inputs"], window=image[tile["windows"]["analysis"]],
          rate=np.float32(rate)), dict(y=_shape(tile["box"], latent[-1])))[
              "y"][0]
    z = np.zeros(z_shape, np.float32)
    for tile in tiles:
      z[(0, *tile["z_box"])] = self._call("hyper_latents", dict(
          tile["inputs"], window=y[(0, *tile["windows"]["hyper_analysis"])][
              None]), dict(z=_shape(tile["z_box"], z_channels)))["z"][0]
    if refine_steps:
      self._refine(image, y, z, tiles, q, rate, delta_index, refine_steps)
    z_hat = (tf.round(z - self.coder.z_offset) + self.coder.z_offset).numpy()
    banks = (0, self.num_scales) if q == 0 else (self.num_scales,
                                                 self.num_tables)
    strings = []
    for tile in tiles:
      shape = _shape(tile["box"], latent[-1])
      out = self._call("quantize", dict(
          tile["inputs"], y=y[(0, *tile["box"])][None],
          window=z_hat[(0, *tile["windows"]["hyper_synthesis"])][None],
          quantizer=np.int32(q), delta_index=np.int32(delta_index)),
                       dict(k=shape, table=shape))
      if (out["table"].min() < banks[0] or out["table"].max() >= banks[1]):
        raise TransportError("quantize: the server's tables are not the "
                             "quantizer's")
      if np.abs(out["k"]).max() > index_coder.MAX_INDEX:
        raise TransportError("quantize: the server's indexes are out of "
                             "range")
      strings.append(self._encode_tile(tf.constant(out["k"]),
                                       tf.constant(out["table"]),
                                       tf.constant(q, tf.int32)))
    stream = self._pack(
        self._encode_side(tf.constant(z)), tf.stack(strings),
        tf.constant(q, tf.int32), tf.constant(delta_index, tf.int32),
        tf.constant(rate, tf.float32), tf.constant(height, tf.int32),
        tf.constant(width, tf.int32))
    return stream.numpy()

  def _refine(self, image, y, z, tiles, quantizer, rate, delta_index, steps):
    """Replaces each tile's y and z (in place) by the server's refined ones."""
    for tile in tiles:
      boxes = ((0, *tile["box"]), (0, *tile["z_box"]))
      out = self._call("refine", dict(
          tile["inputs"], window=image[tile["pixels"]], y=y[boxes[0]][None],
          z=z[boxes[1]][None], quantizer=np.int32(quantizer),
          rate=np.float32(rate), delta_index=np.int32(delta_index),
          refine_steps=np.int32(steps)), dict(
              y=_shape(tile["box"], y.shape[-1]),
              z=_shape(tile["z_box"], z.shape[-1])))
      y[boxes[0]], z[boxes[1]] = out["y"][0], out["z"][0]

  def decompress(self, stream, max_pixels=container.MAX_PIXELS):
    """Container bytes -> uint8 image [H, W, 3]; images above `max_pixels`
    (the decode budget) are refused from the header."""
    fields, z_hat = self._decode_side(tf.constant(stream, tf.string),
                                      tf.constant(max_pixels, tf.int64))
    height, width = int(fields["height"]), int(fields["width"])
    z_hat = z_hat.numpy()
    latent = self._latent_shape(height, width)
    tiles = list(self._tiles(height, width))
    y_hat = np.zeros(latent, np.float32)
    for tile, y_string in zip(tiles, fields["y_strings"].numpy()):
      shape = _shape(tile["box"], latent[-1])
      hyper = self._call("hyper_decode", dict(
          tile["inputs"],
          window=z_hat[(0, *tile["windows"]["hyper_synthesis"])][None]),
                         dict(loc=shape, scale_index=shape))
      _, tile_y_hat = self.coder.decode_tile(
          tf.constant(y_string), fields["quantizer"], fields["delta_index"],
          tf.constant(hyper["loc"]), tf.constant(hyper["scale_index"]),
          self._pass_parameters(shape))
      y_hat[(0, *tile["box"])] = tile_y_hat.numpy()[0]
    image = np.zeros([height, width, 3], np.uint8)
    for tile in tiles:
      image[tile["pixels"]] = self._call("synthesize", dict(
          tile["inputs"], window=y_hat[(0, *tile["windows"]["synthesis"])][
              None], quantizer=fields["quantizer"].numpy(),
          rate=fields["rate"].numpy()), dict(image=_shape(
              tile["pixels"], 3)[1:]))["image"]
    return image

  def _pass_parameters(self, shape):
    """decode_tile's pass_parameters: with a context model the server gives
    each pass's from the latents decoded before it."""
    if self.coder.coding_scheme == "raster":
      return lambda loc, scale_index, decoded: (loc, scale_index)

    def call(loc, scale_index, decoded):
      out = self._call("pass_parameters", dict(
          loc=loc.numpy(), scale_index=scale_index.numpy(),
          decoded=decoded.numpy()), dict(loc=shape, scale_index=shape))
      return tf.constant(out["loc"]), tf.constant(out["scale_index"])

    return call


def _shape(box, channels):
  """[1, h, w, channels] of a box (slices)."""
  return (1, box[0].stop - box[0].start, box[1].stop - box[1].start,
          channels)
