"""Client half of a split deployment: entropy coding against TF Serving.

Stock TF Serving runs the core-op SavedModel (<name>-core, see export.py):
the transforms and the quantizer search. `Client` does the rest with tfc's
range coder and produces the same container bytes as the full SavedModel's
`compress`, and decodes any stream of that model:

  client = Client(rest_transport(
      "http://localhost:8501/v1/models/mbt2018-mean-vr-core"))
  stream = client.compress(image)           # uint8 [H, W, 3] -> bytes
  image = client.decompress(stream)

A transport is any `call(signature_name, inputs) -> outputs` over dicts of
numpy arrays: `saved_model_transport` (in process), `rest_transport` (TF
Serving's REST API) or `grpc_transport` (tensorflow-serving-api).
"""

import json
import urllib.error
import urllib.request

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import codec as codec_lib
from tfc_lic import coding_passes
from tfc_lic import container
from tfc_lic import entropy_tables
from tfc_lic import latent_codecs

# Output names and dtypes of the core-op signatures (REST returns JSON).
OUTPUTS = {
    "analyze": {"z": np.float32, "k": np.int32, "table": np.int32},
    "analyze_refined": {"z": np.float32, "k": np.int32, "table": np.int32},
    "hyper_decode": {"loc": np.float32, "scale_index": np.float32},
    "pass_parameters": {"loc": np.float32, "scale_index": np.float32},
    "synthesize": {"image": np.uint8},
    "describe": {"metadata": str, "compatible": bool, "lookup": np.int32,
                 "offset": np.int32, "side_cdf": np.int32,
                 "side_cdf_offset": np.int32,
                 "side_quantization_offset": np.float32},
}


class TransportError(RuntimeError):
  """The model server could not be reached or refused a request."""


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
  return {k: v if OUTPUTS[name][k] is str else
          np.asarray(v, OUTPUTS[name][k]) for k, v in outputs.items()}


def rest_transport(model_url, timeout=60.):
  """TF Serving's REST API; model_url is
  http://host:8501/v1/models/<name>[/versions/<v>]."""

  def call(name, inputs):
    body = json.dumps({"signature_name": name, "inputs": {
        k: np.asarray(v).tolist() for k, v in inputs.items()}}).encode()
    request = urllib.request.Request(
        model_url + ":predict", data=body,
        headers={"Content-Type": "application/json"})
    try:
      with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    except urllib.error.HTTPError as e:
      raise TransportError(f"{model_url} {name}: {e.read().decode()}") from e
    except OSError as e:
      raise TransportError(f"{model_url}: {e}") from e
    return _decode_json_outputs(name, reply["outputs"])

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
  """compress/decompress with the transforms behind `call` (a transport)."""

  def __init__(self, call):
    self.call = call
    described = call("describe", {"format_version": np.int32(
        container.VERSION)})
    if not bool(described["compatible"]):
      raise TransportError("the served model writes another container "
                           "format version than this client reads")
    metadata = described["metadata"]
    self.info = json.loads(metadata.decode() if isinstance(
        metadata, bytes) else metadata)
    side = tfc.ContinuousBatchedEntropyModel(**self.info["side_model"])
    values = {"cdf": described["side_cdf"],
              "cdf_offset": described["side_cdf_offset"],
              "quantization_offset": described["side_quantization_offset"]}
    for variable in side.variables:
      variable.assign(values[variable.name.split(":")[0].rsplit("/", 1)[-1]])
    tables = entropy_tables.EntropyTables(
        described["lookup"], described["offset"], self.info["num_scales"])
    codecs = [latent_codecs.create(q, tables) for q in codec_lib.QUANTIZERS]
    # Exports older than coding schemes have one pass over all positions.
    self.coder = codec_lib.EntropyCoder(
        side, codecs, self.info["model_id"], len(self.info["lmbdas"]),
        self.info.get("coding_scheme", "raster"))
    self._encode = tf.function(self.coder.encode, reduce_retracing=True)
    self._decode_side = tf.function(self.coder.decode_side,
                                    reduce_retracing=True)
    self._read_pass = tf.function(self.coder.read_pass, reduce_retracing=True)

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
    inputs = {"image": image, "quantizer": np.int32(q),
              "rate": np.float32(rate), "delta_index": np.int32(delta_index)}
    if refine_steps:
      out = self.call("analyze_refined",
                      dict(inputs, refine_steps=np.int32(refine_steps)))
    else:
      out = self.call("analyze", inputs)
    stream = self._encode(
        tf.constant(out["z"]), tf.constant(out["k"]),
        tf.constant(out["table"]), tf.constant(q, tf.int32),
        tf.constant(delta_index, tf.int32), tf.constant(rate, tf.float32),
        tf.constant(image.shape[0], tf.int32),
        tf.constant(image.shape[1], tf.int32))
    return stream.numpy()

  def decompress(self, stream):
    """Container bytes -> uint8 image [H, W, 3]."""
    fields, z_hat = self._decode_side(tf.constant(stream, tf.string))
    size = {"height": fields["height"].numpy(),
            "width": fields["width"].numpy()}
    hyper = self.call("hyper_decode", dict(z_hat=z_hat.numpy(), **size))
    y_hat = self._decode_passes(fields, hyper)
    return self.call("synthesize", dict(
        y_hat=y_hat, quantizer=fields["quantizer"].numpy(),
        rate=fields["rate"].numpy(), **size))["image"]

  def _decode_passes(self, fields, hyper):
    """y_hat, pass by pass; with a context model the server gives each
    pass's parameters from the latents decoded before it."""
    handle = self.coder.start_latents(fields)
    y_hat = np.zeros(hyper["loc"].shape, np.float32)
    for indexes in self.coder.passes(fields["height"], fields["width"]):
      params = hyper if self.coder.coding_scheme == "raster" else self.call(
          "pass_parameters", dict(hyper, decoded=y_hat))
      gathered = [coding_passes.gather(tf.constant(params[name]), indexes)
                  for name in ("loc", "scale_index")]
      handle, _, y_hat_pass = self._read_pass(
          handle, fields["quantizer"], fields["delta_index"], *gathered)
      y_hat = coding_passes.scatter(tf.constant(y_hat), indexes,
                                    y_hat_pass).numpy()
    (y_hat,) = self.coder.finish_latents(handle, tf.constant(y_hat))
    return y_hat.numpy()
