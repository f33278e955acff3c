"""Image quality and rate metrics on uint8 RGB arrays [height, width, 3].

Shared by the learned and the classic codecs so that every RD point in a
comparison is measured the same way (8-bit RGB, peak 255).
"""

import numpy as np
import tensorflow as tf

# tf.image.ssim_multiscale defaults: 11x11 window, 5 scales (4 halvings that
# round up). The coarsest scale must still hold a full window.
_MS_SSIM_FILTER_SIZE = 11
_MS_SSIM_SCALES = 5
MS_SSIM_MIN_SIDE = (_MS_SSIM_FILTER_SIZE - 1) * 2 ** (_MS_SSIM_SCALES - 1) + 1


def _check_pair(a, b):
  a = np.asarray(a)
  b = np.asarray(b)
  if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
    raise ValueError(f"expected two [H, W, 3] images of the same shape, got "
                     f"{a.shape} and {b.shape}")
  return a, b


def mse(a, b):
  """Mean squared error over all pixels and channels, on the 0..255 scale."""
  a, b = _check_pair(a, b)
  return float(np.mean(np.square(a.astype(np.float64) - b.astype(np.float64))))


def psnr(a, b):
  """PSNR-RGB in dB with peak 255 (MSE averaged over channels); inf if equal."""
  error = mse(a, b)
  if error == 0:
    return float("inf")
  return float(10 * np.log10(255 ** 2 / error))


def ms_ssim(a, b):
  """MS-SSIM on RGB with max_val 255 (tf.image.ssim_multiscale defaults).

  Returns nan for images with a side shorter than `MS_SSIM_MIN_SIDE` (161),
  which are too small for the 5 scales.
  """
  a, b = _check_pair(a, b)
  if min(a.shape[:2]) < MS_SSIM_MIN_SIDE:
    return float("nan")
  value = tf.image.ssim_multiscale(
      tf.constant(a, tf.float32), tf.constant(b, tf.float32), max_val=255)
  return float(value)


def quality(reference, decoded):
  """The one-line PSNR and MS-SSIM report of the commands."""
  value = ms_ssim(reference, decoded)
  return (f"PSNR {psnr(reference, decoded):.2f} dB, MS-SSIM " + (
      f"{value:.4f}" if np.isfinite(value) else
      f"n/a (a side under {MS_SSIM_MIN_SIDE} px)"))


def bpp(num_bytes, height, width):
  """Bits per pixel of a `num_bytes` bit stream for a height x width image."""
  return 8 * num_bytes / (height * width)
