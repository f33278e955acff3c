"""Known-answer tests of BD-rate and BD-PSNR."""

import numpy as np
import pytest

from tfc_lic import bd_rate

ANCHOR = [(0.12, 27.1), (0.19, 28.7), (0.30, 30.6), (0.47, 32.6),
          (0.69, 34.6), (0.97, 36.7), (1.31, 38.8), (1.73, 40.8)]


def _scaled(curve, rate_factor=1.0, psnr_offset=0.0):
  return [(r * rate_factor, p + psnr_offset) for r, p in curve]


def test_identical_curves():
  assert abs(bd_rate.bd_rate(ANCHOR, ANCHOR)) < 1e-9
  assert abs(bd_rate.bd_psnr(ANCHOR, ANCHOR)) < 1e-9


@pytest.mark.parametrize("factor, expected", [(0.9, -10.0), (1.1, 10.0)])
def test_scaled_rates(factor, expected):
  test = _scaled(ANCHOR, rate_factor=factor)
  assert bd_rate.bd_rate(ANCHOR, test) == pytest.approx(expected, abs=1e-6)


def test_shifted_psnr():
  test = _scaled(ANCHOR, psnr_offset=0.5)
  assert bd_rate.bd_psnr(ANCHOR, test) == pytest.approx(0.5, abs=1e-9)
  assert bd_rate.bd_psnr(test, ANCHOR) == pytest.approx(-0.5, abs=1e-9)
  assert bd_rate.bd_rate(ANCHOR, test) < 0


def test_order_of_points_does_not_matter():
  test = _scaled(ANCHOR, rate_factor=0.8, psnr_offset=0.2)
  shuffled = [test[i] for i in np.random.default_rng(0).permutation(len(test))]
  assert bd_rate.bd_rate(ANCHOR, shuffled) == pytest.approx(
      bd_rate.bd_rate(ANCHOR, test), abs=1e-12)


def test_two_points_suffice():
  test = _scaled(ANCHOR[:2], rate_factor=0.9)
  assert bd_rate.bd_rate(ANCHOR[:2], test) == pytest.approx(-10, abs=1e-6)


def test_non_overlapping_curves_raise():
  high = _scaled(ANCHOR, rate_factor=100, psnr_offset=20)
  with pytest.raises(ValueError, match="do not overlap"):
    bd_rate.bd_rate(ANCHOR, high)
  with pytest.raises(ValueError, match="do not overlap"):
    bd_rate.bd_psnr(ANCHOR, high)


def test_psnr_window_compares_the_same_qualities():
  # Better by 10 % up to 33 dB, by 20 % above it; a window picks either part.
  test = [(r * (0.9 if p < 33 else 0.8), p) for r, p in ANCHOR]
  assert bd_rate.bd_rate(ANCHOR, test, psnr_window=(27.1, 30.6)) == (
      pytest.approx(-10, abs=1e-6))
  assert bd_rate.bd_rate(ANCHOR, test, psnr_window=(36.7, 40.8)) == (
      pytest.approx(-20, abs=1e-6))
  assert -20 < bd_rate.bd_rate(ANCHOR, test) < -10


def test_psnr_window_outside_either_curve_raises():
  with pytest.raises(ValueError, match="does not span 26.0-30.0"):
    bd_rate.bd_rate(ANCHOR, ANCHOR, psnr_window=(26.0, 30.0))
  with pytest.raises(ValueError, match="does not span"):
    bd_rate.bd_rate(ANCHOR, ANCHOR[:4], psnr_window=(28.0, 33.0))


@pytest.mark.parametrize("curve, message", [
    ([(0.5, 30.0)], "at least 2 points"),
    ([(0.5, 30.0), (0.5, 31.0)], "strictly increasing"),
    ([(0.5, 30.0), (0.8, 29.0)], "strictly increasing"),
    ([(0.0, 30.0), (0.8, 32.0)], "positive rates"),
    ([(0.5, 30.0), (0.8, float("inf"))], "finite"),
])
def test_bad_curves_raise(curve, message):
  with pytest.raises(ValueError, match=message):
    bd_rate.bd_rate(ANCHOR, curve)
