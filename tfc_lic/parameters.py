"""Convolution kernel parameterizations (see tfc.RDFTParameter)."""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc


class MatrixRDFTParameter(tfc.RDFTParameter):
  """tfc.RDFTParameter with its inverse RDFT computed as one matrix product.

  Same variables, same kernel: the inverse transform of a k×k kernel is a
  fixed linear map, taken once from tf.signal.irfft2d itself. TF's CPU FFT
  runs Bluestein's algorithm line by line for such small odd sizes, which was
  ~12 % of a training step here; the product is a few kFLOPs per channel pair.
  """

  def __init__(self, initial_value, name=None, shape=None, dtype=None):
    super().__init__(initial_value, name=name, shape=shape, dtype=dtype)
    if self.shape.rank != 4:
      raise ValueError(f"expected a 2D kernel, got shape {self.shape}")
    self._inverse = _inverse_rdft_matrix(tuple(self.shape[:2]))

  @tf.Module.with_name_scope
  def __call__(self, compute_dtype=None):
    """Computes and returns the convolution kernel as a `tf.Tensor`."""
    if compute_dtype is None:
      dtype = self.dtype
    elif compute_dtype in (tf.bfloat16, tf.float16):
      dtype = tf.float32
    else:
      dtype = tf.as_dtype(compute_dtype)
    in_channels, out_channels = self.shape[2:]
    pairs = in_channels * out_channels
    spectrum = tf.concat([tf.reshape(tf.cast(self.real, dtype), (pairs, -1)),
                          tf.reshape(tf.cast(self.imag, dtype), (pairs, -1))],
                         axis=1)
    kernel = tf.matmul(tf.constant(self._inverse, dtype), spectrum,
                       transpose_b=True)
    kernel = tf.reshape(kernel, self.shape)
    return tf.cast(kernel, compute_dtype or dtype)


def _inverse_rdft_matrix(support):
  """(h·w, 2·h·(w//2+1)) float64 matrix: kernel = M @ [real, imag] per
  channel pair, RDFTParameter's normalization included."""
  height, width = support
  bins = height * (width // 2 + 1)
  with tf.init_scope():
    basis = tf.reshape(tf.eye(bins, dtype=tf.float64),
                       (bins, height, width // 2 + 1))
    columns = [
        tf.signal.irfft2d(tf.complex(basis, tf.zeros_like(basis)), support),
        tf.signal.irfft2d(tf.complex(tf.zeros_like(basis), basis), support),
    ]
    matrix = tf.reshape(tf.concat(columns, axis=0), (2 * bins, -1)).numpy()
  return np.ascontiguousarray(matrix.T) * np.sqrt(height * width)


class SignalConv2D(tfc.SignalConv2D):
  """tfc.SignalConv2D whose RDFT kernel is a MatrixRDFTParameter."""

  def build(self, input_shape):
    rdft = isinstance(self.kernel_parameter, str) and (
        self.kernel_parameter == "rdft")
    if rdft and not self.channel_separable:
      channels = tf.TensorShape(input_shape)[
          -1 if self.data_format == "channels_last" else 1]
      initial_value = self.kernel_initializer(
          shape=self.kernel_support + (channels, self.filters),
          dtype=self.variable_dtype)
      self.kernel_parameter = MatrixRDFTParameter(initial_value, name="kernel")
    super().build(input_shape)


def _up_convolutions(model):
  return [layer for layer in model._flatten_layers()  # pylint: disable=protected-access
          if isinstance(layer, tf.keras.layers.Conv2DTranspose)]


def _rdft(layer):
  """An up-convolution's MatrixRDFTParameter, or None for a kernel variable."""
  return getattr(layer, "rdft_kernel", None)


def kernel_of(layer, dtype):
  """An up-convolution's kernel in `dtype` (an RDFT one computed in it)."""
  if _rdft(layer) is None:
    return tf.cast(layer.kernel, dtype)
  return _rdft(layer)(dtype)


def _kernel_ids(layers):
  return {id(v) for layer in layers for v in (
      [layer.kernel] if _rdft(layer) is None else _rdft(layer).variables)}


def reparameterize(model, source):
  """Sets `model`'s variables from `source`, the same architecture with its
  up-convolution kernels parameterized the other way (variable or RDFT):
  both then compute the same function."""
  layers, source_layers = _up_convolutions(model), _up_convolutions(source)
  kernels, source_kernels = _kernel_ids(layers), _kernel_ids(source_layers)
  rest = [v for v in model.variables if id(v) not in kernels]
  values = [v for v in source.variables if id(v) not in source_kernels]
  if len(rest) != len(values) or len(layers) != len(source_layers):
    raise ValueError("the source model has another architecture")
  for target, value in zip(rest, values):
    target.assign(value)
  for target, layer in zip(layers, source_layers):
    kernel = kernel_of(layer, tf.float32)
    if _rdft(target) is None:
      target.kernel.assign(kernel)
    else:
      rdft = MatrixRDFTParameter(kernel)
      _rdft(target).real.assign(rdft.real)
      _rdft(target).imag.assign(rdft.imag)
