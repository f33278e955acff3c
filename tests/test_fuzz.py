"""Decoder fuzzing: hostile streams end in the codec's error or a valid image.

Cases: truncations, bit flips, splices of two streams, random bytes, and
well-formed containers (right magic, version, model id and checksum) around
random z/y payloads, which reach the range decoder itself. The default test
is bounded to 30 s; the 10,000-case run is a slow (benchmark) test.
"""

import json
import os
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, smooth_image
from tfc_lic import container

BUDGET_SECONDS = 30


@pytest.fixture(scope="module")
def decode(tiny_codec):
  return tf.function(tiny_codec.decode,
                     input_signature=[tf.TensorSpec([], tf.string)])


@pytest.fixture(scope="module")
def streams(tiny_codec):
  encode = tf.function(tiny_codec.encode, input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32),
      tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])
  return [encode(smooth_image(40 + 8 * q, 56, seed=q), q, 1., 0)[
      "container"].numpy() for q in range(3)]


def _well_formed(tiny_codec, rng, quantizer):
  z = rng.bytes(int(rng.integers(0, 40)))
  y = rng.bytes(int(rng.integers(0, 200)))
  return container.pack(
      tiny_codec.model_id, quantizer, int(rng.integers(-8, 8)),
      float(rng.uniform(0, 1)), int(rng.integers(1, 80)),
      int(rng.integers(1, 80)), z, y).numpy()


def _cases(tiny_codec, streams, rng):
  while True:
    kind = int(rng.integers(5))
    stream = streams[int(rng.integers(len(streams)))]
    if kind == 0:
      yield "truncated", stream[:int(rng.integers(len(stream)))]
    elif kind == 1:
      data = bytearray(stream)
      for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(len(data)))] ^= 1 << int(rng.integers(8))
      yield "bit flip", bytes(data)
    elif kind == 2:
      other = streams[int(rng.integers(len(streams)))]
      yield "splice", (stream[:int(rng.integers(len(stream)))] +
                       other[int(rng.integers(len(other))):])
    elif kind == 3:
      yield "random", rng.bytes(int(rng.integers(0, 300)))
    else:
      yield "well-formed", _well_formed(tiny_codec, rng, int(rng.integers(3)))


def _fuzz(tiny_codec, streams, decode, max_cases, seconds):
  """Runs cases until either bound; returns {(kind, outcome): count}."""
  rng = np.random.default_rng(2026)
  outcomes = {}
  start = time.time()
  for kind, data in _cases(tiny_codec, streams, rng):
    if sum(outcomes.values()) >= max_cases or time.time() - start > seconds:
      break
    began = time.time()
    try:
      image = decode(tf.constant(data))["image"].numpy()
      assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8
      # Only an intact stream may decode (e.g. a splice that rebuilt one).
      assert kind == "well-formed" or data in streams, kind
      outcome = "image"
    except tf.errors.InvalidArgumentError:
      outcome = "error"
    assert time.time() - began < 20, f"{kind} case took too long"
    key = f"{kind}: {outcome}"
    outcomes[key] = outcomes.get(key, 0) + 1
  return outcomes


def test_fuzz_decoder(tiny_codec, streams, decode):
  outcomes = _fuzz(tiny_codec, streams, decode, 10 ** 9, BUDGET_SECONDS)
  print(outcomes)
  assert sum(outcomes.values()) > 50


@pytest.mark.slow
def test_fuzz_decoder_10000_cases(tiny_codec, streams, decode):
  """Benchmark-size run; writes the outcome counts to results/."""
  start = time.time()
  outcomes = _fuzz(tiny_codec, streams, decode, 10000, 3600)
  assert sum(outcomes.values()) == 10000
  path = os.path.join(REPO, "results", "fuzz", "decoder_fuzz.json")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(dict(cases=10000, seconds=round(time.time() - start, 1),
                   outcomes=outcomes), f, indent=1)
