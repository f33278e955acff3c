"""Stage 2: retrain the synthesis on latents quantized exactly as at inference.

The noise proxy of stage 1 does not model real quantization error, least of
all TCQ's, whose indexes come from a joint trellis search. Here everything
that produces the bitstream (analysis, hyper transforms, priors, gains) is
frozen, the latents go through the inference quantizer (USQ or TCQ, graph
code, same tables and λ as the codec), and only the synthesis of that
quantizer learns, on λ-weighted MSE (the rate cannot change). Decoding cost is
unchanged: the codec just picks the synthesis named by the stream.
"""

import tensorflow as tf

from tfc_lic import codec as codec_lib
from tfc_lic import settings


def copy_synthesis(model, quantizer):
  """Starts the quantizer's synthesis from the stage-1 weights."""
  target = model.quantizer_syntheses[quantizer]
  for source, destination in zip(model.synthesis_transform.variables,
                                 target.variables):
    destination.assign(source)


class SynthesisFinetuner(tf.keras.Model):
  """Trains model.quantizer_syntheses[q] for each q on quantized latents.

  Every step quantizes the batch with each quantizer and trains each
  synthesis on its own latents; each example draws a rate and its distortion
  is weighted by that rate's λ, as in stage 1.
  """

  def __init__(self, model, tcq_lambda=settings.TCQ_LAMBDA, delta_indexes=None,
               **kwargs):
    super().__init__(**kwargs)
    self.model = model
    self.codec = codec_lib.ImageCodec(model, tcq_lambda=tcq_lambda)
    self.quantizers = list(model.finetuned_quantizers)
    delta_indexes = dict(settings.DELTA_INDEXES, **(delta_indexes or {}))
    self.delta_indexes = [int(delta_indexes[q]) for q in self.quantizers]
    self.mse_metric = tf.keras.metrics.Mean(name="mse")
    self.psnr_metric = tf.keras.metrics.Mean(name="psnr")
    self.loss_metric = tf.keras.metrics.Mean(name="loss")

  @property
  def metrics(self):
    return [self.loss_metric, self.mse_metric, self.psnr_metric]

  @property
  def trainable_weights(self):
    return [v for q in self.quantizers
            for v in self.model.quantizer_syntheses[q].trainable_variables]

  def quantized_latents(self, x, rate):
    """y_hat of every quantizer for a batch: the encoder's exact output."""
    transforms = self.codec.transforms
    latents = transforms.untiled_latents(x, rate)  # Crops: one tile each.
    outputs = []
    for quantizer, delta_index in zip(self.quantizers, self.delta_indexes):
      _, _, y_hat = transforms.quantize(
          latents["y"], latents["loc"], latents["scale_index"],
          codec_lib.quantizer_id(quantizer), delta_index)
      outputs.append(tf.stop_gradient(y_hat))
    return outputs

  def distortions(self, x, rate, training=False):
    """Per-example MSE of each quantizer's synthesis on its own latents."""
    mses = []
    for quantizer, y_hat in zip(self.quantizers,
                                self.quantized_latents(x, rate)):
      synthesis = self.model.quantizer_syntheses[quantizer]
      x_hat = self.model.synthesize(y_hat, rate, tf.shape(x)[1:3], synthesis,
                                    training=training)
      mses.append(tf.reduce_mean(tf.math.squared_difference(x, x_hat),
                                 axis=(1, 2, 3)))
    return mses

  def _loss(self, x, rate, training=False):
    """Sum over quantizers of λ-weighted MSE; also the per-example MSE."""
    lmbda = tf.gather(tf.constant(self.model.lmbdas), rate)
    mses = self.distortions(x, rate, training=training)
    # Normalised by the mean λ so the learning rate means the same for any λs.
    total = tf.add_n([tf.reduce_mean(lmbda * mse) for mse in mses])
    return total / tf.reduce_mean(self.model.lmbdas), tf.concat(mses, 0)

  def _update(self, loss, mse):
    self.loss_metric.update_state(loss)
    self.mse_metric.update_state(mse)
    self.psnr_metric.update_state(
        10. * tf.math.log(255. ** 2 / tf.maximum(mse, 1e-10)) / tf.math.log(10.))
    return {m.name: m.result() for m in self.metrics}

  def train_step(self, x):
    x = tf.cast(x, tf.float32)
    rate = self.model.sample_rates(tf.shape(x)[0])
    variables = self.trainable_weights
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, mse = self._loss(x, rate, training=True)
      scaled_loss = loss / replicas
    self.optimizer.apply_gradients(zip(
        tape.gradient(scaled_loss, variables), variables))
    return self._update(loss, mse)

  def test_step(self, x):
    """Validation: every rate on the same crops."""
    x = tf.cast(x, tf.float32)
    batch = tf.shape(x)[0]
    for r in range(self.model.num_rates):
      self._update(*self._loss(x, tf.fill([batch], r)))
    return {m.name: m.result() for m in self.metrics}
