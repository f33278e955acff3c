"""Known-answer tests of the image metrics."""

import math

import numpy as np
import pytest

from tfc_lic import metrics


def _image(height=64, width=96, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(4, 250, size=(height, width, 3), dtype=np.uint8)


def test_psnr_identical_is_inf():
  image = _image()
  assert metrics.psnr(image, image) == math.inf
  assert metrics.mse(image, image) == 0


def test_psnr_off_by_one():
  image = _image()
  assert metrics.mse(image, image + 1) == 1
  assert metrics.psnr(image, image + 1) == pytest.approx(
      20 * math.log10(255), abs=1e-9)
  assert metrics.psnr(image, image - 1) == pytest.approx(48.13, abs=0.005)


def test_psnr_averages_mse_over_channels():
  image = _image()
  other = image.copy()
  other[..., 0] += 3  # Error 9 in one channel of three: MSE 3.
  assert metrics.mse(image, other) == pytest.approx(3)
  assert metrics.psnr(image, other) == pytest.approx(
      10 * math.log10(255 ** 2 / 3))


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match="same shape"):
    metrics.psnr(_image(), _image(height=32))


def test_ms_ssim_identical_is_one():
  image = _image(height=176, width=192)
  assert metrics.ms_ssim(image, image) == pytest.approx(1, abs=1e-6)


def test_ms_ssim_decreases_with_noise():
  image = _image(height=176, width=192)
  noisy = image + np.uint8(3) * (_image(176, 192, seed=1) > 127)
  assert 0 < metrics.ms_ssim(image, noisy) < 1


def test_ms_ssim_too_small_is_nan():
  image = _image(height=metrics.MS_SSIM_MIN_SIDE - 1, width=400)
  assert math.isnan(metrics.ms_ssim(image, image))


def test_bpp():
  assert metrics.bpp(3072, 512, 768) == pytest.approx(0.0625)
