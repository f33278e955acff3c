"""Transforms: the hyper-synthesis' float64 codec path computes what its
layers compute; the matrix RDFT kernels compute what tfc's FFT ones do; the
up-convolutions and GDN compute what Keras' and tfc's layers do, and pad
for Eigen's kernels only to train without AVX512; up-convolution kernels
convert between their two parameterizations without changing the model."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import models
from tfc_lic import parameters
from tfc_lic import precision
from tfc_lic import transforms


@pytest.mark.parametrize("architecture,up_kernel", [
    (a, "variable") for a in sorted(models.ARCHITECTURES)] + [
        ("mbt2018-mean", "rdft")])
def test_float64_hyper_synthesis_matches_the_layers(architecture, up_kernel):
  tf.keras.utils.set_random_seed(3)
  model = models.create_model(architecture, lmbdas=[0.01], num_filters=16,
                              latent_channels=24, up_kernel=up_kernel)
  # Trained-like weights: random instead of the initialisers' near-zeros.
  for v in model.hyper_synthesis_transform.trainable_variables:
    v.assign(tf.random.normal(v.shape, stddev=0.1))
  z_hat = tf.round(tf.random.normal([2, 5, 7, 16], stddev=3.))
  synthesis = model.hyper_synthesis_transform
  exact = synthesis.call_float64(z_hat)
  assert exact.dtype == tf.float64
  np.testing.assert_allclose(exact.numpy(), synthesis(z_hat).numpy(),
                             rtol=1e-4, atol=1e-4)
  loc, scale_index = model.hyper_decode(z_hat, [19, 27], exact=True)
  assert loc.dtype == scale_index.dtype == tf.float32
  assert scale_index.shape == [2, 19, 27, 24]


@pytest.mark.parametrize("shape", [(5, 5, 3, 4), (3, 3, 4, 6)])
def test_matrix_rdft_kernel_and_gradient_equal_tfc_rdft(shape):
  rng = np.random.default_rng(0)
  kernel = rng.normal(size=shape).astype(np.float32)
  reference = tfc.RDFTParameter(kernel)
  ours = parameters.MatrixRDFTParameter(kernel)
  # Trained spectra need not be Hermitian where the RDFT's is: set every bin.
  for name in ("real", "imag"):
    value = rng.normal(size=getattr(reference, name).shape).astype(np.float32)
    getattr(reference, name).assign(value)
    getattr(ours, name).assign(value)
  np.testing.assert_allclose(ours().numpy(), reference().numpy(), atol=1e-5)
  np.testing.assert_allclose(ours(tf.float64).numpy(),
                             reference(tf.float64).numpy(), atol=1e-12)
  assert ours(tf.bfloat16).dtype == tf.bfloat16
  weights = tf.constant(rng.normal(size=shape), tf.float32)
  gradients = []
  for parameter in (reference, ours):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(weights * tf.sin(parameter()))
    gradients.append(tape.gradient(loss, [parameter.real, parameter.imag]))
  for expected, actual in zip(*gradients):
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=1e-5)


def test_signal_conv_restores_tfc_checkpoints_and_computes_the_same(tmp_path):
  tf.keras.utils.set_random_seed(4)
  x = tf.random.normal([1, 16, 16, 8])
  kwargs = dict(filters=6, kernel_support=(5, 5), corr=True, strides_down=2,
                padding="same_zeros")
  reference = tfc.SignalConv2D(**kwargs)
  reference(x)
  for v in reference.trainable_variables:
    v.assign(tf.random.normal(v.shape))
  prefix = tf.train.Checkpoint(layer=reference).write(str(tmp_path / "ckpt"))
  ours = parameters.SignalConv2D(**kwargs)
  ours(x)
  assert isinstance(ours.kernel_parameter, parameters.MatrixRDFTParameter)
  tf.train.Checkpoint(layer=ours).read(prefix).assert_consumed()
  np.testing.assert_allclose(ours(x).numpy(), reference(x).numpy(), atol=1e-4)


def _values_and_gradients(layer, x):
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = layer(x)
    loss = tf.reduce_sum(tf.sin(y))
  return [y] + tape.gradient(loss, [x] + layer.trainable_variables)


def _assert_same_layer(reference, ours, x, atol, directory):
  """`ours` restores `reference`'s checkpoint and computes the same values and
  gradients."""
  reference(x)
  for v in reference.trainable_variables:
    v.assign(v + tf.random.uniform(v.shape, 0., .5))
  prefix = tf.train.Checkpoint(layer=reference).write(str(directory / "ckpt"))
  ours(x)
  tf.train.Checkpoint(layer=ours).read(prefix).assert_consumed()
  for expected, actual in zip(_values_and_gradients(reference, x),
                              _values_and_gradients(ours, x)):
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), atol=atol)


def _up_convolution_paddings(layer, x, training):
  """The padding attributes of the transposed convolutions `layer` runs."""
  graph = tf.function(
      lambda x: layer(x, training=training)).get_concrete_function(x).graph
  return {op.get_attr("padding") for op in graph.get_operations()
          if op.type == "Conv2DBackpropInput"}


@pytest.mark.parametrize("kernel,height,width", [(5, 7, 10), (3, 6, 5)])
def test_up_convolution_equals_keras_conv2d_transpose(kernel, height, width,
                                                     tmp_path):
  tf.keras.utils.set_random_seed(5)
  x = tf.random.normal([2, height, width, 4])
  kwargs = dict(filters=3, kernel_size=kernel, strides=2, padding="same",
                activation=tf.nn.relu)
  ours = transforms.Conv2DTranspose(explicit_padding=True, **kwargs)
  _assert_same_layer(tf.keras.layers.Conv2DTranspose(**kwargs), ours, x,
                     atol=1e-5, directory=tmp_path)
  assert _up_convolution_paddings(ours, x, training=False) == {b"EXPLICIT"}
  assert ours(x).shape == (2, 2 * height, 2 * width, 3)
  traced = tf.function(ours).get_concrete_function(
      tf.TensorSpec([None, height, None, 4]))
  assert traced.structured_outputs.shape.as_list() == [None, 2 * height,
                                                       None, 3]


def test_up_convolution_pads_explicitly_only_to_train_without_avx512():
  x = tf.zeros([1, 4, 5, 2])
  layer = transforms.Conv2DTranspose(3, 5, strides=2, padding="same")
  layer(x)
  # Inference (what an export traces) is the same graph on every machine.
  assert _up_convolution_paddings(layer, x, training=False) == {b"SAME"}
  eigen = "avx512f" not in precision.cpu_flags()
  assert transforms.eigen_trains_up_convolutions_faster() == eigen
  training_paddings = {b"EXPLICIT"} if eigen else {b"SAME"}
  assert _up_convolution_paddings(layer, x, training=True) == training_paddings
  # The model's training pass (synthesis and hyper-synthesis) and stage 2's.
  model = models.create_model("mbt2018-mean", lmbdas=[0.01], num_filters=8,
                              latent_channels=12)
  image = tf.zeros([1, 64, 64, 3])
  assert _up_convolution_paddings(model, image,
                                  training=True) == training_paddings
  assert _up_convolution_paddings(model, image, training=False) == {b"SAME"}
  y_hat = tf.zeros([1, 4, 4, 12])
  synthesize = lambda y, training: model.synthesize(
      y, tf.zeros([1], tf.int32), [64, 64], training=training)
  assert _up_convolution_paddings(synthesize, y_hat,
                                  training=True) == training_paddings


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_equals_tfc_gdn(inverse, tmp_path):
  tf.keras.utils.set_random_seed(6)
  x = tf.random.normal([2, 5, 6, 8])
  _assert_same_layer(tfc.GDN(inverse=inverse),
                     transforms.GDN(inverse=inverse), x, atol=1e-5,
                     directory=tmp_path)


def test_bfloat16_analysis_scales_its_input_as_float32_does():
  # bfloat16 holds 1/255 as 1/256: a bf16-trained analysis would otherwise
  # see every image 0.4 % darker than the float32 codec shows it.
  x = tf.constant([[[[255., 128., 3.]]]])
  for dtype in ("float32", "mixed_bfloat16"):
    analysis = transforms.AnalysisTransform(8, 8, dtype=dtype)
    scaled = analysis.layers[0](x)
    assert scaled.dtype == tf.float32
    np.testing.assert_allclose(scaled.numpy(), x.numpy() / 255, rtol=1e-7)


def test_up_kernels_convert_between_parameterizations_exactly():
  """parameters.reparameterize: a model whose up-convolutions are RDFT-
  parameterized computes the variable-kernel model's function (and back);
  its RDFT variables are trainable and get gradients."""
  tf.keras.utils.set_random_seed(4)
  config = dict(lmbdas=[0.01, 0.02], num_filters=16, latent_channels=24)
  plain = models.create_model("mbt2018-mean", **config)
  for v in plain.trainable_variables:  # Trained-like, not initial, weights.
    v.assign(v + tf.random.normal(v.shape, stddev=0.02))
  rdft = models.create_model("mbt2018-mean", up_kernel="rdft", **config)
  assert len(rdft.trainable_variables) == len(plain.trainable_variables) + 6
  parameters.reparameterize(rdft, plain)
  x = tf.random.uniform([2, 64, 64, 3], 0., 255., seed=1)
  rate = tf.constant([0, 1])
  for expected, actual in zip(plain(x, rate), rdft(x, rate)):
    np.testing.assert_allclose(actual, expected, rtol=2e-5)
  back = models.create_model("mbt2018-mean", **config)
  parameters.reparameterize(back, rdft)
  for expected, actual in zip(plain(x, rate), back(x, rate)):
    np.testing.assert_allclose(actual, expected, rtol=2e-5)
  layer = rdft.synthesis_transform.get_layer("layer_0")
  with tf.GradientTape() as tape:
    loss, _, _ = rdft(x, rate, training=True)
  gradients = tape.gradient(loss, layer.rdft_kernel.trainable_variables)
  assert len(gradients) == 2
  assert all(float(tf.norm(g)) > 0 for g in gradients)
