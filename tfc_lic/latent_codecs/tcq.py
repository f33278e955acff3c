"""Entropy-constrained trellis-coded quantization (dependent quantization).

Two scalar quantizers on step Δ (see entropy_tables for their cells):
Q0 reconstructs 2kΔ, Q1 reconstructs (2k - sgn k)Δ. A state machine picks
the quantizer of each latent from the parities of the previous indexes:

  4 states (VVC):  Q = s >> 1,  next = [[0, 2], [2, 0], [1, 3], [3, 1]][s][k&1]
  8 states (ECM-style): Q = s & 1,
                   next = [[0, 2], [5, 7], [1, 3], [6, 4], [2, 0], [4, 6],
                           [3, 1], [7, 5]][s][k&1]

The encoder runs a Viterbi search minimising
J = Σ w_c (y - y_hat)²/Δ² + λ·R, R = -log2 P(k | quantizer, σ) read from the
same range-coding tables the coder uses, so J's rate is the coded rate; w_c
(1 unless given) can weigh channel c's error by what it costs the picture.
Candidates per latent: the two nearest levels of the state's quantizer and
zero.

Scan: one trellis per spatial position, running along the M channels, all
positions in parallel: the sequential loop has M steps (192), each a small
vectorised op over H*W trellises. The decoder follows the same order and
updates every trellis's state from the index it just decoded.
"""

import numpy as np
import tensorflow as tf

from tfc_lic import entropy_tables
from tfc_lic import index_coder
from tfc_lic import scale_grid
from tfc_lic import settings
from tfc_lic.latent_codecs import usq

TRANSITIONS = {
    4: np.array([[0, 2], [2, 0], [1, 3], [3, 1]]),
    8: np.array([[0, 2], [5, 7], [1, 3], [6, 4], [2, 0], [4, 6], [3, 1],
                 [7, 5]]),
}
STATE_QUANTIZER = {
    4: np.array([0, 0, 1, 1]),
    8: np.arange(8) & 1,
}
BANKS = (entropy_tables.QUANTIZERS.index("q0"),
         entropy_tables.QUANTIZERS.index("q1"))


def _predecessors(transitions):
  """For each state, the flat edge ids (2*s + parity) that lead into it."""
  edges = [[] for _ in transitions]
  for s, row in enumerate(transitions):
    for parity, target in enumerate(row):
      edges[target].append(2 * s + parity)
  assert len({len(e) for e in edges}) == 1
  return np.array(edges, np.int32)


def quantizer_levels(q, k):
  """Levels (units of Δ) of indexes k under quantizer ids q (0: Q0, 1: Q1)."""
  return tf.where(q == 0, 2 * k, 2 * k - tf.sign(k))


def _candidates(u):
  """Index candidates [..., 2 quantizers, 3]: nearest two levels and zero."""
  a = tf.floor(u / 2.)
  q0 = tf.stack([a, a + 1., tf.zeros_like(a)], -1)
  mag = tf.abs(u)
  b = tf.where(mag < 1., tf.zeros_like(mag), tf.floor((mag + 1.) / 2.))
  sign = tf.where(u < 0., -1., 1.)
  q1 = tf.stack([sign * b, sign * (b + 1.), tf.zeros_like(b)], -1)
  return tf.cast(tf.stack([q0, q1], -2), tf.int32)


class TrellisCodedQuantizer(usq.LatentCodec):
  """TCQ with a 4- or 8-state trellis, Viterbi-searched on D + λR."""

  def __init__(self, tables, num_states=4, lmbda=settings.TCQ_LAMBDA, name=None):
    super().__init__(tables, name=name or f"tcq{num_states}")
    if num_states not in TRANSITIONS:
      raise ValueError(f"TCQ supports 4 or 8 states, not {num_states}")
    self.num_states = num_states
    self.lmbda = float(lmbda)
    self.transitions = tf.constant(TRANSITIONS[num_states], tf.int32)
    self.state_quantizer = tf.constant(STATE_QUANTIZER[num_states], tf.int32)
    self.predecessors = tf.constant(_predecessors(TRANSITIONS[num_states]))

  def coding_order(self, x):
    """[B, H, W, M] -> [M, B*H*W]: channel-major, one column per trellis."""
    return tf.transpose(tf.reshape(x, [-1, tf.shape(x)[-1]]))

  def _from_coding_order(self, x, shape):
    return tf.reshape(tf.transpose(x), shape)

  def _edge_costs(self, u, base, weights=None):
    """Best index and its cost per (quantizer, parity): [T, n, 2, 2] each;
    `weights` [T] scale each step's distortion."""
    k = _candidates(u)                                   # [T, n, 2, 3]
    q = tf.constant([0, 1], tf.int32)[:, None]
    level = tf.cast(quantizer_levels(q, k), tf.float32)
    banks = tf.constant(BANKS, tf.int32)[:, None]
    table = self.tables.table_index(banks, base[..., None, None], 0)
    bits = self.tables.bits(table, k)
    distortion = tf.square(u[..., None, None] - level)
    if weights is not None:
      distortion *= weights[:, None, None, None]
    cost = distortion + self.lmbda * bits
    parity = tf.bitwise.bitwise_and(k, 1)
    best_cost, best_k = [], []
    for p in (0, 1):
      masked = tf.where(parity == p, cost, np.inf)
      pick = tf.argmin(masked, axis=-1, output_type=tf.int32)
      best_cost.append(tf.reduce_min(masked, axis=-1))
      best_k.append(tf.gather(k, pick, batch_dims=3))
    return tf.stack(best_cost, -1), tf.stack(best_k, -1)

  def search(self, u, base, weights=None):
    """Viterbi over [T, n] residuals u (units of Δ), distortions weighted by
    `weights` [T] if given; returns (k, q) [T, n]."""
    costs, choices = self._edge_costs(u, base, weights)
    n = tf.shape(u)[1]
    num_states = self.num_states
    state_q = self.state_quantizer

    def forward(carry, cost):
      j, _ = carry
      # Cost of leaving each state s with parity p: [n, S, 2] -> [n, 2S].
      leave = j[:, :, None] + tf.gather(cost, state_q, axis=1)
      leave = tf.reshape(leave, [n, 2 * num_states])
      incoming = tf.gather(leave, self.predecessors, axis=1)   # [n, S, P]
      pick = tf.argmin(incoming, axis=-1, output_type=tf.int32)
      states = tf.broadcast_to(tf.range(num_states), tf.shape(pick))
      edge = tf.gather_nd(self.predecessors, tf.stack([states, pick], -1))
      return tf.reduce_min(incoming, axis=-1), edge

    start = tf.concat([tf.zeros([n, 1]),
                       tf.fill([n, num_states - 1], np.inf)], axis=1)
    final, edges = tf.scan(
        forward, costs, initializer=(start, tf.zeros([n, num_states], tf.int32)))
    last_state = tf.argmin(final[-1], axis=-1, output_type=tf.int32)

    def backward(state, elems):
      edge, choice = elems                                 # [n, S], [n, 2, 2]
      e = tf.gather(edge, state, batch_dims=1)
      previous, parity = e // 2, e % 2
      q = tf.gather(state_q, previous)
      k = tf.gather_nd(choice, tf.stack([q, parity], -1), batch_dims=1)
      return previous, k, q

    _, k, q = tf.scan(
        lambda carry, elems: backward(carry[0], elems), (edges, choices),
        initializer=(last_state, tf.zeros([n], tf.int32),
                     tf.zeros([n], tf.int32)),
        reverse=True)
    return k, q

  def quantize(self, y, loc, scale_index, delta_index, weights=None):
    """Returns (indexes k, table ids, y_hat), all shaped like `y`; `weights`
    [M]: the channels' distortion weights (see the module's docstring)."""
    delta = scale_grid.step_size(delta_index)
    base = usq.scale_indexes(scale_index, self.tables.num_scales) - delta_index
    # Candidates then stay within the coder's index range.
    bound = 2. * index_coder.MAX_INDEX - 4.
    u = self.coding_order(tf.clip_by_value((y - loc) / delta, -bound, bound))
    base_t = self.coding_order(base)
    k, q = self.search(u, base_t, weights)
    table = self.tables.table_index(tf.gather(BANKS, q), base_t, 0)
    level = tf.cast(quantizer_levels(q, k), tf.float32)
    shape = tf.shape(y)
    y_hat = loc + self._from_coding_order(level, shape) * delta
    return (self._from_coding_order(k, shape),
            self._from_coding_order(table, shape), y_hat)

  def read(self, coder, cursor, loc, scale_index, delta_index):
    """Decodes in coding order, the coder tracking every trellis's state:
    (cursor, k, y_hat)."""
    shape = tf.shape(loc)
    base = self.coding_order(self.tables.table_index(
        0, usq.scale_indexes(scale_index, self.tables.num_scales),
        delta_index))
    state_rows = tf.gather(BANKS, self.state_quantizer) * self.tables.num_scales
    cursor, k, rows = coder.decode(cursor, base, (
        self.transitions, state_rows, tf.shape(base)[1]))
    q = tf.cast(rows // self.tables.num_scales == BANKS[1], tf.int32)
    level = tf.cast(quantizer_levels(q, k), tf.float32)
    y_hat = loc + self._from_coding_order(
        tf.reshape(level, tf.shape(base)), shape) * scale_grid.step_size(
            delta_index)
    return cursor, self._from_coding_order(tf.reshape(k, tf.shape(base)),
                                           shape), y_hat
