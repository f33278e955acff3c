"""The Viterbi search is optimal over its candidate sets (brute force check),
with and without per-channel distortion weights."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic.latent_codecs import tcq


def _costs(codec, u, base, weights=None):
  """Per latent and quantizer: candidate indexes and their costs J terms
  (the distortion of step t weighted by weights[t])."""
  k = tcq._candidates(tf.constant(u, tf.float32)).numpy()   # [T, n, 2, 3]
  q = np.array([0, 1])[:, None]
  level = np.where(q == 0, 2 * k, 2 * k - np.sign(k))
  table = codec.tables.table_index(
      tf.constant(tcq.BANKS)[:, None], tf.constant(base)[..., None, None], 0)
  bits = codec.tables.bits(table, tf.constant(k)).numpy()
  weights = np.ones(u.shape[0]) if weights is None else weights
  return k, weights[:, None, None, None] * (
      u[..., None, None] - level) ** 2 + codec.lmbda * bits


def _brute_force(codec, k, cost, trellis):
  """Cheapest J over every path of candidate choices for one trellis."""
  transitions = tcq.TRANSITIONS[codec.num_states]
  quantizer = tcq.STATE_QUANTIZER[codec.num_states]
  best = np.inf
  steps = k.shape[0]
  for choice in itertools.product(range(3), repeat=steps):
    state, total = 0, 0.
    for t, c in enumerate(choice):
      q = quantizer[state]
      total += cost[t, trellis, q, c]
      state = transitions[state][k[t, trellis, q, c] & 1]
    best = min(best, total)
  return best


def _residuals(seed, steps=7, trellises=6):
  """Random residuals u [steps, trellises] of several scales, table rows."""
  rng = np.random.default_rng(seed)
  u = (rng.normal(size=(steps, trellises)) * rng.uniform(0.3, 4, trellises)
       ).astype(np.float32)
  return u, rng.integers(0, 60, size=(steps, trellises)).astype(np.int32)


@pytest.mark.parametrize("states, weighted", [(4, False), (8, False),
                                              (4, True), (8, True)])
def test_viterbi_matches_brute_force(tiny_codec, states, weighted):
  codec = tcq.TrellisCodedQuantizer(tiny_codec.tables, num_states=states)
  u, base = _residuals(states)
  steps, trellises = u.shape
  weights = np.random.default_rng(1).uniform(0.2, 5, steps).astype(
      np.float32) if weighted else None
  k_opt, q_opt = codec.search(tf.constant(u), tf.constant(base), weights)
  k_opt, q_opt = k_opt.numpy(), q_opt.numpy()
  k, cost = _costs(codec, u, base, weights)
  for n in range(trellises):
    # J of the Viterbi path, recomputed from scratch.
    state, total = 0, 0.
    for t in range(steps):
      q = tcq.STATE_QUANTIZER[states][state]
      assert q == q_opt[t, n]
      match = np.nonzero(k[t, n, q] == k_opt[t, n])[0]
      total += cost[t, n, q, match[0]]
      state = tcq.TRANSITIONS[states][state][k_opt[t, n] & 1]
    np.testing.assert_allclose(total, _brute_force(codec, k, cost, n),
                               rtol=1e-5)


@pytest.mark.parametrize("states", [4, 8])
def test_weights_change_the_path_and_equal_weights_do_not(tiny_codec, states):
  """Equal weights of 1 leave the search as it was; weights c with λ·c keep
  the path (only ratios matter; c = 4 scales floats exactly); unequal
  weights move it."""
  codec = tcq.TrellisCodedQuantizer(tiny_codec.tables, num_states=states)
  u, base = (tf.constant(t) for t in _residuals(10 + states, 12, 200))
  search = lambda c, *w: [t.numpy() for t in c.search(u, base, *w)]
  plain = search(codec)
  ones = tf.ones([u.shape[0]])
  np.testing.assert_array_equal(search(codec, ones), plain)
  scaled = tcq.TrellisCodedQuantizer(codec.tables, num_states=states,
                                     lmbda=4 * codec.lmbda)
  np.testing.assert_array_equal(search(scaled, 4 * ones), plain)
  weights = tf.constant(np.linspace(0.1, 10, u.shape[0]), tf.float32)
  k = search(codec, weights)[0]
  assert (k != plain[0]).any()
  # A heavier channel costs the picture more: its error does not grow.
  error = lambda k_, q_: np.abs(u.numpy() - np.where(
      q_ == 0, 2 * k_, 2 * k_ - np.sign(k_)))
  moved, kept = error(*search(codec, weights)), error(*plain)
  assert moved[-3:].mean() <= kept[-3:].mean()
  assert moved[:3].mean() >= kept[:3].mean()
