"""Stream fuzzing (tfc_lic.stream_fuzz): hostile streams, most with a right
checksum so that they reach the entropy decoder, end in the codec's error or
an image of the header's size, each within a deadline.

The default test runs the tiny codec in process for 30 s. The slow one
(`make benchmark`) runs 10,000 cases through the shipped full SavedModel's
`decompress` and 2,000 through the client with the `-core` model, each in a
worker process that a 20 s deadline per case watches (a hang kills it and
fails the test), and writes results/fuzz/stream_fuzz.json.
"""

import json
import os
import select
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TESTDATA, smooth_image
from tfc_lic import export
from tfc_lic import stream_fuzz
from tfc_lic import zoo

DEADLINE_SECONDS = 20
BUDGET_SECONDS = 30


@pytest.fixture(scope="module")
def decode(tiny_codec):
  decompress = tf.function(tiny_codec.decompress,
                           input_signature=[tf.TensorSpec([], tf.string)])
  return lambda data: decompress(tf.constant(data)).numpy()


@pytest.fixture(scope="module")
def streams(tiny_codec):
  """Single-tile streams and a 1 x 2 tile one of each quantizer."""
  return [tiny_codec.compress(smooth_image(*shape, seed=q), q, 1., 0).numpy()
          for q in range(3) for shape in ((40 + 8 * q, 56), (24, 1040))]


def test_mutations_keep_the_checksum_right(tiny_codec, streams, decode):
  """Each kind but splices and random bytes passes the checksum, so the
  fuzzing reaches the entropy decoder."""
  rng = np.random.default_rng(1)
  for kind in stream_fuzz.KINDS:
    if kind in ("splice", "random"):
      continue
    data = stream_fuzz.mutate(kind, streams, rng, int(tiny_codec.model_id))
    assert stream_fuzz.with_checksum(data[:-4]) == data, kind
  # A y string cut short under right lengths and checksum: what hung tfc's
  # range decoder.
  short = stream_fuzz.mutate("short y", streams, rng, 0)
  with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt"):
    decode(short)


def test_fuzz_decoder(tiny_codec, streams, decode):
  outcomes, start = {}, time.time()
  for kind, data in stream_fuzz.cases(streams, 2026, int(tiny_codec.model_id)):
    if time.time() - start > BUDGET_SECONDS:
      break
    began = time.time()
    outcome = stream_fuzz.check(decode, data)
    assert time.time() - began < DEADLINE_SECONDS, f"{kind} took too long"
    key = f"{kind}: {outcome}"
    outcomes[key] = outcomes.get(key, 0) + 1
  print(outcomes)
  assert sum(outcomes.values()) > 100


# A worker: encodes crops of kodim23 with the SavedModel (real streams), then
# prints one line per fuzz case and its peak memory at the end.
WORKER = """
import resource, sys, time
import numpy as np
import tensorflow as tf
from tfc_lic import client as client_lib, image_io, stream_fuzz, zoo
path, core, mode, count, image = sys.argv[1:6]
model = zoo.load(path)
image = image_io.read_image(image)
image = np.concatenate([image, image[:, ::-1]], 1)  # Two tiles wide.
streams = [model.signatures["compress_with_options"](
    image=tf.constant(image[:h, :w]), quantizer=tf.constant(q),
    rate=tf.constant(r), delta_index=tf.constant(4))["stream"].numpy()
           for q in range(3) for h, w, r in ((40, 56, 0.), (72, 128, 5.),
                                             (130, 66, 3.), (40, 1040, 2.))]
if mode == "client":
  decode = client_lib.Client(client_lib.saved_model_transport(core)).decompress
else:
  signature = model.signatures["decompress"]
  decode = lambda data: signature(stream=tf.constant(data))["image"].numpy()
print("ready", flush=True)
cases = stream_fuzz.cases(streams, 2026, model.info["model_id"])
for _, (kind, data) in zip(range(int(count)), cases):
  began = time.time()
  outcome = stream_fuzz.check(decode, data)
  print(kind, outcome, round(time.time() - began, 3), sep="\\t", flush=True)
print("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss >> 10,
      flush=True)
"""


def _fuzz_in_worker(mode, count):
  """Runs `count` cases in a worker; fails on a crash or a case over the
  deadline. Returns the summary."""
  full = zoo.find(zoo.DEFAULT_MODEL)
  core = os.path.join(os.path.dirname(full) + export.CORE_SUFFIX,
                      os.path.basename(full))
  worker = subprocess.Popen(
      [sys.executable, "-c", WORKER, full, core, mode, str(count),
       os.path.join(TESTDATA, "kodim23.png")],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
      env=dict(os.environ, PYTHONPATH=REPO))
  outcomes, slowest, peak, began = {}, 0., None, time.time()
  deadline = 600  # Loading the model and writing the streams, first.
  try:
    while True:
      ready, _, _ = select.select([worker.stdout], [], [], deadline)
      if not ready:
        pytest.fail(f"{mode}: no result within {deadline} s after "
                    f"{sum(outcomes.values())} cases (hang)")
      line = worker.stdout.readline()
      if not line:
        break
      deadline = DEADLINE_SECONDS
      fields = line.split()
      if fields[0] == "peak_rss_mb":
        peak = int(fields[1])
      elif fields[0] != "ready":
        kind, outcome, seconds = line.rstrip("\n").split("\t")
        key = f"{kind}: {outcome}"
        outcomes[key] = outcomes.get(key, 0) + 1
        slowest = max(slowest, float(seconds))
  finally:
    worker.kill()
    stderr = worker.communicate()[1]
  assert worker.returncode in (0, -9) and peak is not None, stderr[-3000:]
  assert sum(outcomes.values()) == count
  return dict(cases=count, seconds=round(time.time() - began, 1),
              slowest_case_seconds=slowest, peak_rss_mb=peak,
              outcomes=outcomes)


@pytest.mark.slow
def test_fuzz_shipped_model_and_client():
  """10,000 cases through the SavedModel, 2,000 through the client."""
  summary = dict(model=os.path.relpath(zoo.find(zoo.DEFAULT_MODEL), REPO),
                 deadline_seconds=DEADLINE_SECONDS,
                 saved_model=_fuzz_in_worker("saved_model", 10000),
                 client=_fuzz_in_worker("client", 2000))
  path = os.path.join(REPO, "results", "fuzz", "stream_fuzz.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(summary, f, indent=1)
  for run in ("saved_model", "client"):
    assert summary[run]["peak_rss_mb"] < 4096, summary[run]
