"""Analysis, synthesis and hyperprior transforms built from tfc layers.

Channel layouts follow Ballé et al. 2018 (scale hyperprior) and Minnen et al.
2018 (mean-scale hyperprior) as implemented in tfc's models/ and CompressAI.
Every transform takes a Keras dtype policy so that convolutions can run in
bfloat16 while the entropy models stay in float32.
"""

import functools

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import parameters
from tfc_lic import precision


@functools.lru_cache(maxsize=None)
def eigen_trains_up_convolutions_faster():
  """Whether this CPU lacks AVX512, where oneDNN's filter gradient of a
  transposed convolution is slower than Eigen's (see Conv2DTranspose)."""
  return "avx512f" not in precision.cpu_flags()


def _conv(filters, kernel, name, down=1, up=1, activation=None, dtype=None,
          use_bias=True, up_kernel="variable"):
  """A zero-padded convolution; `down`/`up` are the strides.

  Downsampling and stride-1 layers are tfc.SignalConv2D (its RDFT kernel as a
  matrix product, parameters.MatrixRDFTParameter). In bfloat16, TF's CPU
  convolution with EXPLICIT padding has no oneDNN kernel and runs >10x
  slower, so the input is then padded by a separate op instead. (In float32 that moves the backprops
  from Eigen to oneDNN, yet a step took 4.6 s against 4.0 on 2 AVX2 cores.)
  Upsampling layers are Keras' Conv2DTranspose (training on Eigen's kernels
  in float32 without AVX512, see below): same output size and support as
  SignalConv2D's "same_zeros" up-convolution, but 2x faster in bfloat16 on
  CPU (SignalConv2D computes a larger transposed convolution and crops it).
  `up_kernel` is how their kernels are parameterized ("variable" or "rdft").
  """
  if up > 1:
    layer = RDFTConv2DTranspose if up_kernel == "rdft" else Conv2DTranspose
    return layer(
        filters, kernel, strides=up, padding="same", name=name,
        use_bias=use_bias, activation=activation, dtype=dtype)
  return parameters.SignalConv2D(
      filters, (kernel, kernel), name=name, corr=True, strides_down=down,
      padding="same_zeros", use_explicit=dtype != "mixed_bfloat16",
      use_bias=use_bias, activation=activation, dtype=dtype)


def receptive_radius(layers):
  """How many input positions on either side of its own an output of the
  convolutions `layers` (in order) depends on; pointwise layers (GDN,
  activations, rescaling) add nothing."""
  radius = 0  # in units of the current layer's output
  for layer in reversed(layers):
    if isinstance(layer, tfc.SignalConv2D):
      (kernel, _), (down, _) = layer.kernel_support, layer.strides_down
      radius = radius * down + (kernel - 1) // 2
    elif isinstance(layer, tf.keras.layers.Conv2DTranspose):
      (kernel, _), (up, _) = layer.kernel_size, layer.strides
      radius = -(-(radius + (kernel - 1) // 2) // up)
  return radius


class Conv2DTranspose(tf.keras.layers.Conv2DTranspose):
  """Keras' up-convolution, its "same" padding passed to TF as numbers when it
  trains in float32 on a CPU without AVX512.

  TF then runs Eigen's kernels instead of oneDNN's, whose filter gradient was
  the slowest op of a training step on AVX2 (64² -> 128² × 128 channels,
  batch 8: 1.14 s forward and backward, 0.57 s with Eigen). With AVX512
  oneDNN's is the faster one (0.31 against 0.42 s), as it is in bfloat16,
  and inference (a Kodak synthesis: 141 against 198 ms on AVX512, equal on
  AVX2) keeps Keras' path, so an export's graph is the same on any machine.
  `explicit_padding` overrides the choice (None: as above). Same values up
  to float rounding.
  """

  def __init__(self, *args, explicit_padding=None, **kwargs):
    super().__init__(*args, **kwargs)
    self.explicit_padding = explicit_padding

  def call(self, inputs, training=None):
    explicit = self.explicit_padding
    if explicit is None:
      explicit = bool(training) and eigen_trains_up_convolutions_faster()
    if (not explicit or self.compute_dtype != "float32" or
        self.padding != "same" or any(
            k < s for k, s in zip(self.kernel_size, self.strides))):
      return super().call(inputs)
    shape = tf.shape(inputs)
    output_shape = tf.stack([shape[0], shape[1] * self.strides[0],
                             shape[2] * self.strides[1], self.filters])
    # "same" pads the forward convolution by k - s, the extra one at the end.
    padding = [[0, 0]] + [[(k - s) // 2, (k - s + 1) // 2] for k, s in zip(
        self.kernel_size, self.strides)] + [[0, 0]]
    outputs = tf.nn.conv2d_transpose(inputs, self.kernel, output_shape,
                                     self.strides, padding)
    outputs.set_shape(self.compute_output_shape(inputs.shape))
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    if self.activation is not None:
      outputs = self.activation(outputs)
    return outputs


class RDFTConv2DTranspose(Conv2DTranspose):
  """Conv2DTranspose whose kernel is parameterized by its RDFT, as tfc's
  SignalConv2D parameterizes its kernels (tfc.RDFTParameter; here
  parameters.MatrixRDFTParameter): Adam then steps in frequency, which
  Ballé 2018 found to train transforms faster. Same op, same function."""

  def build(self, input_shape):
    super().build(input_shape)  # Its add_weight("kernel") only notes the shape.
    self.rdft_kernel = parameters.MatrixRDFTParameter(
        self.kernel_initializer(self._kernel_shape, dtype=self.dtype),
        name="kernel")

  def add_weight(self, name=None, shape=None, **kwargs):
    if name != "kernel":
      return super().add_weight(name=name, shape=shape, **kwargs)
    self._kernel_shape = shape
    return None

  @property
  def kernel(self):
    return self.rdft_kernel(self.compute_dtype)

  @kernel.setter
  def kernel(self, value):
    if value is not None:
      raise AttributeError("the kernel is computed from rdft_kernel")


class GDN(tfc.GDN):
  """tfc.GDN computed on the positions as rows of a matrix.

  GDN is pointwise over positions, so this is exact: tfc then pools with one
  matrix product instead of a 1x1 convolution, whose oneDNN filter gradient
  was slow on AVX2 (128² × 128 channels, batch 8: 261 ms forward and
  backward, 137 ms as a product). Same variables as tfc.GDN.
  """

  def call(self, inputs):
    if self.data_format != "channels_last":
      return super().call(inputs)
    rows = tf.reshape(inputs, [-1, inputs.shape[-1]])
    return tf.reshape(super().call(rows), tf.shape(inputs))


class AnalysisTransform(tf.keras.Sequential):
  """g_a: image in [0, 255] -> latents y, 16x downsampled, M channels."""

  def __init__(self, num_filters, latent_channels, dtype=None):
    super().__init__(name="analysis")
    # Always in float32: bfloat16 rounds 1/255 to 1/256, so a model trained
    # in bfloat16 would see inputs 0.4 % darker than inference gives it, and
    # the analysis's gradient would pull away from its float32 optimum.
    self.add(tf.keras.layers.Rescaling(1 / 255, dtype="float32"))
    for i in range(3):
      self.add(_conv(num_filters, 5, f"layer_{i}", down=2, dtype=dtype,
                     activation=GDN(name=f"gdn_{i}", dtype=dtype)))
    self.add(_conv(latent_channels, 5, "layer_3", down=2, dtype=dtype))


class SynthesisTransform(tf.keras.Sequential):
  """g_s: quantized latents -> image in [0, 255], 16x upsampled."""

  def __init__(self, num_filters, dtype=None, name="synthesis",
               up_kernel="variable"):
    super().__init__(name=name)
    for i in range(3):
      self.add(_conv(
          num_filters, 5, f"layer_{i}", up=2, dtype=dtype, up_kernel=up_kernel,
          activation=GDN(name=f"igdn_{i}", inverse=True, dtype=dtype)))
    self.add(_conv(3, 5, "layer_3", up=2, dtype=dtype, up_kernel=up_kernel))
    self.add(tf.keras.layers.Rescaling(255, dtype=dtype))


class HyperAnalysisTransform(tf.keras.Sequential):
  """h_a: latents -> hyper-latents z, 4x downsampled."""

  def __init__(self, num_filters, activation=tf.nn.relu, dtype=None):
    super().__init__(name="hyper_analysis")
    self.add(_conv(num_filters, 3, "layer_0", activation=activation,
                   dtype=dtype))
    self.add(_conv(num_filters, 5, "layer_1", down=2, activation=activation,
                   dtype=dtype))
    self.add(_conv(num_filters, 5, "layer_2", down=2, dtype=dtype,
                   use_bias=False))


class HyperSynthesisTransform(tf.keras.Sequential):
  """h_s: hyper-latents -> entropy parameters of y (`out_channels` of them).

  `call_float64` is its codec path: the scale indexes it produces pick the
  range coder's tables, so encoder and decoder must agree on them exactly.
  float32 kernels of different CPUs and TF builds (oneDNN or Eigen, thread
  counts) sum in different orders and differ by ~1e-4 here, enough to round
  a few indexes per image the other way and desynchronise the decoder; in
  float64 they differ by ~1e-13.
  """

  def __init__(self, num_filters, hidden_filters, out_channels,
               activation=tf.nn.relu, dtype=None, up_kernel="variable"):
    super().__init__(name="hyper_synthesis")
    self.add(_conv(num_filters, 5, "layer_0", up=2, activation=activation,
                   dtype=dtype, up_kernel=up_kernel))
    self.add(_conv(hidden_filters, 5, "layer_1", up=2, activation=activation,
                   dtype=dtype, up_kernel=up_kernel))
    self.add(_conv(out_channels, 3, "layer_2", dtype=dtype))

  def call_float64(self, z_hat):
    """The transform's output computed in float64, layer by layer."""
    x = tf.cast(z_hat, tf.float64)
    for layer in self.layers:
      if isinstance(layer, tf.keras.layers.Conv2DTranspose):
        shape = tf.shape(x)
        x = tf.nn.conv2d_transpose(
            x, parameters.kernel_of(layer, tf.float64),
            tf.stack([shape[0], shape[1] * layer.strides[0],
                      shape[2] * layer.strides[1], layer.filters]),
            layer.strides, padding="SAME")
        bias = layer.bias
      elif (isinstance(layer, tfc.SignalConv2D) and layer.corr and
            layer.strides_down == (1, 1) and layer.padding == "same_zeros"):
        x = tf.nn.conv2d(x, _float64(layer.kernel_parameter), 1, "SAME")
        bias = layer.bias_parameter
      else:
        raise TypeError(f"no float64 path for layer {layer.name}")
      if layer.use_bias:
        x = tf.nn.bias_add(x, _float64(bias))
      if layer.activation is not None:
        x = layer.activation(x)
    return x


class CheckerboardContext(tf.keras.layers.Layer):
  """Entropy parameters of y from the hyperprior's and the decoded anchors'
  (the checkerboard context of He et al. 2021, two-pass decodable).

  A 5x5 convolution sees only the anchors (the others are zeroed), so the
  non-anchors' parameters depend on decoded anchors alone. Three 1x1 layers
  (Minnen et al. 2018's entropy parameters) combine it with the hyper-
  synthesis output and add the result to that output; the last layer starts
  at zero, so a warm start from a model without context begins exactly
  where that model was.
  """

  def __init__(self, latent_channels, dtype=None, name="context"):
    super().__init__(name=name, dtype=dtype)
    m = latent_channels
    self.context = tf.keras.layers.Conv2D(
        2 * m, 5, padding="same", name="masked_conv", dtype=dtype)
    self.parameters = [
        tf.keras.layers.Conv2D(10 * m // 3, 1, activation=tf.nn.leaky_relu,
                               name="parameters_0", dtype=dtype),
        tf.keras.layers.Conv2D(8 * m // 3, 1, activation=tf.nn.leaky_relu,
                               name="parameters_1", dtype=dtype),
        tf.keras.layers.Conv2D(2 * m, 1, kernel_initializer="zeros",
                               name="parameters_2", dtype=dtype),
    ]

  def call(self, hyper, anchors):
    """Hyper-synthesis output and anchor-only latents -> refined parameters."""
    x = tf.concat([tf.cast(hyper, self.compute_dtype),
                   self.context(anchors)], -1)
    for layer in self.parameters:
      x = layer(x)
    return tf.cast(hyper, tf.float32) + tf.cast(x, tf.float32)

  def call_float64(self, hyper, anchors):
    """The codec's path, in float64 for the reason HyperSynthesisTransform
    gives: the non-anchors' scale indexes pick their coding tables."""
    hyper = tf.cast(hyper, tf.float64)
    x = tf.concat([hyper, _conv2d_float64(self.context,
                                          tf.cast(anchors, tf.float64))], -1)
    for layer in self.parameters:
      x = _conv2d_float64(layer, x)
    return tf.cast(hyper + x, tf.float32)


def _conv2d_float64(layer, x):
  """A Keras Conv2D ("same" padding, stride 1) applied in float64."""
  x = tf.nn.conv2d(x, tf.cast(layer.kernel, tf.float64), 1, "SAME")
  x = tf.nn.bias_add(x, tf.cast(layer.bias, tf.float64))
  return x if layer.activation is None else layer.activation(x)


def _float64(parameter):
  """A tfc layer parameter as float64 (an RDFT kernel's inverse transform is
  itself computed in float64)."""
  if isinstance(parameter, tfc.RDFTParameter):
    return parameter(tf.float64)
  return tf.cast(parameter, tf.float64)
