"""Range-coding tables of the Gaussian conditional for each scalar quantizer.

Each quantizer maps an integer index k to a reconstruction level (in units of
the step Δ) and a decision cell; the probability of k under N(0, σ) is the
Gaussian mass of its cell:

  "usq" (uniform):  level k,            cell [k - 1/2, k + 1/2]
  "q0"  (TCQ Q0):   level 2k,           cell [2k - 1, 2k + 1]
  "q1"  (TCQ Q1):   level 2k - sgn(k),  i.e. 0, ±1, ±3, ±5, ...;
                    cells between neighbouring levels' midpoints:
                    k = 0: [-1/2, 1/2];  k = 1: [1/2, 2];  k >= 2: [2k - 2, 2k]
                    (mirrored for k < 0).

Scales follow the model's octave grid σ_i = scale_min * 2**(i/8), so a step
Δ = 2**(j/8) is the table of index i - j (the cells scale with Δ). Tables are
built once with tfc's pmf_to_quantized_cdf and stored as a stacked lookup
[tables, length] in tfc's layout (row = [-precision, cdf...], the last
symbol the overflow through which tail values escape; see index_coder).
"""

import numpy as np
from scipy import special
import tensorflow as tf

from tfc_lic import index_coder
from tfc_lic import scale_grid

QUANTIZERS = ("usq", "q0", "q1")
PRECISION = 16
TAIL_MASS = 2 ** -8


def levels(quantizer, k):
  """Reconstruction levels (units of Δ) of integer indexes `k` (TF or numpy)."""
  if quantizer == "usq":
    return k
  if quantizer == "q0":
    return 2 * k
  if quantizer == "q1":
    return 2 * k - (np.sign(k) if isinstance(k, np.ndarray) else
                    tf.sign(k))
  raise ValueError(f"unknown quantizer {quantizer!r}")


def cells(quantizer, k):
  """Decision cells (lower, upper) of integer indexes `k` (numpy)."""
  k = np.asarray(k, dtype=np.float64)
  if quantizer == "usq":
    return k - .5, k + .5
  if quantizer == "q0":
    return 2 * k - 1, 2 * k + 1
  a = np.abs(k)
  upper = np.where(a == 0, .5, 2 * a)
  lower = np.where(a == 0, -.5, np.where(a == 1, .5, 2 * a - 2))
  return np.where(k < 0, -upper, lower), np.where(k < 0, -lower, upper)


def _gaussian_mass(lower, upper, scale):
  return special.ndtr(upper / scale) - special.ndtr(lower / scale)


def build_lookup(quantizer, scales, precision=PRECISION, tail_mass=TAIL_MASS):
  """Returns (lookup [S, L] int32, offset [S] int32) for Gaussian `scales`.

  Row i codes indexes k in [offset[i], -offset[i]] as symbol k - offset[i];
  anything outside escapes through the overflow symbol. Needs tfc (its
  quantization of pmfs); coding with the tables does not.
  """
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top
  z = special.ndtri(1 - tail_mass / 2)
  rows, offsets = [], []
  for scale in scales:
    kmax = 0
    while cells(quantizer, kmax)[1] < scale * z:
      kmax += 1
    k = np.arange(-kmax, kmax + 1)
    pmf = _gaussian_mass(*cells(quantizer, k), scale)
    pmf = np.append(pmf, max(1. - pmf.sum(), 0.))
    cdf = tfc.pmf_to_quantized_cdf(
        tf.constant(pmf, tf.float32), precision=precision).numpy()
    rows.append(np.concatenate([[-precision], cdf]))
    offsets.append(-kmax)
  length = max(len(r) for r in rows)
  lookup = np.stack([np.pad(r, (0, length - len(r)), mode="edge")
                     for r in rows])
  return lookup.astype(np.int32), np.array(offsets, np.int32)


class EntropyTables(tf.Module):
  """The stacked tables of all quantizers over the model's scale grid.

  Table id = bank * num_scales + scale index, bank in QUANTIZERS order.
  """

  def __init__(self, lookup, offset, num_scales, name="entropy_tables"):
    super().__init__(name=name)
    self.num_scales = int(num_scales)
    self.lookup = tf.Variable(lookup, trainable=False, name="lookup")
    self.offset = tf.Variable(offset, trainable=False, name="offset")

  @classmethod
  def build(cls, num_scales, scale_min):
    """The tables of every quantizer on the model's octave scale grid."""
    scales = scale_grid.scale_fn(scale_min)(
        np.arange(num_scales, dtype=np.float64)).numpy()
    built = [build_lookup(q, scales) for q in QUANTIZERS]
    length = max(l.shape[1] for l, _ in built)
    lookup = np.concatenate(
        [np.pad(l, ((0, 0), (0, length - l.shape[1])), mode="edge")
         for l, _ in built])
    offset = np.concatenate([o for _, o in built])
    return cls(lookup, offset, num_scales)

  def table_index(self, quantizer_bank, scale_index, delta_index):
    """Table ids for a bank (int tensor or int), scale and step indexes."""
    scale = tf.clip_by_value(
        tf.cast(scale_index, tf.int32) - delta_index, 0, self.num_scales - 1)
    return tf.cast(quantizer_bank, tf.int32) * self.num_scales + scale

  def bits(self, table, k):
    """Information content -log2 P(k) under table `table` (same shapes).

    Indexes outside a table's range cost the overflow symbol plus the
    escape of their excess (index_coder).
    """
    offset = tf.gather(self.offset, table)
    symbol = k - offset
    size = -2 * offset + 1
    inside = (symbol >= 0) & (symbol < size)
    position = tf.where(inside, symbol, size)
    flat = tf.reshape(self.lookup, [-1])
    start = table * tf.shape(self.lookup)[1] + position + 1
    cdf_low = tf.gather(flat, start)
    cdf_high = tf.gather(flat, start + 1)
    bits = float(PRECISION) - tf.math.log(
        tf.cast(cdf_high - cdf_low, tf.float32)) / np.log(2.)
    excess = tf.where(inside, 1, tf.where(symbol < 0, -symbol,
                                          symbol - size + 1))
    return tf.where(inside, bits, bits + index_coder.escape_bits(
        tf.minimum(excess, 2**16 - 1)))
