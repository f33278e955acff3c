"""Hostile streams for fuzzing a decoder (#55): mutations of real streams
that keep the checksum right, so that they reach the entropy decoder.

Mutations: truncations, bit flips, zeroed and padded bodies, each header
field set to a random value, z and y swapped, a y string cut short with the
lengths fixed up; plus splices of two streams and random bytes (checksum
left wrong), and well-formed headers around random strings. `check` runs a
decoder on one case and says what happened; tests/test_fuzz.py drives it.
"""

import numpy as np
import tensorflow as tf

from tfc_lic import container

# (offset, width) of each header field after the magic (container.py).
FIELDS = {"version": (4, 1), "model id": (5, 4), "quantizer": (9, 1),
          "step index": (10, 1), "rate": (11, 2), "height": (13, 2),
          "width": (15, 2), "z length": (17, 4), "y length": (21, 4)}
KINDS = ("truncated", "bit flips", "zeroed", "padded", "header field",
         "z/y swap", "short y", "splice", "random", "well-formed")


def with_checksum(body):
  """A container body (everything before the checksum) with its checksum."""
  digest = tf.fingerprint([body]).numpy()[0, :container.CHECKSUM_SIZE]
  return body + bytes(digest.astype(np.uint8))


def _set(body, field, value):
  offset, width = FIELDS[field]
  return (body[:offset] + int(value % 256**width).to_bytes(width, "big")
          + body[offset + width:])


def _strings(body):
  """(header, z string, y string) of a container body."""
  offset, width = FIELDS["z length"]
  z_length = int.from_bytes(body[offset:offset + width], "big")
  header = body[:container.HEADER_SIZE]
  return (header, body[container.HEADER_SIZE:container.HEADER_SIZE + z_length],
          body[container.HEADER_SIZE + z_length:])


def _repack(header, z, y):
  header = _set(_set(header, "z length", len(z)), "y length", len(y))
  return with_checksum(header + z + y)


def mutate(kind, streams, rng, model_id):
  """One case of `kind` from real `streams` (bytes)."""
  stream = streams[int(rng.integers(len(streams)))]
  body = stream[:-container.CHECKSUM_SIZE]
  header, z, y = _strings(body)
  if kind == "truncated":
    return with_checksum(body[:int(rng.integers(len(body)))])
  if kind == "bit flips":
    data = bytearray(body)
    for _ in range(int(rng.integers(1, 4))):
      position = int(rng.integers(container.HEADER_SIZE, len(data)))
      data[position] ^= 1 << int(rng.integers(8))
    return with_checksum(bytes(data))
  if kind == "zeroed":
    return _repack(header, *((bytes(len(z)), y) if rng.random() < .5 else
                             (z, bytes(len(y)))))
  if kind == "padded":
    padding = rng.bytes(int(rng.integers(1, 64)))
    if rng.random() < .5:  # Lengths left as they were.
      return with_checksum(body + padding)
    return _repack(header, z, y + padding)
  if kind == "header field":
    field = list(FIELDS)[int(rng.integers(len(FIELDS)))]
    width = FIELDS[field][1]
    return with_checksum(_set(body, field, int(rng.integers(256**width))))
  if kind == "z/y swap":
    return _repack(header, y, z)
  if kind == "short y":
    return _repack(header, z, y[:int(rng.integers(len(y)))])
  if kind == "splice":
    other = streams[int(rng.integers(len(streams)))]
    return (stream[:int(rng.integers(len(stream)))] +
            other[int(rng.integers(len(other))):])
  if kind == "random":
    return rng.bytes(int(rng.integers(0, 300)))
  if kind == "well-formed":
    return container.pack(
        model_id, int(rng.integers(3)), int(rng.integers(-8, 8)),
        float(rng.integers(0, 3)), int(rng.integers(1, 200)),
        int(rng.integers(1, 200)), rng.bytes(int(rng.integers(0, 60))),
        rng.bytes(int(rng.integers(0, 400)))).numpy()
  raise ValueError(f"unknown kind {kind!r}")


def cases(streams, seed, model_id):
  """An endless sequence of (kind, stream), the kinds in turn."""
  rng = np.random.default_rng(seed)
  while True:
    for kind in KINDS:
      yield kind, mutate(kind, streams, rng, model_id)


def check(decode, data):
  """Runs decode(bytes) -> uint8 image; returns "image" or "error" (an
  InvalidArgumentError). Raises AssertionError for an image of a size other
  than the header's; other exceptions propagate (a decoder must not raise
  them). A stream whose fields were changed under a right checksum may
  decode to another picture: only authentication could tell."""
  try:
    image = np.asarray(decode(data))
  except tf.errors.InvalidArgumentError:
    return "error"
  size = container.image_size(data)
  assert size is not None and image.shape == (*size, 3), (
      f"decoded to {image.shape}, the header says {size}")
  assert image.dtype == np.uint8, image.dtype
  return "image"
