"""The versioned bitstream container, packed and parsed in TF graph code.

Layout (big-endian), 25 + 4 (tiles - 1) bytes of overhead:

  offset size field
   0     4   magic b"TLIC"
   4     1   format version (3: tiles, rANS strings of index_coder)
   5     4   model id (first 4 bytes of a fingerprint of the model weights)
   9     1   quantizer id (0 USQ, 1 TCQ-4, 2 TCQ-8)
  10     1   step index j (int8): Δ = 2**(j/8)
  11     2   rate index * 256 (uint16): gains of a variable-rate model
  13     2   image height (uint16)
  15     2   image width (uint16)
  17     4   length of the z string (uint32)
  21     4n  length of each tile's y string (uint32; n tiles of tiling.Grid)
  ..     .   z string, then the tiles' y strings in raster order
  -4     4   checksum: first 4 bytes of farmhash64 of everything before it

Graph code so that a SavedModel's compress/decompress signatures read and
write whole files. The lengths must add up to the container's size, so a
truncated or padded body is refused before any decoding. Parse errors raise
tf.errors.InvalidArgumentError with a message naming the problem.
"""

import tensorflow as tf

from tfc_lic import tiling

# The largest image the codec takes (65535 x 4096): the transforms run a
# tile at a time, but the image, its latents and its stream are whole
# (about 7 bytes a pixel beside the model and one tile; bin/benchmark.py
# --what=memory). Both sides check it, so that a crafted header cannot make
# the decoder allocate more.
MAX_PIXELS = 2**28
# No stream is larger: 32 bits a pixel at the largest size is far above
# what any rate of the codec spends.
MAX_STREAM_BYTES = 4 * MAX_PIXELS
# The header's 16-bit size fields.
MAX_SIDE = 65535
# Step indexes j (Δ = 2**(j/8)) the codec takes: Δ from 1/16 to 16. Smaller
# steps would make indexes, and the range coder's work, grow without use.
MIN_DELTA_INDEX, MAX_DELTA_INDEX = -32, 32
MAGIC = b"TLIC"
VERSION = 3
FIXED_HEADER_SIZE = 21  # up to the tiles' lengths
LENGTH_SIZE = 4
CHECKSUM_SIZE = 4



def _byte_table():
  """One single-byte string per value: gathering and joining writes bytes."""
  return tf.constant([bytes([i]) for i in range(256)])


def byte_string(values):
  """One string of the bytes `values` (ints in [0, 256))."""
  return tf.strings.reduce_join(
      tf.gather(_byte_table(), tf.cast(values, tf.int32)))


def _to_bytes(values, widths):
  """Big-endian bytes of non-negative int64 `values` (scalars or vectors),
  `widths` bytes each."""
  out = []
  for value, width in zip(values, widths):
    value = tf.reshape(tf.cast(value, tf.int64), [-1, 1])
    shifts = tf.range(8 * (width - 1), -1, -8, tf.int64)
    out.append(tf.reshape(tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(value, shifts), 255), [-1]))
  return byte_string(tf.concat(out, 0))


def header_size(tiles):
  """Bytes before the strings in a container of `tiles` tiles."""
  return FIXED_HEADER_SIZE + LENGTH_SIZE * tiles


def _from_bytes(data, start, width):
  value = tf.constant(0, tf.int64)
  for i in range(width):
    value = value * 256 + tf.cast(data[start + i], tf.int64)
  return value


def _checksum(string):
  digest = tf.fingerprint([string])[0, :CHECKSUM_SIZE]
  return byte_string(digest)


def pack(model_id, quantizer, delta_index, rate, height, width, z_string,
         y_strings):
  """Returns the container bytes (scalar tf.string); `y_strings` [tiles]."""
  header = _to_bytes(
      [VERSION, model_id, quantizer, tf.math.floormod(delta_index, 256),
       tf.round(tf.cast(rate, tf.float32) * 256.), height, width,
       tf.strings.length(z_string), tf.strings.length(y_strings)],
      [1, 4, 1, 1, 2, 2, 2, 4, LENGTH_SIZE])
  body = tf.strings.join([MAGIC, header, z_string,
                          tf.strings.reduce_join(y_strings)])
  return body + _checksum(body)


def assert_size(height, width, message):
  """An op that fails with `message` unless 1 <= pixels <= MAX_PIXELS and
  each side fits the header."""
  pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
  return tf.debugging.Assert(
      (height >= 1) & (width >= 1) & (height <= MAX_SIDE)
      & (width <= MAX_SIDE) & (pixels <= MAX_PIXELS), [message])


def assert_delta_index(delta_index, message):
  """An op that fails with `message` unless the step index is one the codec
  takes."""
  return tf.debugging.Assert(
      (delta_index >= MIN_DELTA_INDEX) & (delta_index <= MAX_DELTA_INDEX),
      [message])


def image_size(stream):
  """(height, width) a stream's header claims, read in Python before any
  decoding, so that a caller can hold it to a budget; None for bytes that
  are no tfc-lic stream of this version (the decoder says why)."""
  if (len(stream) < header_size(1) + CHECKSUM_SIZE or stream[:4] != MAGIC
      or stream[4] != VERSION):
    return None
  return (int.from_bytes(stream[13:15], "big"),
          int.from_bytes(stream[15:17], "big"))


def size_ok(height, width):
  """Whether an image of this size fits the codec (Python ints)."""
  return (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE
          and height * width <= MAX_PIXELS)


def size_error(height, width):
  """The one-line refusal of an image of this size."""
  return (f"{width}x{height} is outside the codec limit of 1 to "
          f"{MAX_PIXELS / 1e6:.1f} megapixels, {MAX_SIDE} px a side")


def unpack(container, model_id):
  """Parses and validates a container; returns a dict of its fields
  (`y_strings`: one per tile).

  Fails with a one-line message for: too short, wrong magic, unknown version,
  checksum mismatch (corrupt or truncated), another model's stream, an image
  size outside [1, MAX_PIXELS] or a side above MAX_SIDE, a step index
  outside [MIN_DELTA_INDEX, MAX_DELTA_INDEX], string lengths that do not add
  up to the container's size.
  """
  size = tf.strings.length(container)
  assert_ = lambda cond, msg: tf.debugging.Assert(cond, [msg])
  checks = [assert_(size >= header_size(1) + CHECKSUM_SIZE,
                    "not a tfc-lic stream: too short")]
  with tf.control_dependencies(checks):
    checks.append(assert_(
        tf.equal(tf.strings.substr(container, 0, 4), MAGIC),
        "not a tfc-lic stream: bad magic"))
  with tf.control_dependencies(checks):
    data = tf.io.decode_raw(
        tf.strings.substr(container, 0, FIXED_HEADER_SIZE), tf.uint8)
    checks.append(assert_(
        tf.equal(_from_bytes(data, 4, 1), VERSION),
        f"unsupported stream format version (this build reads {VERSION})"))
  with tf.control_dependencies(checks):
    body = tf.strings.substr(container, 0, size - CHECKSUM_SIZE)
    checks.append(assert_(
        tf.equal(tf.strings.substr(container, size - CHECKSUM_SIZE,
                                   CHECKSUM_SIZE), _checksum(body)),
        "corrupt or truncated stream: checksum mismatch"))
  with tf.control_dependencies(checks):
    checks.append(assert_(
        tf.equal(_from_bytes(data, 5, 4), tf.cast(model_id, tf.int64)),
        "stream was made by a different model"))
    height = tf.cast(_from_bytes(data, 13, 2), tf.int32)
    width = tf.cast(_from_bytes(data, 15, 2), tf.int32)
    checks.append(assert_size(
        height, width, "corrupt stream: image size outside the codec limit"))
    delta_index = tf.cast(_from_bytes(data, 10, 1), tf.int32)
    delta_index = tf.where(delta_index > 127, delta_index - 256, delta_index)
    checks.append(assert_delta_index(
        delta_index, "corrupt stream: step index outside the codec's range"))
  with tf.control_dependencies(checks):
    tiles = tiling.Grid(height, width).count
    header = header_size(tiles)
    checks.append(assert_(size >= header + CHECKSUM_SIZE,
                          "corrupt stream: too short for its tiles"))
  with tf.control_dependencies(checks):
    lengths = tf.reshape(tf.cast(tf.io.decode_raw(
        tf.strings.substr(container, FIXED_HEADER_SIZE - LENGTH_SIZE,
                          LENGTH_SIZE * (tiles + 1)), tf.uint8), tf.int64),
                         [-1, LENGTH_SIZE])
    lengths = tf.reduce_sum(lengths * 256**tf.range(
        LENGTH_SIZE - 1, -1, -1, tf.int64), 1)  # z, then each tile's y
    checks.append(assert_(
        tf.reduce_sum(lengths) == tf.cast(size - header - CHECKSUM_SIZE,
                                          tf.int64),
        "corrupt stream: its string lengths do not match its size"))
  with tf.control_dependencies(checks):
    lengths = tf.cast(lengths, tf.int32)
    starts = header + tf.cumsum(lengths, exclusive=True)
    return dict(
        quantizer=tf.cast(_from_bytes(data, 9, 1), tf.int32),
        delta_index=tf.identity(delta_index),
        rate=tf.cast(_from_bytes(data, 11, 2), tf.float32) / 256.,
        height=tf.identity(height),
        width=tf.identity(width),
        z_string=tf.strings.substr(container, starts[0], lengths[0]),
        y_strings=tf.strings.substr(container, starts[1:], lengths[1:]))
