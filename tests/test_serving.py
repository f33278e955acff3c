"""Both SavedModels run without tfc (the full one codes with core ops under
XLA), the client's entropy coding reproduces the full codec's streams bit for
bit; exports store float16 weights and match a float32 codec of the same
values."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tests.conftest import REPO, TINY_CONFIG, smooth_image
from tfc_lic import client as client_lib
from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import export
from tfc_lic import learned_codec
from tfc_lic import settings
from tfc_lic import training
from tfc_lic import zoo

CORE_ONLY = """
import sys, numpy as np, tensorflow as tf
from tfc_lic import client as client_lib
client = client_lib.Client(client_lib.saved_model_transport(sys.argv[1]))
image = np.random.default_rng(0).integers(0, 256, (40, 1040, 3), np.uint8)
for quantizer, steps in (("usq", 0), ("tcq4", 0), ("tcq8", 2)):  # 2 tiles
  stream = client.compress(image, quantizer, refine_steps=steps)
  assert client.decompress(stream).shape == image.shape
assert "tensorflow_compression" not in sys.modules
print("ok")
"""


FULL_ONLY = """
import sys, numpy as np, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), np.uint8)
for quantizer in (0, 1, 2):
  stream = model.signatures["compress_with_options"](
      image=tf.constant(image), quantizer=tf.constant(quantizer),
      rate=tf.constant(1.), delta_index=tf.constant(0))["stream"]
  decoded = model.signatures["decompress"](stream=stream)["image"]
  assert decoded.shape == (40, 56, 3), decoded.shape
  try:
    model.signatures["decompress"](stream=stream + b"\\0\\0")
    raise AssertionError("a padded stream decoded")
  except tf.errors.InvalidArgumentError as e:
    assert "corrupt" in str(e) or "checksum" in str(e), e
assert "tensorflow_compression" not in sys.modules
print("ok")
"""


def run_without_tfc(script, path):
  """Runs a script on a SavedModel in a process that never imports tfc."""
  result = subprocess.run(
      [sys.executable, "-c", script, path, str(container.VERSION)],
      capture_output=True,
      text=True, timeout=600,
      env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip() == "ok"


def test_protobuf_parses_saved_models_in_c():
  """Loading a SavedModel is mostly protobuf parsing: with the pure-Python
  parser (protobuf 3.20 on Python 3.11) v12 loaded in 25 s instead of 5 s."""
  from google.protobuf.internal import api_implementation  # pylint: disable=g-import-not-at-top
  assert api_implementation.Type() in ("upb", "cpp"), api_implementation.Type()


# The test export's refinement settings (each unlike the shipped one).
REFINEMENT = dict(refine_lambda_scales={"tcq8": .25},
                  refine_learning_rates={"usq": .02})


@pytest.fixture(scope="module")
def exported(tiny_model, tmp_path_factory):
  base = str(tmp_path_factory.mktemp("zoo"))
  # The config of a run whose syntheses trained in bf16 (the tiny model's
  # own weights are float32): the export computes in float32.
  trained = dict(TINY_CONFIG, precision="bfloat16", frozen_precision="float32")
  return export.export_model(tiny_model, trained, base, "tiny", 1,
                             metadata={}, delta_indexes={"tcq8": -2},
                             **REFINEMENT)


@pytest.fixture(scope="module")
def full_model(exported):
  """The full SavedModel, loaded once: every load compiles its coding loops
  with XLA again, and a test process would keep them all."""
  return zoo.load(exported[0])


@pytest.fixture(scope="module")
def core_transport(exported):
  """The core SavedModel in process, loaded once (loading takes seconds)."""
  return client_lib.saved_model_transport(exported[1])


@pytest.fixture(scope="module")
def client(core_transport):
  return client_lib.Client(core_transport)


@pytest.fixture(scope="module")
def rounded_codec(tiny_model):
  """A float32 codec of tiny_model's weights rounded to float16, with the
  export's refinement settings."""
  model = training.model_from_config(TINY_CONFIG)
  for target, source in zip(model.variables, tiny_model.variables):
    target.assign(source.numpy().astype(np.float16).astype(np.float32))
  return codec_lib.ImageCodec(model, **REFINEMENT)


def test_saved_models_store_weights_as_float16(exported):
  for path in exported:
    reader = tf.train.load_checkpoint(os.path.join(path, "variables",
                                                   "variables"))
    shapes = reader.get_variable_to_shape_map()
    sizes = {}
    for name, dtype in reader.get_variable_to_dtype_map().items():
      sizes[dtype] = sizes.get(dtype, 0) + int(np.prod(shapes[name]))
    assert sizes.get(tf.float32, 0) < 0.01 * sizes[tf.float16], sizes


def test_core_saved_model_loads_and_runs_without_tfc(exported):
  run_without_tfc(CORE_ONLY, exported[1])


def test_full_saved_model_codes_without_tfc(exported):
  run_without_tfc(FULL_ONLY, exported[0])


@pytest.mark.parametrize("quantizer", codec_lib.QUANTIZERS)
def test_client_streams_equal_full_codec_streams(client, rounded_codec,
                                                 quantizer):
  """Tile by tile (1 x 2 tiles here), byte for byte."""
  image = smooth_image(24, 1040, seed=3)
  q = codec_lib.quantizer_id(quantizer)
  delta_index = client.info["delta_indexes"][quantizer]
  stream = client.compress(image, quantizer, rate=0.5)
  expected = rounded_codec.compress(image, q, 0.5, delta_index).numpy()
  assert stream == expected
  decoded = client.decompress(stream)
  assert np.array_equal(decoded, rounded_codec.decompress(stream).numpy())
  assert decoded.shape == image.shape


def test_client_refined_streams_equal_full_codec_streams(client,
                                                         rounded_codec):
  """Refined tile by tile (1 x 2 tiles), byte for byte."""
  image = smooth_image(24, 1040, seed=4)
  stream = client.compress(image, "usq", rate=0.5, refine_steps=4)
  assert stream != client.compress(image, "usq", rate=0.5)
  delta_index = client.info["delta_indexes"]["usq"]
  assert stream == rounded_codec.compress_refined(
      image, 0, 0.5, delta_index, 4).numpy()


def test_only_the_core_model_refines(exported, full_model, client,
                                     monkeypatch):
  """The full SavedModel holds no refining encoder (its graph would cost
  every process that loads the model 0.37 GB): refined coding goes through
  the core model, also for the evaluation's "+refine<N>" codecs."""
  assert "compress_refined" not in full_model.signatures
  graph = saved_model_pb2.SavedModel.FromString(
      open(os.path.join(exported[0], "saved_model.pb"), "rb").read())
  functions = [f.signature.name for f in
               graph.meta_graphs[0].graph_def.library.function]
  assert functions and not [f for f in functions if "refine" in f]
  assert zoo.find_core(exported[0]) == os.path.normpath(exported[1])
  image = smooth_image(24, 40, seed=8)
  # (The models this module loaded: loading takes seconds.)
  monkeypatch.setitem(learned_codec._LOADED, exported[0], full_model)  # pylint: disable=protected-access
  monkeypatch.setitem(learned_codec._CLIENTS, exported[0], client)  # pylint: disable=protected-access
  refined = learned_codec.LearnedCodec(f"{exported[0]}:tcq8+refine2")
  stream = refined.encode(image, (1., None))
  assert stream == client.compress(image, "tcq8", 1., refine_steps=2)
  assert refined.decode(stream).shape == image.shape


def test_client_decodes_full_saved_model_default_stream(full_model, client):
  full = full_model
  image = smooth_image(33, 47, seed=4)
  stream = full.signatures["compress"](image=tf.constant(image))["stream"]
  assert client.compress(image) == stream.numpy()
  assert np.array_equal(
      client.decompress(stream.numpy()),
      full.signatures["decompress"](stream=stream)["image"].numpy())


def test_client_refuses_a_corrupt_stream(client):
  stream = bytearray(client.compress(smooth_image(32, 32)))
  stream[len(stream) // 2] ^= 0x10
  with pytest.raises(tf.errors.InvalidArgumentError, match="checksum"):
    client.decompress(bytes(stream))


# Every argument of the encoding signatures at and beyond its range: an
# error naming it (None: a stream, which must decode to the image's size).
ARGUMENTS = [
    ("quantizer", -1, "quantizer must be"), ("quantizer", 3, "quantizer"),
    ("quantizer", 2**31 - 1, "quantizer"), ("quantizer", 2, None),
    ("rate", -1., "rate must be"), ("rate", 1.5, "rate must be"),
    ("rate", float("nan"), "rate"), ("rate", float("inf"), "rate"),
    ("rate", 0.5, None), ("delta_index", -33, "delta_index must be"),
    ("delta_index", 33, "delta_index"), ("delta_index", -2**31, "delta_index"),
    ("delta_index", -32, None), ("delta_index", 32, None),
    ("refine_steps", -1, "refinement takes"),
    ("refine_steps", 2**31 - 1, "refinement takes"), ("refine_steps", 2, None),
    ("image", np.zeros((0, 5, 3), np.uint8), "outside the codec limit"),
    ("image", np.full((1, 1, 3), 200, np.uint8), None),
    ("image", np.zeros((1, 65536, 3), np.uint8), "65535 px a side"),
]


@pytest.mark.parametrize("argument, value, error", ARGUMENTS)
def test_signatures_and_client_check_every_argument(full_model, client,
                                                    argument, value, error):
  """compress_with_options (except refine_steps: only the core model
  refines) and the client: a clean error naming the argument, or a stream
  of the right size at the quality its step gives."""
  loaded = full_model
  arguments = dict(image=smooth_image(24, 40, seed=6), quantizer=0, rate=1.,
                   delta_index=0)
  arguments[argument] = value
  refining = argument == "refine_steps"
  call = lambda: loaded.signatures["compress_with_options"](**{
      k: tf.constant(v, tf.uint8 if k == "image" else tf.float32
                     if k == "rate" else tf.int32)
      for k, v in arguments.items()})["stream"]
  quantizer = codec_lib.QUANTIZERS[arguments["quantizer"]] if (
      argument != "quantizer" or error is None) else "usq"
  client_call = lambda: client.compress(
      arguments["image"], quantizer, arguments["rate"],
      arguments["delta_index"], arguments.get("refine_steps", 0))
  if error is not None:
    if not refining:
      with pytest.raises(tf.errors.InvalidArgumentError, match=error):
        call()
    if argument != "quantizer":  # The client takes quantizer names.
      # The client checks the image's size itself (it cuts the tiles).
      with pytest.raises(codec_lib.CodecError if argument == "image" else
                         client_lib.TransportError, match=error):
        client_call()
    return
  image = arguments["image"]
  for stream in [client_call()] + ([] if refining else [call().numpy()]):
    decoded = loaded.signatures["decompress"](
        stream=tf.constant(stream))["image"].numpy()
    assert decoded.shape == image.shape
  if argument == "delta_index":  # Δ = 1/16 codes closer than Δ = 16.
    fine, coarse = (loaded.signatures["decompress"](
        stream=loaded.signatures["compress_with_options"](
            image=tf.constant(image), quantizer=tf.constant(0),
            rate=tf.constant(1.), delta_index=tf.constant(j))["stream"])[
                "image"].numpy().astype(float) for j in (-32, 32))
    assert np.mean((fine - image) ** 2) < np.mean((coarse - image) ** 2)


def test_decode_budget_is_enforced_in_the_graph_and_by_the_client(full_model,
                                                                   client):
  """decompress_with_options and Client.decompress refuse an image above
  max_pixels from its header; at the budget they decode."""
  loaded = full_model
  stream = client.compress(smooth_image(24, 40, seed=7))
  decode = lambda budget: loaded.signatures["decompress_with_options"](
      stream=tf.constant(stream), max_pixels=tf.constant(budget, tf.int64))
  assert decode(24 * 40)["image"].shape == (24, 40, 3)
  assert client.decompress(stream, max_pixels=24 * 40).shape == (24, 40, 3)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
    decode(24 * 40 - 1)
  with pytest.raises(tf.errors.InvalidArgumentError, match="max_pixels"):
    client.decompress(stream, max_pixels=24 * 40 - 1)


def _raise(error):
  raise error


@pytest.mark.parametrize("signature, tamper, message", [
    ("quantize", lambda o: {k: v for k, v in o.items() if k != "k"},
     "lacks 'k'"),
    ("quantize", lambda o: dict(o, k=o["k"][:, :-1]), "shape"),
    ("quantize", lambda o: dict(o, table=o["table"] + 1000), "tables"),
    ("quantize", lambda o: dict(o, k=o["k"] + 2**20), "out of range"),
    ("hyper_latents", lambda o: dict(o, z=np.full_like(o["z"], np.nan)),
     "unusable"),
    ("quantize", lambda o: dict(o, k=o["k"] + 0.5), "unusable"),
    ("latents", lambda o: dict(o, y=o["y"][:, 1:]), "shape"),
    ("hyper_decode", lambda o: dict(o, loc=o["loc"][..., :-1]), "shape"),
    ("synthesize", lambda o: dict(o, image=o["image"][:-1]), "shape"),
    ("synthesize", lambda o: _raise(KeyError("outputs")), "synthesize"),
    ("describe", lambda o: dict(o, lookup=o["lookup"][:-1]), "tables"),
    ("describe", lambda o: dict(o, metadata="{"), "description"),
])
def test_client_refuses_bad_replies(core_transport, signature, tamper,
                                    message):
  """A faulty or hostile server gives a TransportError, not a crash, a hang
  or a silently wrong image."""
  def call(name, inputs):
    outputs = core_transport(name, inputs)
    return tamper(outputs) if name == signature else outputs
  image = smooth_image(40, 56, seed=5)
  stream = client_lib.Client(core_transport).compress(image, "tcq8")
  with pytest.raises(client_lib.TransportError, match=message):
    client = client_lib.Client(call)
    client.decompress(client.compress(image, "tcq8"))
    client.decompress(stream)


def test_rest_transport_bounds_the_whole_request():
  """A server that dribbles its reply, or sends no JSON, fails in time."""
  import http.server  # pylint: disable=g-import-not-at-top
  import threading  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top

  class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # pylint: disable=invalid-name
      self.rfile.read(int(self.headers["Content-Length"]))
      self.send_response(200)
      self.end_headers()
      if "slow" in self.path:
        for _ in range(30):
          self.wfile.write(b" ")
          self.wfile.flush()
          time.sleep(0.1)
      self.wfile.write(b"<html>not json</html>")

    def log_message(self, *args):
      pass

  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  url = f"http://127.0.0.1:{server.server_address[1]}/v1/models/"
  try:
    began = time.time()
    with pytest.raises(client_lib.TransportError, match="no reply within 1"):
      client_lib.rest_transport(url + "slow", timeout=1.)("describe", {})
    assert time.time() - began < 3
    with pytest.raises(client_lib.TransportError, match="not a TF Serving"):
      client_lib.rest_transport(url + "fast", timeout=5.)("describe", {})
  finally:
    server.shutdown()


def test_version_folders_follow_the_umask(exported):
  """Not mkdtemp's private 0700: TF Serving may run as another user."""
  umask = os.umask(0)
  os.umask(umask)
  for path in exported:
    assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask, oct(
        os.stat(path).st_mode)


def test_metadata_lists_every_quantizers_settings(exported):
  info = zoo.metadata(exported[0])
  """Those the export names, and the shipped ones for the others."""
  assert info["delta_indexes"] == dict(settings.DELTA_INDEXES, tcq8=-2)
  assert info["refine_lambda_scales"] == dict(settings.REFINE_LAMBDA_SCALES,
                                              tcq8=.25)
  assert info["refine_learning_rates"] == dict(settings.REFINE_LEARNING_RATES,
                                               usq=.02)
  assert info["tcq_lambda"] == settings.TCQ_LAMBDA


@pytest.mark.parametrize("flag, error", [
    ("--refine_lambda_scales=tcq8",
     "--refine_lambda_scales: expected quantizer=value, got 'tcq8'"),
    ("--delta_indexes=usq=x", "--delta_indexes: expected quantizer=value, "
     "got 'usq=x'"),
    ("--refine_lambda_scales=jpeg=1",
     "unknown quantizer 'jpeg'; choose from usq, tcq4, tcq8"),
    ("--refine_lambda_scales=tcq8=0",
     "refinement's λ scale for tcq8 must be positive, not 0.0"),
    ("--refine_learning_rates=usq=0",
     "refinement's learning rate for usq must be positive, not 0.0")])
def test_export_binary_refuses_bad_quantizer_settings(exported, tmp_path, flag,
                                                      error):
  result = subprocess.run(
      [sys.executable, "bin/export.py", f"--saved_model={exported[0]}",
       "--name=again", f"--output_dir={tmp_path}", flag],
      cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True,
      text=True, timeout=600)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == f"error: {error}"
  assert not os.listdir(tmp_path)


def test_saved_model_gives_back_the_exported_model(exported, tiny_model):
  """zoo.load_trained restores the exported (float16) weights and the
  config it computes with, so that exporting it again keeps the model id
  (streams decode)."""
  model, config, weights = zoo.load_trained(exported[0])
  assert weights == os.path.join("tiny", "1")
  assert config == dict(TINY_CONFIG, precision="float32")
  for restored, source in zip(model.variables, tiny_model.variables):
    np.testing.assert_array_equal(
        restored.numpy(), source.numpy().astype(np.float16).astype(np.float32))
  assert int(codec_lib.encoder_fingerprint(model)) == zoo.metadata(
      exported[0])["model_id"]


@pytest.mark.slow  # ~170 s on 2 cores: a second export of its own.
def test_rdft_up_kernel_model_exports_and_comes_back(tmp_path):
  """A model trained with --up_kernel=rdft (kernels computed from float16-
  stored RDFT variables in the export) codes as a float32 codec of the same
  weights does, byte for byte, and its SavedModel gives the model back."""
  config = dict(TINY_CONFIG, up_kernel="rdft")
  tf.keras.utils.set_random_seed(6)
  model = training.model_from_config(config)
  for v in model.trainable_variables:
    v.assign(v + tf.random.normal(v.shape, stddev=0.01))
  full, _ = export.export_model(model, config, str(tmp_path), "rdft", 1,
                                metadata={})
  rounded = training.model_from_config(config)
  for target, source in zip(rounded.variables, model.variables):
    target.assign(source.numpy().astype(np.float16).astype(np.float32))
  codec = codec_lib.ImageCodec(rounded)
  image = smooth_image(48, 80, seed=5)
  loaded = zoo.load(full)
  stream = loaded.signatures["compress"](image=tf.constant(image))["stream"]
  default = settings.DEFAULT_QUANTIZER  # what `compress` runs
  expected = codec.compress(image, codec_lib.quantizer_id(default),
                            float(rounded.num_rates - 1),
                            settings.DELTA_INDEXES[default])
  assert stream.numpy() == expected.numpy()
  decoded = loaded.signatures["decompress"](stream=stream)["image"]
  np.testing.assert_array_equal(decoded, codec.decompress(expected))
  restored, restored_config, _ = zoo.load_trained(full)
  assert restored_config["up_kernel"] == "rdft"
  for a, b in zip(restored.variables, rounded.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
