"""The core-op rANS coder: exact round trips for any lane and step count, a
size within a bound of the ideal, corruption caught, the same words with and
without XLA."""

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic import rans

SYMBOLS = 40


def _tables(seed, count=7):
  """Quantized cdfs [count, SYMBOLS + 2] (padded with 2**16) of random pmfs,
  every symbol at least 1 / 2**16."""
  rng = np.random.default_rng(seed)
  pmf = rng.dirichlet(np.full(SYMBOLS, 0.2), size=count)
  freq = 1 + np.floor(pmf * (2**16 - SYMBOLS)).astype(np.int64)
  freq[np.arange(count), pmf.argmax(1)] += 2**16 - freq.sum(1)
  cdf = np.concatenate([np.zeros((count, 1), np.int64), np.cumsum(freq, 1),
                        np.full((count, 1), 2**16)], 1)
  return cdf


def _symbols(cdf, steps, lanes, seed):
  rng = np.random.default_rng(seed + 1)
  rows = rng.integers(0, len(cdf), size=(steps, lanes))
  freq = np.diff(cdf, axis=1)
  symbols = np.array([[rng.choice(SYMBOLS + 1, p=freq[r] / 2**16)
                       for r in row] for row in rows], np.int64).reshape(
                           steps, lanes)
  active = rng.random((steps, lanes)) < 0.8
  return rows, symbols, active


@tf.function(reduce_retracing=True)
def _decode(words, states, cdfs, rows, active, jit=False):
  decoded, intact = tf.function(rans.decode, jit_compile=jit)(
      words, states, cdfs, rows, active)
  return rans.check_intact(intact, decoded)


def _code(cdf, rows, symbols, active):
  starts = np.take_along_axis(cdf[rows], symbols[..., None], -1)[..., 0]
  freqs = np.take_along_axis(cdf[rows], symbols[..., None] + 1,
                             -1)[..., 0] - starts
  return rans.encode(starts, freqs, active)


@pytest.mark.parametrize("steps, lanes", [(0, 3), (1, 1), (200, 1),
                                          (60, 5), (30, 64)])
def test_round_trip_is_exact_and_near_the_ideal_size(steps, lanes):
  cdf = _tables(steps + lanes)
  rows, symbols, active = _symbols(cdf, steps, lanes, steps)
  words, states = _code(cdf, rows, symbols, active)
  decoded = _decode(words, states, tf.constant(cdf), tf.constant(rows),
                    tf.constant(active)).numpy()
  np.testing.assert_array_equal(decoded[active], symbols[active])
  freq = np.diff(cdf, axis=1)[rows, symbols][active]
  ideal = -np.log2(freq / 2**16).sum()
  coded = 16 * int(tf.size(words)) + rans.STATE_BITS * lanes
  # Each lane's state starts at STATE_LOW and ends flushed: STATE_BITS at most
  # beyond what the symbols cost; words are whole.
  assert ideal - 1 <= coded <= ideal + rans.STATE_BITS * lanes + 16


@pytest.mark.parametrize("jit", [False, True])
def test_corruption_is_caught_not_decoded(jit, lanes=4, steps=80):
  """Also when the loop is compiled with XLA, which drops assertions."""
  cdf = _tables(3)
  rows, symbols, active = _symbols(cdf, steps, lanes, 3)
  words, states = _code(cdf, rows, symbols, active)
  words = words.numpy()
  args = [tf.constant(t) for t in (cdf, rows, active)]
  for bad_words, bad_states in [
      (words[:-1], states), (np.concatenate([words, [7]]), states),
      (np.where(np.arange(len(words)) == len(words) // 2, words ^ 0x5a5a,
                words), states),
      (words, states + 1)]:
    with pytest.raises(tf.errors.InvalidArgumentError, match="corrupt"):
      _decode(tf.constant(bad_words), tf.constant(bad_states), *args, jit=jit)


def test_xla_codes_the_same_words():
  cdf = _tables(5)
  rows, symbols, active = _symbols(cdf, 50, 8, 5)
  starts = np.take_along_axis(cdf[rows], symbols[..., None], -1)[..., 0]
  freqs = np.take_along_axis(cdf[rows], symbols[..., None] + 1,
                             -1)[..., 0] - starts
  plain = rans.encode(starts, freqs, active)
  compiled = tf.function(rans.encode, jit_compile=True)(starts, freqs, active)
  for a, b in zip(plain, compiled):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_round_trip_with_the_codecs_tables():
  """The codec's Gaussian tables (rows up to thousands of symbols, the
  binary search's deepest case), symbols drawn from each row's pmf."""
  from tfc_lic import entropy_tables  # pylint: disable=g-import-not-at-top
  lookup = entropy_tables.EntropyTables.build(96, 0.11).lookup.numpy()
  cdf = lookup[:, 1:].astype(np.int64)
  rng = np.random.default_rng(7)
  rows = rng.integers(0, len(cdf), size=(40, 16))
  freq = np.diff(cdf, axis=1)
  symbols = np.array([[rng.choice(freq.shape[1], p=freq[r] / 2**16)
                       for r in row] for row in rows])
  active = np.ones(rows.shape, bool)
  words, states = _code(cdf, rows, symbols, active)
  decoded = _decode(words, states, tf.constant(cdf), tf.constant(rows),
                    tf.constant(active))
  np.testing.assert_array_equal(decoded.numpy(), symbols)
