"""Integer indexes <-> byte strings with the codec's tables, by rANS.

The codec's entropy coder in core TensorFlow ops (rans.py), with what tfc's
range coder did around it:
- Tables are rows of quantized cdfs in tfc's layout (entropy_tables for y,
  the factorized prior's for z): row t codes index k as symbol
  k - offsets[t] when that is below sizes[t], else as the row's overflow
  symbol (number sizes[t]) and an escape: the excess e >= 1 beyond the row,
  as its sign and bit length b + 1 from a fixed table (probability
  2**-(b + 2)), then e's b low bits raw: 2b + 2 bits, and never more than
  two rANS steps, since indexes are clamped to |k| <= MAX_INDEX.
- TCQ's tables depend on the trellis state, which the decoding loop tracks:
  symbol i decodes with row base_rows[i] + state_rows[s], s the state of
  trellis i % trellises, which then moves on with the parity of k.
- A string is the final rANS state (6 bytes) and the 16-bit words, big-endian.
The loops are compiled with XLA (a graph-mode loop step costs ~100 µs, a
compiled one ~0.1 µs); they return a flag that `finish` checks outside XLA,
which drops assertions. A decode runs exactly as many steps as it is asked
for, so a corrupt string gives an error, never a hang. XLA compiles once per
shape of its inputs (~2 s), so the loops see them padded to a power of two
(`bucket`): a server compiles a few sizes, not one per image size.
"""

import numpy as np
import tensorflow as tf

from tfc_lic import container
from tfc_lic import rans

MAX_INDEX = 2**15 - 1
# Escape symbol t = 2b + (e < 0 side), b = bit length of the excess - 1.
_ESCAPE_FREQ = np.repeat([2**(14 - b) for b in range(14)] + [1, 1], 2)
ESCAPE_CDF = np.concatenate([[0], np.cumsum(_ESCAPE_FREQ)])
assert ESCAPE_CDF[-1] == 2**rans.PRECISION


def _bit_length_minus_one(e):
  """floor(log2 e) of int tensors 1 <= e < 2**16, in integer ops."""
  return tf.add_n([tf.cast(e >= 2**j, tf.int32) for j in range(1, 16)])


def escape_bits(excess):
  """Bits an escape of excess `excess` (int tensor, >= 1) costs."""
  b = _bit_length_minus_one(excess)
  freq = tf.gather(tf.constant(_ESCAPE_FREQ[::2], tf.float32), b)
  return rans.PRECISION - tf.math.log(freq) / np.log(2.) + tf.cast(
      b, tf.float32)


def bucket(n):
  """n rounded up to a power of two, at least 2**12 (int32 tensors)."""
  return tf.bitwise.left_shift(1, 12 + tf.add_n(
      [tf.cast(n > 2**j, tf.int32) for j in range(12, 31)]))


def _padded(x, size):
  return tf.pad(x, [[0, size - tf.size(x)]])


def no_trellis(steps):
  """(transitions, state_rows, trellises) for `steps` indexes coded
  independently: one trellis in one state along all of them."""
  return tf.zeros([1, 2], tf.int32), tf.zeros([1], tf.int32), steps


# Indexes per call of a compiled loop, so that its buffers stay bounded
# however long the string (encoding takes ~130 bytes an index: the z of a
# 100-Mpx image, 3.1M indexes, took 0.4 GB at once) and it compiles for one
# size whatever the image's. Parts are encoded last first, each from the
# state the next one ended in, so the words are those of a single pass.
PART = 2**18


def _parts(count):
  """The number of parts of `count` indexes, at least one."""
  return tf.maximum(1, -(-count // PART))


@tf.function(jit_compile=True)
def _encode_words(starts, freqs, active, state):
  return rans.encode(starts[:, None], freqs[:, None], active[:, None], state)


def _encode(starts, freqs, state):
  """rans.encode of one lane from `state`, its inputs padded to a bucket."""
  size = bucket(tf.size(starts))
  return _encode_words(_padded(starts, size), _padded(freqs, size),
                       _padded(tf.ones_like(starts, tf.bool), size), state)


@tf.function(jit_compile=True)
def _decode_loop(words, state, position, cdfs, offsets, sizes, base_rows,
                 steps, transitions, state_rows, trellises, slots):
  """Decodes the first `steps` of base_rows, trellis by trellis along the
  channels: (state, position, k, rows), shaped like base_rows. `slots` is
  a zero vector of at least `trellises` entries (padded, like the rest).

  The outer loop runs over channels, the inner over the trellises: each
  channel reads its trellis states from the last channel's (a tensor the
  inner loop only reads) and writes the next ones to a fresh array (only
  written), so XLA updates both in place; read and written in one loop,
  one buffer was copied every step. Gathers, not [] indexing: with strided
  slices XLA took the words for compile-time constants and compiled the
  loop again for every string.
  """
  cdfs = tf.cast(cdfs, tf.int64)
  escape_cdf = tf.constant(ESCAPE_CDF[None], tf.int64)
  live = tf.constant([True])
  flat_transitions = tf.reshape(transitions, [-1])
  array = lambda size: tf.TensorArray(tf.int32, size, element_shape=[])

  def symbol_body(p, offset, state, position, states, next_states, ks, rows):
    i = offset + p
    s = tf.gather(states, p)
    row = tf.gather(base_rows, i) + tf.gather(state_rows, s)
    symbol, start, freq = rans.find_symbol(cdfs, row[None],
                                           rans.decode_slot(state))
    state, position = rans.decode_advance(state, start, freq, live, words,
                                          position)
    size = tf.cast(tf.gather(sizes, row), tf.int64)
    escaped = symbol >= size
    t, start, freq = rans.find_symbol(escape_cdf, tf.zeros([1], tf.int64),
                                      rans.decode_slot(state))
    state, position = rans.decode_advance(state, start, freq, escaped, words,
                                          position)
    shift = rans.PRECISION - t // 2
    low = tf.bitwise.right_shift(rans.decode_slot(state), shift)
    state, position = rans.decode_advance(
        state, tf.bitwise.left_shift(low, shift),
        tf.bitwise.left_shift(tf.constant(1, tf.int64), shift),
        escaped & (t >= 2), words, position)
    excess = tf.bitwise.left_shift(tf.constant(1, tf.int64), t // 2) + low
    symbol = tf.where(escaped, tf.where(t % 2 == 1, -excess,
                                        size - 1 + excess), symbol)
    k = tf.cast(symbol[0], tf.int32) + tf.gather(offsets, row)
    next_states = next_states.write(p, tf.gather(
        flat_transitions, 2 * s + tf.bitwise.bitwise_and(k, 1)))
    return (p + 1, offset, state, position, states, next_states,
            ks.write(i, k), rows.write(i, row))

  def channel_body(offset, state, position, states, ks, rows):
    count = tf.minimum(trellises, steps - offset)
    _, _, state, position, _, next_states, ks, rows = tf.while_loop(
        lambda p, *_: p < count, symbol_body,
        (0, offset, state, position, states, array(tf.size(slots)), ks,
         rows))
    return (offset + trellises, state, position,
            next_states.stack(), ks, rows)

  _, state, position, _, ks, rows = tf.while_loop(
      lambda offset, *_: offset < steps, channel_body,
      (0, state, position, slots, array(tf.size(base_rows)),
       array(tf.size(base_rows))))
  return state, position, ks.stack(), rows.stack()


class IndexCoder(tf.Module):
  """Codes int32 indexes with rows of quantized cdfs (one rANS lane)."""

  def __init__(self, cdfs, offsets, sizes, name=None):
    """cdfs [T, L]: row t is 0, ..., 2**16 over sizes[t] + 1 symbols (the
    last the overflow), padded with 2**16; offsets, sizes [T]."""
    super().__init__(name=name)
    cdfs = np.asarray(cdfs, np.int64)
    sizes = np.asarray(sizes, np.int64)
    freqs = np.diff(cdfs, axis=1)
    if (cdfs[:, 0].any() or (cdfs[:, -1] != 2**rans.PRECISION).any() or
        (freqs[np.arange(cdfs.shape[1] - 1) <= sizes[:, None]] < 1).any()):
      raise ValueError("every table must give each of its symbols and its "
                       "overflow a frequency of at least 1 in 2**16")
    self.cdfs = tf.Variable(cdfs.astype(np.int32), trainable=False,
                            name="cdfs")
    self.offsets = tf.Variable(np.asarray(offsets, np.int32), trainable=False,
                               name="offsets")
    self.sizes = tf.Variable(sizes.astype(np.int32), trainable=False,
                             name="sizes")

  @classmethod
  def from_lookup(cls, lookup, offsets, name=None):
    """From entropy_tables' layout: rows [-precision, cdf...] padded with
    their last value; row t codes -offsets[t] around zero."""
    lookup, offsets = np.asarray(lookup), np.asarray(offsets)
    return cls(lookup[:, 1:], offsets, 1 - 2 * offsets, name=name)

  @classmethod
  def from_flat_cdf(cls, cdf, cdf_offset, name=None):
    """From a tfc entropy model's `cdf` (rows [-precision, cdf...] of their
    own lengths, concatenated; precision <= 16) and `cdf_offset`."""
    cdf = np.asarray(cdf, np.int64)
    starts = np.flatnonzero(cdf < 0)
    rows = np.split(cdf, starts[1:])
    length = max(len(r) for r in rows) - 1
    cdfs = np.stack([np.pad(r[1:] << (rans.PRECISION + r[0]),
                            (0, length - len(r) + 1),
                            constant_values=2**rans.PRECISION) for r in rows])
    sizes = np.array([len(r) - 3 for r in rows])
    return cls(cdfs, cdf_offset, sizes, name=name)

  def encode(self, k, rows):
    """A string coding indexes k [N] with table rows [N] (int32), in parts
    of PART indexes."""
    k = tf.clip_by_value(tf.reshape(k, [-1]), -MAX_INDEX, MAX_INDEX)
    rows = tf.reshape(rows, [-1])
    parts = _parts(tf.size(k))

    def body(part, state, words):
      start = part * PART
      part_words, state = self._encode_part(
          k[start:start + PART], rows[start:start + PART], state)
      return part - 1, state, words.write(part, part_words)

    _, state, words = tf.while_loop(
        lambda part, *_: part >= 0, body,
        (parts - 1, tf.constant([rans.STATE_LOW], tf.int64),
         tf.TensorArray(tf.int64, parts, infer_shape=False,
                        element_shape=[None])), parallel_iterations=1)
    words = words.concat()
    return container.byte_string(tf.concat([
        tf.bitwise.right_shift(state, tf.range(
            rans.STATE_BITS - 8, -1, -8, tf.int64)) % 256,
        tf.reshape(tf.stack([tf.bitwise.right_shift(words, 8),
                             words % 256], 1), [-1])], 0))

  def _encode_part(self, k, rows, state):
    """(words, state): rANS of indexes k with table rows, from `state`."""
    size = tf.gather(self.sizes, rows)
    symbol = k - tf.gather(self.offsets, rows)
    inside = (symbol >= 0) & (symbol < size)
    flat = tf.reshape(tf.cast(self.cdfs, tf.int64), [-1])
    main = rows * tf.shape(self.cdfs)[1] + tf.where(inside, symbol, size)
    main_start = tf.gather(flat, main)
    negative = symbol < 0
    excess = tf.where(inside, 1, tf.where(negative, -symbol,
                                          symbol - size + 1))
    b = _bit_length_minus_one(excess)
    t = 2 * b + tf.cast(negative, tf.int32)
    escape = tf.constant(ESCAPE_CDF, tf.int64)
    shift = tf.cast(rans.PRECISION - b, tf.int64)
    low = tf.cast(excess, tf.int64) - tf.bitwise.left_shift(
        tf.constant(1, tf.int64), tf.cast(b, tf.int64))
    starts = tf.stack([main_start, tf.gather(escape, t),
                       tf.bitwise.left_shift(low, shift)], 1)
    freqs = tf.stack([tf.gather(flat, main + 1) - main_start,
                      tf.gather(escape, t + 1) - tf.gather(escape, t),
                      tf.bitwise.left_shift(tf.constant(1, tf.int64), shift)],
                     1)
    active = tf.stack([tf.ones_like(inside), ~inside, ~inside & (b > 0)], 1)
    return _encode(tf.boolean_mask(starts, active),
                   tf.boolean_mask(freqs, active), state)

  def start(self, string):
    """A cursor (words, state, position) at the start of a string."""
    length = tf.strings.length(string)
    state_words = rans.STATE_BITS // rans.WORD_BITS
    with tf.control_dependencies([tf.debugging.Assert(
        (length >= 2 * state_words) & (length % 2 == 0),
        ["corrupt stream: an entropy-coded string of a wrong length"])]):
      data = tf.io.decode_raw(string, tf.uint16, little_endian=False)
    data = tf.cast(data, tf.int64)
    state = tf.reduce_sum(tf.bitwise.left_shift(data[:state_words], tf.range(
        rans.STATE_BITS - rans.WORD_BITS, -1, -rans.WORD_BITS, tf.int64)))
    return data[state_words:], state[None], tf.constant(0, tf.int64)

  def decode(self, cursor, base_rows, trellis=None):
    """Decodes len(base_rows) indexes at the cursor: (cursor, k, rows).

    `trellis` (transitions [S, 2], state_rows [S], trellises): the row of
    each index is base_rows + state_rows of its trellis's state (see the
    module docstring); none: base_rows are the rows, decoded in parts of
    PART indexes, as `encode` codes them."""
    words, state, position = cursor
    base_rows = tf.reshape(base_rows, [-1])
    # Reads past the words' end give zeros, as padding does.
    padded = _padded(words, bucket(tf.size(words)))
    if trellis is not None:
      state, position, k, rows = self._decode(padded, state, position,
                                              base_rows, trellis)
      return (words, state, position), k, rows
    parts = _parts(tf.size(base_rows))

    def body(part, state, position, ks, rows):
      start = part * PART
      part_rows = base_rows[start:start + PART]
      state, position, k, r = self._decode(padded, state, position,
                                           part_rows,
                                           no_trellis(tf.size(part_rows)))
      return part + 1, state, position, ks.write(part, k), rows.write(part, r)

    array = lambda: tf.TensorArray(tf.int32, parts, infer_shape=False,
                                   element_shape=[None])
    _, state, position, ks, rows = tf.while_loop(
        lambda part, *_: part < parts, body,
        (0, state, position, array(), array()), parallel_iterations=1)
    return (words, state, position), ks.concat(), rows.concat()

  def _decode(self, words, state, position, base_rows, trellis):
    """(state, position, k, rows): base_rows decoded from padded words."""
    steps = tf.size(base_rows)
    transitions, state_rows, trellises = trellis
    # Tables as tensors: the loop is one tf.function for every coder, and a
    # trace taking variables would hold on to a deleted coder's.
    state, position, k, rows = _decode_loop(
        words, state, position,
        *(tf.convert_to_tensor(v) for v in (self.cdfs, self.offsets,
                                            self.sizes)),
        _padded(base_rows, bucket(steps)), steps,
        transitions, state_rows, trellises,
        tf.zeros([bucket(trellises)], tf.int32))
    return state, position, k[:steps], rows[:steps]

  def finish(self, cursor, *tensors):
    """`tensors`, once the cursor has decoded its string exactly."""
    words, state, position = cursor
    flag = rans.intact(state, position, words)
    return tuple(rans.check_intact(flag, t) for t in tensors)
