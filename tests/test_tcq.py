"""The Viterbi search is optimal over its candidate sets (brute force check)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfc_lic.latent_codecs import tcq


def _costs(codec, u, base):
  """Per latent and quantizer: candidate indexes and their costs J terms."""
  k = tcq._candidates(tf.constant(u, tf.float32)).numpy()   # [T, n, 2, 3]
  q = np.array([0, 1])[:, None]
  level = np.where(q == 0, 2 * k, 2 * k - np.sign(k))
  table = codec.tables.table_index(
      tf.constant(tcq.BANKS)[:, None], tf.constant(base)[..., None, None], 0)
  bits = codec.tables.bits(table, tf.constant(k)).numpy()
  return k, (u[..., None, None] - level) ** 2 + codec.lmbda * bits


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


@pytest.mark.parametrize("states", [4, 8])
def test_viterbi_matches_brute_force(tiny_codec, states):
  codec = tcq.TrellisCodedQuantizer(tiny_codec.tables, num_states=states)
  rng = np.random.default_rng(states)
  steps, trellises = 7, 6
  u = (rng.normal(size=(steps, trellises)) * rng.uniform(0.3, 4, trellises)
       ).astype(np.float32)
  base = rng.integers(0, 60, size=(steps, trellises)).astype(np.int32)
  k_opt, q_opt = codec.search(tf.constant(u), tf.constant(base))
  k_opt, q_opt = k_opt.numpy(), q_opt.numpy()
  k, cost = _costs(codec, u, base)
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
