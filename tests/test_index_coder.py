"""The codec's index coder: exact round trips (escapes, trellis states), the
size its rate estimate predicts, tfc's side tables, corrupt strings refused."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic import entropy_tables
from tfc_lic import index_coder
from tfc_lic import rans

NUM_SCALES = 32


@pytest.fixture(scope="module")
def tables():
  return entropy_tables.EntropyTables.build(NUM_SCALES, 0.11)


@pytest.fixture(scope="module")
def coder(tables):
  return index_coder.IndexCoder.from_lookup(tables.lookup.numpy(),
                                            tables.offset.numpy())


def _round_trip(coder, k, rows, base=None, trellis=None):
  string = coder.encode(k, rows)
  cursor, decoded, decoded_rows = coder.decode(
      coder.start(string), rows if base is None else base, trellis)
  decoded, decoded_rows = coder.finish(cursor, decoded, decoded_rows)
  return string.numpy(), decoded.numpy(), decoded_rows.numpy()


def test_round_trip_with_escapes_and_the_estimated_size(tables, coder):
  rng = np.random.default_rng(1)
  rows = rng.integers(0, len(tables.offset.numpy()), 3000).astype(np.int32)
  kmax = -tables.offset.numpy()[rows]
  k = rng.integers(-kmax - 3, kmax + 4).astype(np.int32)
  extremes = [index_coder.MAX_INDEX, -index_coder.MAX_INDEX, 2**20, -2**20]
  k[:len(extremes)] = extremes
  string, decoded, decoded_rows = _round_trip(coder, k, rows)
  clipped = np.clip(k, -index_coder.MAX_INDEX, index_coder.MAX_INDEX)
  np.testing.assert_array_equal(decoded, clipped)
  np.testing.assert_array_equal(decoded_rows, rows)
  # The rate the TCQ search prices is the coded rate: within the final
  # state and one word (rANS's own loss is ~2**-16 bits a symbol).
  estimate = float(tf.reduce_sum(tf.cast(tables.bits(rows, clipped),
                                         tf.float64)))
  assert estimate - 1 <= 8 * len(string) <= estimate + rans.STATE_BITS + 16


def test_coding_in_parts_writes_and_reads_the_string_of_one_pass(
    tables, coder, monkeypatch):
  """Parts (encoded last first, each from the next one's final state) make
  the string one pass over all indexes makes, escapes across part borders
  too, and decoding in parts reads it back."""
  rng = np.random.default_rng(3)
  rows = rng.integers(0, len(tables.offset.numpy()), 5000).astype(np.int32)
  k = rng.integers(-40, 41, 5000).astype(np.int32)
  whole = coder.encode(k, rows).numpy()
  monkeypatch.setattr(index_coder, "PART", 777)
  assert coder.encode(k, rows).numpy() == whole
  _, decoded, _ = _round_trip(coder, k, rows)
  np.testing.assert_array_equal(decoded, k)


def test_trellis_states_pick_the_rows(coder):
  """Rows follow a 4-state trellis per position as the decoder tracks it."""
  transitions = np.array([[0, 2], [2, 0], [1, 3], [3, 1]])
  state_rows = np.array([1, 1, 2, 2]) * NUM_SCALES
  rng = np.random.default_rng(2)
  trellises, count = 7, 700
  base = rng.integers(0, NUM_SCALES, count).astype(np.int32)
  k = rng.integers(-3, 4, count).astype(np.int32)
  state, rows = np.zeros(trellises, int), np.zeros(count, np.int32)
  for i in range(count):
    p = i % trellises
    rows[i] = base[i] + state_rows[state[p]]
    state[p] = transitions[state[p], k[i] & 1]
  _, decoded, decoded_rows = _round_trip(coder, k, rows, base, (
      tf.constant(transitions, tf.int32), tf.constant(state_rows, tf.int32),
      tf.constant(trellises)))
  np.testing.assert_array_equal(decoded, k)
  np.testing.assert_array_equal(decoded_rows, rows)


def test_tfc_side_tables_keep_their_probabilities():
  """A 12-bit tfc cdf is scaled to 16 bits, its symbols and overflow kept."""
  flat = np.array([-12, 0, 1000, 4000, 4096, -12, 0, 10, 3000, 4095, 4096])
  coder = index_coder.IndexCoder.from_flat_cdf(flat, [-1, 3])
  np.testing.assert_array_equal(coder.sizes.numpy(), [2, 3])
  np.testing.assert_array_equal(
      coder.cdfs.numpy(), 16 * np.array([[0, 1000, 4000, 4096, 4096],
                                          [0, 10, 3000, 4095, 4096]]))
  k = np.array([-1, 0, 5, 3, 5, 6, -40], np.int32)
  rows = np.array([0, 0, 0, 1, 1, 1, 1], np.int32)
  np.testing.assert_array_equal(_round_trip(coder, k, rows)[1], k)


def test_tables_without_room_for_every_symbol_are_refused():
  with pytest.raises(ValueError, match="frequency"):
    index_coder.IndexCoder([[0, 65536, 65536]], [0], [1])


def test_corrupt_strings_are_refused(tables, coder):
  rng = np.random.default_rng(3)
  rows = rng.integers(0, len(tables.offset.numpy()), 400).astype(np.int32)
  string = coder.encode(rng.integers(-2, 3, 400).astype(np.int32),
                        rows).numpy()
  flipped = bytearray(string)
  flipped[len(string) // 2] ^= 0x5a
  for bad in (string[:-2], string + b"\0\0", bytes(flipped), string[:-1],
              b"", string[:4], string[:6]):
    with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt"):
      _round_trip_string(coder, bad, rows)


def _round_trip_string(coder, string, rows):
  cursor, k, _ = coder.decode(coder.start(tf.constant(string)), rows)
  return coder.finish(cursor, k)
