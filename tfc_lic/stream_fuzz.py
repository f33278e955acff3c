"""Hostile streams for fuzzing a decoder (#55): mutations of real streams
that keep the checksum right, so that they reach the entropy decoder.

Mutations: truncations, bit flips, zeroed and padded bodies, each header
field set to a random value, z and a tile's y string swapped, a tile's y
string cut short with the lengths fixed up, tiles' strings reordered; plus
splices of two streams and random bytes (checksum left wrong), and
well-formed headers around random strings. `check` runs a
decoder on one case and says what happened; tests/test_fuzz.py drives it.
"""

import numpy as np
import tensorflow as tf

from tfc_lic import container
from tfc_lic import tiling

# (offset, width) of each header field after the magic (container.py); "y
# length" is the first tile's.
FIELDS = {"version": (4, 1), "model id": (5, 4), "quantizer": (9, 1),
          "step index": (10, 1), "rate": (11, 2), "height": (13, 2),
          "width": (15, 2), "z length": (17, 4), "y length": (21, 4)}
KINDS = ("truncated", "bit flips", "zeroed", "padded", "header field",
         "z/y swap", "short y", "tile order", "splice", "random",
         "well-formed")


def with_checksum(body):
  """A container body (everything before the checksum) with its checksum."""
  digest = tf.fingerprint([body]).numpy()[0, :container.CHECKSUM_SIZE]
  return body + bytes(digest.astype(np.uint8))


def _set(body, field, value):
  offset, width = FIELDS[field]
  return (body[:offset] + int(value % 256**width).to_bytes(width, "big")
          + body[offset + width:])


def _get(body, field):
  offset, width = FIELDS[field]
  return int.from_bytes(body[offset:offset + width], "big")


def strings(body):
  """(fixed header, z string, [y string of each tile]) of a container body."""
  tiles = int(tiling.Grid(_get(body, "height"), _get(body, "width")).count)
  offset, _ = FIELDS["z length"]
  lengths = [int.from_bytes(body[i:i + container.LENGTH_SIZE], "big")
             for i in range(offset, container.header_size(tiles),
                            container.LENGTH_SIZE)]
  out, position = [], container.header_size(tiles)
  for length in lengths:
    out.append(body[position:position + length])
    position += length
  return body[:offset], out[0], out[1:]


def repack(header, z, ys):
  """A container of a fixed header and strings, lengths and checksum made
  right (the header's tile count may not be the image's)."""
  lengths = b"".join(len(s).to_bytes(container.LENGTH_SIZE, "big")
                     for s in [z] + ys)
  return with_checksum(header + lengths + z + b"".join(ys))


def mutate(kind, streams, rng, model_id):
  """One case of `kind` from real `streams` (bytes)."""
  stream = streams[int(rng.integers(len(streams)))]
  body = stream[:-container.CHECKSUM_SIZE]
  header, z, ys = strings(body)
  tile = int(rng.integers(len(ys)))
  with_tile = lambda y: ys[:tile] + [y] + ys[tile + 1:]
  if kind == "truncated":
    return with_checksum(body[:int(rng.integers(len(body)))])
  if kind == "bit flips":
    data = bytearray(body)
    for _ in range(int(rng.integers(1, 4))):
      position = int(rng.integers(container.FIXED_HEADER_SIZE, len(data)))
      data[position] ^= 1 << int(rng.integers(8))
    return with_checksum(bytes(data))
  if kind == "zeroed":
    if rng.random() < .5:
      return repack(header, bytes(len(z)), ys)
    return repack(header, z, with_tile(bytes(len(ys[tile]))))
  if kind == "padded":
    padding = rng.bytes(int(rng.integers(1, 64)))
    if rng.random() < .5:  # Lengths left as they were.
      return with_checksum(body + padding)
    return repack(header, z, with_tile(ys[tile] + padding))
  if kind == "header field":
    field = list(FIELDS)[int(rng.integers(len(FIELDS)))]
    width = FIELDS[field][1]
    return with_checksum(_set(body, field, int(rng.integers(256**width))))
  if kind == "z/y swap":
    return repack(header, ys[tile], with_tile(z))
  if kind == "short y":
    return repack(header, z, with_tile(ys[tile][:int(rng.integers(
        len(ys[tile])))]))
  if kind == "tile order":  # Single-tile streams: z and y swapped instead.
    if len(ys) == 1:
      return repack(header, ys[0], [z])
    return repack(header, z, [ys[i] for i in rng.permutation(len(ys))])
  if kind == "splice":
    other = streams[int(rng.integers(len(streams)))]
    return (stream[:int(rng.integers(len(stream)))] +
            other[int(rng.integers(len(other))):])
  if kind == "random":
    return rng.bytes(int(rng.integers(0, 300)))
  if kind == "well-formed":
    height, width = (int(rng.integers(1, 1200)) for _ in range(2))
    tiles = int(tiling.Grid(height, width).count)
    return container.pack(
        model_id, int(rng.integers(3)), int(rng.integers(-8, 8)),
        float(rng.integers(0, 3)), height, width,
        rng.bytes(int(rng.integers(0, 60))),
        [rng.bytes(int(rng.integers(0, 400))) for _ in range(tiles)]).numpy()
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
