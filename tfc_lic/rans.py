"""Interleaved rANS in core TensorFlow ops: bit-exact, bounded, no custom ops.

The entropy coder that replaces tfc's range-coding ops (issue #59): `lanes`
rANS states (Duda 2013) code independent symbol sequences side by side, one
loop step coding one symbol of every lane, into one stream of 16-bit words
laid out as the decoder reads them, by step and then by lane (Giesen,
"Interleaved entropy coders", 2014). Probabilities are in units of 2**-16
and states live in [2**32, 2**48) in int64, so a symbol moves one word at
most, and truncating a state to a multiple of a symbol's frequency costs
~2**-16 bits a symbol (a state of [2**16, 2**32) lost ~0.3 %); a final
state is STATE_BITS long. All arithmetic is on integers: the same on every
machine, with or without XLA. The decoder runs as many steps as its caller says and reads
words at positions it computes, clamped to the stream: a corrupt stream
decodes to garbage flagged as not `intact`, never to a hang. (XLA drops
assertions, so the flag is returned for the caller to check outside the
compiled loop: `check_intact`.)
"""

import tensorflow as tf

PRECISION = 16
WORD_BITS = 16
STATE_BITS = 48
STATE_LOW = 1 << (STATE_BITS - WORD_BITS)
_MASK = (1 << PRECISION) - 1
_WORD_MASK = (1 << WORD_BITS) - 1


def encode(starts, freqs, active, states=None):
  """(words, final states) of symbols given as [steps, lanes] tensors.

  Each symbol is its cumulative frequency `start` and `freq` (in 2**-16,
  freq >= 1), coded where `active`. words: int64 [n], in the order the
  decoder reads them; states: int64 [lanes], which the decoder starts from.
  `states`: where to start (default STATE_LOW); the final states of the
  symbols that follow these, to code a sequence in parts, last part first.
  """
  starts, freqs = (tf.cast(t, tf.int64) for t in (starts, freqs))
  active = tf.cast(active, tf.bool)
  initial = (tf.fill(tf.shape(starts)[1:], tf.constant(STATE_LOW, tf.int64))
             if states is None else tf.cast(states, tf.int64))

  def step(carry, elems):
    state = carry[0]
    start, freq, live = elems
    emit = live & (state >= tf.bitwise.left_shift(
        freq, STATE_BITS - PRECISION))
    word = tf.bitwise.bitwise_and(state, _WORD_MASK)
    state = tf.where(emit, tf.bitwise.right_shift(state, WORD_BITS), state)
    coded = (tf.bitwise.left_shift(state // freq, PRECISION)
             + state % freq + start)
    return tf.where(live, coded, state), word, emit

  # rANS is last in, first out: the encoder runs the steps backwards.
  reverse = lambda t: tf.reverse(t, [0])
  states, words, emitted = tf.scan(
      step, (reverse(starts), reverse(tf.maximum(freqs, 1)), reverse(active)),
      initializer=(initial, initial, tf.zeros_like(initial, tf.bool)))
  final = tf.concat([initial[None], states], 0)[-1]
  return tf.boolean_mask(reverse(words), reverse(emitted)), final


def decode_slot(state):
  """Each lane's slot: the cumulative frequency its next symbol covers."""
  return tf.bitwise.bitwise_and(state, _MASK)


def find_symbol(cdfs, rows, slot):
  """The symbol s with cdfs[row, s] <= slot < cdfs[row, s + 1], per lane.

  cdfs: int64 [tables, length], each row 0, ..., 2**16 padded with 2**16. A
  binary search of a fixed ceil(log2(length)) gathers: no lookup table of
  2**16 slots per row, and the same steps for every lane.
  """
  length = tf.shape(cdfs, out_type=tf.int64)[1]
  # A row holds at most 2**16 + 2 distinct values: 17 halvings always do.
  depth = (cdfs.shape[1] - 1).bit_length() if cdfs.shape[1] else 17
  flat = tf.reshape(cdfs, [-1])
  base = tf.cast(rows, tf.int64) * length
  low = tf.zeros_like(slot)
  high = tf.fill(tf.shape(slot), length - 1)
  for _ in range(max(1, depth)):
    middle = (low + high) // 2
    below = tf.gather(flat, base + middle) <= slot
    low = tf.where(below, middle, low)
    high = tf.where(below, high, middle)
  start = tf.gather(flat, base + low)
  return low, start, tf.gather(flat, base + low + 1) - start


def decode_advance(state, start, freq, live, words, position):
  """Pops the decoded symbols (start, freq) off the live lanes and refills
  their states from `words` (int64) at `position`: (state, position)."""
  start, freq = tf.cast(start, tf.int64), tf.cast(freq, tf.int64)
  popped = (freq * tf.bitwise.right_shift(state, PRECISION)
            + decode_slot(state) - start)
  state = tf.where(live, popped, state)
  need = live & (state < STATE_LOW)
  need_count = tf.cast(need, tf.int64)
  index = position + tf.cumsum(need_count, exclusive=True)
  padded = tf.concat([words, tf.zeros([1], tf.int64)], 0)
  word = tf.gather(padded, tf.minimum(index, tf.size(words, tf.int64)))
  state = tf.where(need, tf.bitwise.left_shift(state, WORD_BITS) + word,
                   state)
  return state, position + tf.reduce_sum(need_count)


def decode(words, states, cdfs, rows, active):
  """Inverse of `encode` for symbols coded with table rows known up front:
  rows, active [steps, lanes] -> (symbols int64 [steps, lanes], 0 where not
  active; `intact`: whether the words decoded exactly)."""
  steps = tf.shape(rows)[0]

  def body(i, state, position, decoded):
    live = tf.gather(active, i)
    symbol, start, freq = find_symbol(cdfs, tf.gather(rows, i),
                                      decode_slot(state))
    state, position = decode_advance(state, start, freq, live, words,
                                     position)
    return i + 1, state, position, decoded.write(
        i, tf.where(live, symbol, tf.zeros_like(symbol)))

  _, state, position, decoded = tf.while_loop(
      lambda i, *_: i < steps, body,
      (0, states, tf.constant(0, tf.int64),
       tf.TensorArray(tf.int64, steps, element_shape=states.shape)))
  return tf.reshape(decoded.stack(), tf.shape(rows)), intact(
      state, position, words)


def intact(state, position, words):
  """Whether every lane is back at its start state and every word was read,
  as they are after an intact stream."""
  return tf.reduce_all(state == STATE_LOW) & (
      position == tf.size(words, tf.int64))


def check_intact(flag, values):
  """`values`, once `flag` (from `intact`) holds; else an InvalidArgumentError
  "corrupt stream". Call it outside XLA, which drops assertions."""
  with tf.control_dependencies([tf.debugging.Assert(
      flag, ["corrupt stream: the entropy-coded words do not decode "
             "exactly"])]):
    return tf.identity(values)
