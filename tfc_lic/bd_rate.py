"""Bjøntegaard delta rate and delta PSNR between two RD curves.

Follows the convention of the JCT-VC/JVET common-test-conditions spreadsheets
as reproduced by the FAU "bjontegaard" package ("pchip" method), rather than
the cubic polynomial fit of the original VCEG-M33 proposal:

- BD-rate: log10(rate) is interpolated as a function of PSNR with a piecewise
  cubic Hermite interpolant (scipy's PchipInterpolator) for each curve; the
  difference of the two is averaged (exact integral / interval length) over
  the overlapping PSNR range, and reported as 100 * (10**avg - 1) percent.
  Negative means the test curve needs less rate for the same quality.
- BD-PSNR: PSNR as a function of log10(rate) likewise, averaged over the
  overlapping log-rate range, in dB. Positive means the test curve is better.

A curve is a sequence of (bpp, psnr) points, in any order. BD-rate can also
be taken over a given PSNR window that both curves span: settings whose curves
cover different ranges (a coarser quantizer step shifts a curve down) are then
compared on the same qualities.
"""

import numpy as np
from scipy import interpolate


def _as_curve(points, name):
  """Returns (log10 rate, psnr) arrays sorted by rate, after validation."""
  points = np.asarray(points, dtype=np.float64)
  if points.ndim != 2 or points.shape[1] != 2:
    raise ValueError(f"{name} curve must be a list of (bpp, psnr) pairs")
  if len(points) < 2:
    raise ValueError(f"{name} curve needs at least 2 points, got {len(points)}")
  if not np.all(np.isfinite(points)) or np.any(points[:, 0] <= 0):
    raise ValueError(f"{name} curve needs finite values and positive rates")
  points = points[np.argsort(points[:, 0])]
  rate, quality = points[:, 0], points[:, 1]
  if np.any(np.diff(rate) <= 0) or np.any(np.diff(quality) <= 0):
    raise ValueError(f"{name} curve must be strictly increasing in both rate "
                     f"and PSNR")
  return np.log10(rate), quality


def _average_difference(x_anchor, y_anchor, x_test, y_test, what,
                        window=None):
  """Mean of pchip(test) - pchip(anchor) over the common range of x.

  With `window` (low, high), over that interval, which both curves must span.
  """
  low = max(x_anchor[0], x_test[0])
  high = min(x_anchor[-1], x_test[-1])
  if low >= high:
    raise ValueError(f"the curves' {what} ranges do not overlap")
  if window is not None:
    if not (low <= window[0] < window[1] <= high):
      raise ValueError(f"the curves' common {what} range {low:.2f}-"
                       f"{high:.2f} does not span {window[0]}-{window[1]}")
    low, high = window
  anchor = interpolate.PchipInterpolator(x_anchor, y_anchor)
  test = interpolate.PchipInterpolator(x_test, y_test)
  difference = test.integrate(low, high) - anchor.integrate(low, high)
  return difference / (high - low)


def bd_rate(anchor, test, psnr_window=None):
  """BD-rate of `test` against `anchor` in percent (negative saves rate).

  Over the curves' common PSNR range, or over `psnr_window` (low, high) dB.
  """
  log_rate_a, psnr_a = _as_curve(anchor, "anchor")
  log_rate_t, psnr_t = _as_curve(test, "test")
  average = _average_difference(psnr_a, log_rate_a, psnr_t, log_rate_t, "PSNR",
                                psnr_window)
  return float(100 * (10 ** average - 1))


def bd_psnr(anchor, test):
  """BD-PSNR of `test` against `anchor` in dB (positive is better)."""
  log_rate_a, psnr_a = _as_curve(anchor, "anchor")
  log_rate_t, psnr_t = _as_curve(test, "test")
  return float(_average_difference(
      log_rate_a, psnr_a, log_rate_t, psnr_t, "rate"))
