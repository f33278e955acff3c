"""Hyperprior image compression models (Keras) and their training proxies.

Three architectures share one base class:
- `ScaleHyperprior` ("bmshj2018"): Ballé et al. 2018, zero-mean Gaussian
  conditional whose scale is predicted from |y| by the hyperprior.
- `MeanScaleHyperprior` ("mbt2018-mean"): Minnen et al. 2018 without the
  autoregressive context; the hyperprior predicts mean and scale.
- `CheckerboardHyperprior` ("mbt2018-mean-checkerboard"): mbt2018-mean plus
  He et al. 2021's checkerboard context, decodable in two parallel passes.

All are variable-rate: one network serves the rate points `lmbdas`, each with
its own channel gain on the latents (gain units, Cui et al. 2021). A single
rate point is the special case of one λ. During training each example in a
batch draws a λ, so all of the compute trains one network.
"""

import math

import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import coding_passes
from tfc_lic import scale_grid
from tfc_lic import transforms

def median_offset(prior, bound=1024., points=64, rounds=4):
  """z's quantization offset under a NoisyDeepFactorized prior: the median of
  its base (tfc's offset heuristic), modulo 1.

  Found by a fixed-cost grid search on the base's CDF: `rounds` grids of
  `points` in [-bound, bound], then linear interpolation; |CDF - 1/2| < 1e-7
  at the result. tfc's own search (Adam, >100 dependent steps) took a tenth
  of each training step with the mixed proxy, and is off by ~1e-3.
  """
  base = prior.base
  channels = prior.batch_shape.num_elements()
  low = tf.fill([channels], -bound)
  high = tf.fill([channels], bound)
  grid = tf.linspace(0., 1., points)[:, None]
  for _ in range(rounds):
    step = (high - low) / (points - 1)
    below = tf.reduce_sum(
        tf.cast(base.cdf(low + (high - low) * grid) < .5, tf.float32), axis=0)
    low += step * tf.clip_by_value(below - 1., 0., points - 2.)
    high = low + step
  cdf_low, cdf_high = base.cdf(low), base.cdf(high)
  median = low + (.5 - cdf_low) / (cdf_high - cdf_low) * (high - low)
  return tf.stop_gradient(median - tf.round(median))


def _dtype_policy(precision):
  """The Keras dtype policy of transforms trained in `precision`."""
  if precision not in ("float32", "bfloat16"):
    raise ValueError(f"precision must be float32 or bfloat16, not {precision}")
  return "mixed_bfloat16" if precision == "bfloat16" else "float32"


class HyperpriorModel(tf.keras.Model):
  """Transforms, gain units and entropy models shared by both architectures.

  The latents the entropy model sees are y * gain[rate]; the synthesis sees
  y_hat * inverse_gain[rate]. Subclasses choose the hyper transforms and how
  their output becomes (loc, scale index).
  """

  # Training's quantization proxy (a training choice, not part of the config):
  # "noise" adds uniform noise everywhere; "mixed" takes the rates from the
  # noisy latents but feeds the syntheses the latents rounded as the codec
  # rounds them (around the predicted mean, straight-through gradient; tfc's
  # models/ms2020.py, Minnen & Singh 2020); "round" rounds everywhere, which
  # makes a step deterministic.
  proxy = "noise"

  def __init__(self, lmbdas=(0.0067,), num_filters=128, latent_channels=192,
               num_scales=96, scale_min=0.11, precision="float32",
               frozen_precision=None, finetuned_quantizers=(),
               hyper_filters=None, up_kernel="variable", **kwargs):
    super().__init__(**kwargs)
    self.lmbdas = tuple(float(l) for l in lmbdas)
    self.num_filters = int(num_filters)
    # Channels of the hyper-analysis and of z (default: num_filters), so that
    # the main transforms can be widened without touching the hyperprior.
    self.hyper_filters = int(hyper_filters or num_filters)
    self.latent_channels = int(latent_channels)
    self.num_scales = int(num_scales)
    self.scale_min = float(scale_min)
    # How the up-convolutions' kernels are parameterized: "variable" (the
    # kernel itself, as models up to v10 were trained) or "rdft" (as tfc
    # parameterizes the analysis's; see transforms.RDFTConv2DTranspose).
    if up_kernel not in ("variable", "rdft"):
      raise ValueError(f"up_kernel must be variable or rdft, not {up_kernel}")
    self.up_kernel = up_kernel
    self.precision = precision
    # What stage 2 freezes (analysis, hyper transforms, stage-1 synthesis) may
    # compute in another precision than what trains: stage 2 keeps it in
    # float32 so that its latents are the codec's, bit for bit.
    self.frozen_precision = frozen_precision or precision
    self.transform_dtype = _dtype_policy(precision)
    self.frozen_dtype = _dtype_policy(self.frozen_precision)
    self.analysis_transform = transforms.AnalysisTransform(
        num_filters, latent_channels, dtype=self.frozen_dtype)
    self.synthesis_transform = transforms.SynthesisTransform(
        num_filters, dtype=self.frozen_dtype, up_kernel=up_kernel)
    # Stage 2: one synthesis per quantizer it was finetuned for.
    self.finetuned_quantizers = tuple(finetuned_quantizers)
    self.quantizer_syntheses = {
        q: transforms.SynthesisTransform(
            num_filters, dtype=self.transform_dtype, name=f"synthesis_{q}",
            up_kernel=up_kernel)
        for q in self.finetuned_quantizers}
    self.hyper_analysis_transform = transforms.HyperAnalysisTransform(
        self.hyper_filters, activation=self.hyper_activation,
        dtype=self.frozen_dtype)
    self.hyper_synthesis_transform = self.make_hyper_synthesis()
    self.context = self.make_context()
    self.hyperprior = tfc.NoisyDeepFactorized(
        batch_shape=(self.hyper_filters,))
    # Quantization step ~ 1/sqrt(lambda) for MSE: start the gains there.
    reference = max(self.lmbdas)
    init = [[math.sqrt(l / reference)] * latent_channels for l in self.lmbdas]
    self.gain = tf.Variable(init, name="gain", dtype=tf.float32)
    self.inverse_gain = tf.Variable(
        [[1. / g for g in row] for row in init], name="inverse_gain",
        dtype=tf.float32)
    self.loss_metric = tf.keras.metrics.Mean(name="loss")
    self.bpp_metric = tf.keras.metrics.Mean(name="bpp")
    self.mse_metric = tf.keras.metrics.Mean(name="mse")
    self.psnr_metric = tf.keras.metrics.Mean(name="psnr")
    # One forward pass builds the layers and gives Keras the input spec it
    # needs to save the model inside a SavedModel. With the noise proxy: the
    # rounding path would estimate z's quantization offset eagerly (~3.5 s).
    self(tf.zeros([1, 64, 64, 3]), training=True)
    for synthesis in self.quantizer_syntheses.values():
      synthesis(tf.zeros([1, 4, 4, latent_channels]))

  hyper_activation = staticmethod(tf.nn.relu)

  def make_hyper_synthesis(self):
    raise NotImplementedError

  # The order of the codec's passes over the latents (see coding_passes).
  coding_scheme = "raster"

  def make_context(self):
    """The context model of y's entropy parameters (None: hyperprior only)."""
    return None

  def pass_parameters(self, hyper, decoded, exact=False):
    """(loc, scale_index) of a coding pass from the hyperprior's and the
    latents decoded so far (zero where not yet decoded)."""
    del decoded, exact
    return hyper

  def entropy_parameters(self, params):
    """(loc, scale_index) of y from the hyper-synthesis output."""
    raise NotImplementedError

  def hyper_input(self, y):
    """What the hyper-analysis sees."""
    raise NotImplementedError

  @property
  def num_rates(self):
    return len(self.lmbdas)

  def get_config(self):
    return dict(
        lmbdas=list(self.lmbdas), num_filters=self.num_filters,
        latent_channels=self.latent_channels,
        hyper_filters=self.hyper_filters, num_scales=self.num_scales,
        scale_min=self.scale_min, precision=self.precision,
        frozen_precision=self.frozen_precision,
        finetuned_quantizers=list(self.finetuned_quantizers),
        up_kernel=self.up_kernel)

  def entropy_model(self, compression=False):
    """Gaussian conditional on y (noise proxy when training)."""
    return tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, self.num_scales, scale_grid.scale_fn(self.scale_min),
        coding_rank=3, compression=compression, bottleneck_dtype=tf.float32)

  def side_entropy_model(self, compression=False):
    """Factorized prior on z; with `compression`, its range-coding tables.

    tfc builds the tables with a tail search of ~1,800 steps, slow in eager
    mode (5-15 s); they are built traced instead, and the coding model holds
    the tables only (not the prior, so it cannot estimate bits).
    """
    if not compression:
      return tfc.ContinuousBatchedEntropyModel(
          self.hyperprior, coding_rank=3, bottleneck_dtype=tf.float32,
          quantization_offset=median_offset(self.hyperprior))

    @tf.function
    def tables():
      model = tfc.ContinuousBatchedEntropyModel(
          self.hyperprior, coding_rank=3, compression=True, stateless=True,
          bottleneck_dtype=tf.float32)
      return model.cdf, model.cdf_offset, model.quantization_offset

    cdf, cdf_offset, quantization_offset = tables()
    return tfc.ContinuousBatchedEntropyModel(
        prior_shape=self.hyperprior.batch_shape, coding_rank=3,
        compression=True, cdf=cdf, cdf_offset=cdf_offset,
        quantization_offset=quantization_offset, bottleneck_dtype=tf.float32)

  def interpolate_rates(self, table, rate):
    """Rows of `table` [num_rates, ...] at a (possibly fractional) rate index.

    Integer rates pick a trained row; fractional ones interpolate the
    magnitudes geometrically between their neighbours. `rate` has shape [B]
    (or scalar); the result [B, ...] (or [...]).
    """
    table = tf.convert_to_tensor(table, tf.float32)
    rate = tf.clip_by_value(
        tf.cast(rate, tf.float32), 0., float(self.num_rates - 1))
    low = tf.cast(tf.floor(rate), tf.int32)
    high = tf.minimum(low + 1, self.num_rates - 1)
    t = tf.reshape(rate - tf.cast(low, tf.float32), tf.concat(
        [tf.shape(rate), tf.ones([table.shape.rank - 1], tf.int32)], 0))
    log_low = tf.math.log(tf.abs(tf.gather(table, low)))
    log_high = tf.math.log(tf.abs(tf.gather(table, high)))
    return tf.exp((1. - t) * log_low + t * log_high)

  def rate_gains(self, rate):
    """Gain and inverse gain for a rate index [B] (or scalar), broadcasting
    against [B, H, W, M] (see interpolate_rates)."""
    return tuple(self.interpolate_rates(table, rate)[..., None, None, :]
                 for table in (self.gain, self.inverse_gain))

  def rate_lambda(self, rate):
    """λ of a rate index (see interpolate_rates): the training's trade-off."""
    return self.interpolate_rates(self.lmbdas, rate)

  def analyze(self, x, rate):
    """Image [B, H, W, 3] in [0, 255] -> gained latents y (float32) and z."""
    y = self.latents(x, rate)
    return y, self.hyper_latents(y)

  def latents(self, x, rate):
    """Image [B, H, W, 3] in [0, 255] -> gained latents y (float32)."""
    gain, _ = self.rate_gains(rate)
    return tf.cast(self.analysis_transform(x), tf.float32) * gain

  def hyper_latents(self, y):
    """Gained latents y -> hyper-latents z (float32)."""
    return tf.cast(self.hyper_analysis_transform(self.hyper_input(y)),
                   tf.float32)

  def hyper_decode(self, z_hat, y_shape, exact=False):
    """Decoded z -> (loc, scale_index) cropped to the latent shape.

    `exact` is the codec's path: the hyper-synthesis runs in float64 so that
    every machine picks the same coding tables (see HyperSynthesisTransform).
    """
    synthesis = self.hyper_synthesis_transform
    params = synthesis.call_float64(z_hat) if exact else synthesis(z_hat)
    loc, scale_index = self.entropy_parameters(tf.cast(params, tf.float32))
    crop = lambda t: t[:, :y_shape[0], :y_shape[1], :]
    return crop(loc), crop(scale_index)

  def receptive_radii(self):
    """How far an output of each transform sees, in its input's positions:
    pixels (analysis), latents (hyper-analysis, synthesis: the widest of
    the quantizers'), hyper-latents (hyper-synthesis)."""
    radius = lambda layer: transforms.receptive_radius(layer.layers)
    return dict(
        analysis=radius(self.analysis_transform),
        hyper_analysis=radius(self.hyper_analysis_transform),
        hyper_synthesis=radius(self.hyper_synthesis_transform),
        synthesis=max(radius(s) for s in [self.synthesis_transform] + list(
            self.quantizer_syntheses.values())))

  def synthesis_for(self, quantizer):
    """The synthesis finetuned for `quantizer` (stage 2), else stage 1's."""
    return self.quantizer_syntheses.get(quantizer, self.synthesis_transform)

  def synthesize(self, y_hat, rate, x_shape, synthesis=None, training=False):
    """Gained, quantized latents -> image, cropped to `x_shape` (float)."""
    _, inverse_gain = self.rate_gains(rate)
    synthesis = synthesis or self.synthesis_transform
    x_hat = synthesis(y_hat * inverse_gain, training=training)
    return tf.cast(x_hat[:, :x_shape[0], :x_shape[1], :], tf.float32)

  def call(self, x, rate=None, training=False):
    """Forward pass: per-example bpp, mse, and the loss terms.

    `rate` is the λ index per example; defaults to the last (highest) rate.
    With `training`, rates come from the noise proxy and `proxy` says what
    the syntheses see; without it everything is rounded, as in the codec.
    """
    x = tf.cast(x, tf.float32)
    batch = tf.shape(x)[0]
    if rate is None:
      rate = tf.fill([batch], self.num_rates - 1)
    mixed = training and self.proxy == "mixed"
    y, z = self.analyze(x, rate)
    side_entropy_model = self.side_entropy_model()
    z_tilde, side_bits = side_entropy_model(z, training=training)
    if mixed:
      z_tilde = side_entropy_model.quantize(z)
    y_tilde, bits = self.latent_bits(
        y, self.hyper_decode(z_tilde, tf.shape(y)[1:3]), training, mixed)
    x_hat = self.synthesize(y_tilde, rate, tf.shape(x)[1:3], training=training)
    num_pixels = tf.cast(tf.reduce_prod(tf.shape(x)[1:3]), tf.float32)
    bpp = (bits + side_bits) / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
    lmbda = tf.gather(tf.constant(self.lmbdas), tf.cast(rate, tf.int32))
    loss = tf.reduce_mean(bpp + lmbda * mse)
    return loss, bpp, mse

  def latent_bits(self, y, hyper, training, mixed):
    """(y_tilde for the synthesis, bits of y) under the hyperprior's
    (loc, scale_index); `mixed`: the synthesis sees y rounded."""
    loc, scale_index = hyper
    entropy_model = self.entropy_model()
    y_tilde, bits = entropy_model(y, scale_index, loc=loc, training=training)
    if mixed:
      y_tilde = entropy_model.quantize(y, loc=loc)
    return y_tilde, bits

  def sample_rates(self, batch):
    return tf.random.uniform([batch], 0, self.num_rates, dtype=tf.int32)

  def train_step(self, x):
    """One step on this replica's crops (gradients are summed over replicas,
    so the loss is divided by their number)."""
    rate = self.sample_rates(tf.shape(x)[0])
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    with tf.GradientTape() as tape:
      loss, bpp, mse = self(x, rate, training=self.proxy != "round")
      scaled_loss = loss / replicas
    variables = self.trainable_variables
    gradients = tape.gradient(scaled_loss, variables)
    self.optimizer.apply_gradients(zip(gradients, variables))
    return self.update_metrics(loss, bpp, mse)

  def test_step(self, x):
    """Evaluates every rate point on the same images (actual rounding)."""
    x = tf.cast(x, tf.float32)
    batch = tf.shape(x)[0]
    for r in range(self.num_rates):
      loss, bpp, mse = self(x, tf.fill([batch], r), training=False)
      self.update_metrics(loss, bpp, mse)
    return {m.name: m.result() for m in self.metrics}

  def update_metrics(self, loss, bpp, mse):
    self.loss_metric.update_state(loss)
    self.bpp_metric.update_state(bpp)
    self.mse_metric.update_state(mse)
    self.psnr_metric.update_state(
        10. * tf.math.log(255. ** 2 / tf.maximum(mse, 1e-10)) / math.log(10.))
    return {m.name: m.result() for m in self.metrics}

  @property
  def metrics(self):
    return [self.loss_metric, self.bpp_metric, self.mse_metric,
            self.psnr_metric]

  def compile(self, **kwargs):
    super().compile(loss=None, metrics=None, **kwargs)

  def predict_step(self, x):
    raise NotImplementedError("Use compress/decompress or the latent codecs.")


class ScaleHyperprior(HyperpriorModel):
  """bmshj2018: zero-mean Gaussian, scale from the hyperprior on |y|."""

  def make_hyper_synthesis(self):
    return transforms.HyperSynthesisTransform(
        self.hyper_filters, self.hyper_filters, self.latent_channels,
        dtype=self.frozen_dtype, up_kernel=self.up_kernel)

  def hyper_input(self, y):
    return tf.abs(y)

  def entropy_parameters(self, params):
    return tf.zeros_like(params), params


class MeanScaleHyperprior(HyperpriorModel):
  """mbt2018-mean: Gaussian with mean and scale from the hyperprior."""

  hyper_activation = staticmethod(tf.nn.leaky_relu)

  def make_hyper_synthesis(self):
    return transforms.HyperSynthesisTransform(
        self.latent_channels, self.latent_channels * 3 // 2,
        2 * self.latent_channels, activation=tf.nn.leaky_relu,
        dtype=self.frozen_dtype, up_kernel=self.up_kernel)

  def hyper_input(self, y):
    return y

  def entropy_parameters(self, params):
    loc, scale_index = tf.split(params, 2, axis=-1)
    return loc, scale_index


class CheckerboardHyperprior(MeanScaleHyperprior):
  """mbt2018-mean with a checkerboard context (He et al. 2021).

  The anchors (row + column even) are coded from the hyperprior, then the
  other half from the hyperprior and the decoded anchors: two passes, each
  parallel over its positions.
  """

  def make_context(self):
    context = transforms.CheckerboardContext(self.latent_channels,
                                             dtype=self.frozen_dtype)
    # Built here, not inside the model's first call, so that its variable
    # names (part of the model id) do not carry the model instance's name.
    m = self.latent_channels
    context(tf.zeros([1, 1, 1, 2 * m]), tf.zeros([1, 1, 1, m]))
    return context

  coding_scheme = "checkerboard"

  def context_parameters(self, hyper, anchors, exact=False):
    """(loc, scale_index) from the hyperprior's and the anchors' latents
    (`exact`: the codec's float64 path)."""
    hyper = tf.concat(hyper, -1)
    if exact:
      return self.entropy_parameters(self.context.call_float64(hyper, anchors))
    return self.entropy_parameters(self.context(hyper, anchors))

  def pass_parameters(self, hyper, decoded, exact=False):
    return self.context_parameters(hyper, decoded, exact)

  def latent_bits(self, y, hyper, training, mixed):
    """Anchors first under their own parameters; the context sees them as the
    synthesis does (noisy, or rounded); then every latent's bits under the
    parameters of its pass (rates from an independent noise draw)."""
    entropy_model = self.entropy_model()
    shape = tf.shape(y)
    anchor = coding_passes.checkerboard(shape[1], shape[2])
    loc_a, scale_a = self.context_parameters(hyper, tf.zeros_like(y))
    if training and not mixed:
      y_anchor, _ = entropy_model(y, scale_a, loc=loc_a, training=True)
    else:
      y_anchor = entropy_model.quantize(y, loc=loc_a)
    y_anchor *= anchor
    loc_n, scale_n = self.context_parameters(hyper, y_anchor)
    loc = anchor * loc_a + (1. - anchor) * loc_n
    scale_index = anchor * scale_a + (1. - anchor) * scale_n
    y_tilde, bits = entropy_model(y, scale_index, loc=loc, training=training)
    if mixed:
      y_tilde = entropy_model.quantize(y, loc=loc)
    elif training:
      y_tilde = y_anchor + (1. - anchor) * y_tilde
    return y_tilde, bits


ARCHITECTURES = {
    "bmshj2018": ScaleHyperprior,
    "mbt2018-mean": MeanScaleHyperprior,
    "mbt2018-mean-checkerboard": CheckerboardHyperprior,
}


def create_model(architecture, **config):
  """Builds a model by architecture name (a key of ARCHITECTURES)."""
  if architecture not in ARCHITECTURES:
    raise ValueError(f"unknown architecture {architecture!r}; "
                     f"choose from {sorted(ARCHITECTURES)}")
  return ARCHITECTURES[architecture](**config)
