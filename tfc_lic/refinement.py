"""Encoder-side latent refinement: gradient steps on the codec's own R + λD.

The analysis transform predicts an image's latents in one pass (amortized
inference); latents that the fixed decoder turns into a better trade-off
exist, more so for a model trained briefly (the amortization gap: Campos et
al. 2019, Yang et al. 2020). `refine` runs Adam on y and z: the rates from
the latents with uniform noise (training's proxy, on the quantizer's step),
the distortion from the latents as the chosen quantizer reconstructs them
(USQ's rounding, TCQ's Viterbi path; straight-through) through the synthesis
that will decode them. The relaxed rate is not the coded one, so the loop
also prices every iterate as coded (the latent codec's table bits, z's mass
once rounded) and returns the cheapest, the analysis's own latents included:
refinement never codes an image at a higher cost than the plain encoder.
The codec refines an image tile by tile (codec.Transforms.refine_tile),
each tile priced as if it were the image, so that memory stays one tile's.
Only the encoder changes: every decoder of the model reads the streams.
Graph code (core ops), so that it exports; noise is stateless, so encodes
repeat.
"""

import math

import tensorflow as tf

from tfc_lic import scale_grid

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-8
MAX_STEPS = 10000


def assert_steps(steps):
  """An op that fails with a one-line message unless 0 <= steps <=
  MAX_STEPS."""
  return tf.debugging.Assert((steps >= 0) & (steps <= MAX_STEPS), [
      f"refinement takes 0 to {MAX_STEPS} steps"])


def _normal_cdf(t):
  return .5 * tf.math.erfc(-t / math.sqrt(2.))


def relaxed_loss(model, quantize_z, latent_codec, x, y, z, rate, delta_index,
                 synthesis, seed, lambda_scale=1.):
  """(relaxed, coded) bits per pixel + c·λ·MSE of latents (y, z) for image x.

  `relaxed` is differentiable; `coded` is the same cost with the rates the
  stream will have. `quantize_z` rounds z as the codec does; `latent_codec`
  quantizes y for the distortion as the stream will; `seed` picks the noise;
  c = `lambda_scale` scales the rate's λ (see refine).
  """
  delta = scale_grid.step_size(delta_index)
  z_hat = z + tf.stop_gradient(quantize_z(z) - z)
  z_noisy = z + tf.random.stateless_uniform(
      tf.shape(z), tf.stack([seed, 1]), -.5, .5)
  z_bits = -tf.reduce_sum(model.hyperprior.log_prob(z_noisy)) / math.log(2.)
  z_coded_bits = -tf.reduce_sum(
      model.hyperprior.log_prob(tf.stop_gradient(z_hat))) / math.log(2.)
  loc, scale_index = model.hyper_decode(z_hat, tf.shape(y)[1:3])
  scale = scale_grid.scale_fn(model.scale_min)(
      tf.clip_by_value(scale_index, 0., model.num_scales - 1.)) / delta
  u = (y - loc) / delta
  # Mass of the unit cell around the noisy |u| (upper tail, for precision).
  a = tf.abs(u + tf.random.stateless_uniform(
      tf.shape(u), tf.stack([seed, 0]), -.5, .5))
  mass = _normal_cdf((.5 - a) / scale) - _normal_cdf((-.5 - a) / scale)
  y_bits = -tf.reduce_sum(tf.math.log(tf.maximum(mass, 1e-9))) / math.log(2.)
  k, table, quantized = latent_codec.quantize(
      *(tf.stop_gradient(t) for t in (y, loc, scale_index)), delta_index)
  y_coded_bits = tf.reduce_sum(latent_codec.tables.bits(table, k))
  y_hat = y + tf.stop_gradient(quantized - y)
  x_hat = model.synthesize(y_hat, rate, tf.shape(x)[1:3], synthesis)
  num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), tf.float32)
  distortion = lambda_scale * model.rate_lambda(rate) * tf.reduce_mean(
      tf.math.squared_difference(x, x_hat))
  return ((y_bits + z_bits) / num_pixels + distortion,
          (y_coded_bits + z_coded_bits) / num_pixels +
          tf.stop_gradient(distortion))


def refine(model, quantize_z, latent_codec, x, y, z, rate, delta_index, steps,
           synthesis, lambda_scale, learning_rate):
  """The (y, z) of least coded cost among the iterates of `steps` Adam steps
  on relaxed_loss, from the analysis's (x: [1, H, W, 3]).

  `lambda_scale` c: the cost weighs MSE by c·λ instead of the rate's λ. A
  quantizer whose step moves it down the curve (Δ > 1) operates where the
  curve is flatter than λ; with λ itself refinement buys PSNR with more bits
  than that point pays for them (docs/quantizers.md, Latent refinement).
  `learning_rate`: Adam's first step on y and z, decayed linearly to a
  tenth (settings.REFINE_LEARNING_RATES: the shipped ones).
  """
  steps = tf.convert_to_tensor(steps, tf.int32)
  total = tf.cast(tf.maximum(steps, 1), tf.float32)

  def keep_cheaper(variables, cost, best, best_cost):
    cheaper = cost < best_cost
    return ([tf.where(cheaper, a, b) for a, b in zip(variables, best)],
            tf.minimum(cost, best_cost))

  def body(t, variables, m, v, best, best_cost):
    with tf.GradientTape() as tape:
      tape.watch(variables)
      loss, cost = relaxed_loss(model, quantize_z, latent_codec, x,
                                *variables, rate, delta_index, synthesis, t,
                                lambda_scale)
    best, best_cost = keep_cheaper(variables, cost, best, best_cost)
    gradients = tape.gradient(loss, variables)
    step = tf.cast(t, tf.float32)
    step_size = learning_rate * (1. - .9 * step / total)
    correction = tf.sqrt(1. - BETA_2 ** (step + 1.)) / (
        1. - BETA_1 ** (step + 1.))
    m = [BETA_1 * a + (1. - BETA_1) * g for a, g in zip(m, gradients)]
    v = [BETA_2 * a + (1. - BETA_2) * tf.square(g)
         for a, g in zip(v, gradients)]
    variables = [w - step_size * correction * a / (tf.sqrt(b) + EPSILON)
                 for w, a, b in zip(variables, m, v)]
    return t + 1, variables, m, v, best, best_cost

  zeros = [tf.zeros_like(y), tf.zeros_like(z)]
  _, last, _, _, best, best_cost = tf.while_loop(
      lambda t, *_: t < steps, body,
      (0, [y, z], zeros, zeros, [y, z], tf.constant(math.inf)))
  _, cost = relaxed_loss(model, quantize_z, latent_codec, x, *last, rate,
                         delta_index, synthesis, steps, lambda_scale)
  return keep_cheaper(last, cost, best, best_cost)[0]
