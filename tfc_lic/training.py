"""Resumable training loop around a model's `train_step`.

A run lives in one directory:
  config.json     architecture and model configuration (to rebuild the model)
  checkpoints/    model + optimizer + step + wall time (tf.train.CheckpointManager)
  logs/           TensorBoard scalars
  history.jsonl   one line per log/validation event (kept with shipped models)
  weights/        the weights to ship, no optimizer state (tf.train.Checkpoint):
                  the averaged weights when averaging is on; rewritten with
                  every checkpoint, so exports of a stopped run are current

Running the same command again resumes from the newest checkpoint with the
same step counter and optimizer state. SIGTERM/SIGINT write a checkpoint
before exiting; after SIGKILL at most the steps since the last one are lost.
On a machine without the run directory, `Trainer.continue_from` carries on
from committed compact weights and history: the step counter, wall time and
history go on, the optimizer state starts afresh.

With `average_decay`, the trainer also keeps an exponential moving average of
the trainable weights (Polyak averaging). At a constant learning rate the
weights wander in a noise ball; their average sits nearer its centre, which
is what annealing the rate buys, without giving up the high rate. Validation
reports both; weights/ (what exports and stage 2 read) holds the average.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import signal
import time

from absl import logging
import numpy as np
import tensorflow as tf

from tfc_lic import distribute
from tfc_lic import models
from tfc_lic import parameters
from tfc_lic import widening


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss became NaN)."""


def learning_rate_schedule(learning_rate, steps, decay_start=0.8,
                           final_factor=0.1):
  """Constant rate, then exponential decay to `final_factor` over the tail.

  Stage-1 training here is short, so the rate stays high for most of it and
  only the last (1 - decay_start) of the steps anneal.
  """
  start = int(steps * decay_start)
  length = max(steps - start, 1)

  def schedule(step):
    progress = tf.clip_by_value(
        (tf.cast(step, tf.float32) - start) / length, 0., 1.)
    return learning_rate * tf.pow(final_factor, progress)

  return schedule


class _Schedule(tf.keras.optimizers.schedules.LearningRateSchedule):
  """`fn` of the run's step: the optimizer's own count plus `initial_step`."""

  def __init__(self, fn, initial_step):
    self.fn = fn
    self.initial_step = initial_step

  def __call__(self, step):
    return self.fn(tf.cast(step, tf.int64) + self.initial_step)

  def get_config(self):
    return {}


def load_config(path):
  with open(path) as f:
    return json.load(f)


def _without_precision(config):
  return {k: v for k, v in config.items() if k != "precision"}


def init_run_dir(train_dir, config):
  """Creates a run directory with config.json, or checks that it matches.

  The compute precision is not part of the match: a run started in bf16
  resumes in float32 on a machine without native bf16, and vice versa.
  """
  if os.path.exists(train_dir) and not os.path.isdir(train_dir):
    raise ValueError(f"{train_dir} is a file, not a run folder")
  os.makedirs(train_dir, exist_ok=True)
  path = os.path.join(train_dir, "config.json")
  if os.path.exists(path):
    saved = load_config(path)
    if _without_precision(saved) != _without_precision(config):
      raise ValueError(f"{train_dir} holds a run with a different model "
                       f"config ({saved}); use another train_dir")
  else:
    with open(path, "w") as f:
      json.dump(config, f, indent=1)


def model_from_config(config):
  """Builds a model from a config dict {"architecture": ..., **kwargs}."""
  config = dict(config)
  return models.create_model(config.pop("architecture"), **config)


COMPACT_WEIGHTS = "weights.npz"


def save_compact_weights(model, path):
  """Writes the model's variables as float16 in a .npz (shipped milestones).

  Half the size of float32 at no measurable RD cost; variables are stored in
  `model.variables` order, which the config fixes.
  """
  arrays = {f"{i:04d}": v.numpy().astype(np.float16)
            if v.dtype.is_floating else v.numpy()
            for i, v in enumerate(model.variables)}
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  with open(path, "wb") as f:
    f.write(buffer.getvalue())


def _load_compact_weights(model, path):
  with np.load(path) as arrays:
    values = [arrays[k] for k in sorted(arrays.files)]
  variables = model.variables
  if len(values) != len(variables) or any(
      tuple(v.shape) != a.shape for v, a in zip(variables, values)):
    raise ValueError(f"{path} does not fit this model's config")
  for variable, value in zip(variables, values):
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def _structure(config):
  """The config values that set the variables: widths, kernel parameters."""
  return (config["num_filters"], config["latent_channels"],
          config.get("hyper_filters") or config["num_filters"],
          config.get("up_kernel", "variable"))


def config_of(path):
  """The config.json of the run or model that `path` (or its parent) is."""
  path = path.rstrip("/")
  for folder in (path, os.path.dirname(path),
                 os.path.dirname(os.path.dirname(path))):
    candidate = os.path.join(folder, "config.json")
    if folder and os.path.isfile(candidate):
      return load_config(candidate)
  return None


def load_weights(model, path):
  """Restores model weights from a run dir, weights dir, checkpoint prefix or
  compact .npz (see save_compact_weights). Weights of a narrower model of the
  same architecture (per its config.json) warm-start the wider `model`, and
  up-convolution kernels are converted to `model`'s parameterization.
  The metrics start afresh: saved weights hold their running sums too."""
  found = _load_or_widen(model, path)
  for metric in model.metrics:
    metric.reset_state()
  return found


def _load_or_widen(model, path):
  source_config = config_of(path)
  if not source_config or (
      _structure(source_config) == _structure(model.get_config())):
    return _load_weights(model, path)
  if source_config["latent_channels"] != model.latent_channels:
    # The entropy parameters interleave per latent ([loc | scale]), which
    # a leading-block copy would mix up.
    raise ValueError(f"{path} has {source_config['latent_channels']} "
                     f"latent channels, this model {model.latent_channels}:"
                     " widening keeps the latents as they are")
  source_config = dict(source_config, precision="float32")
  source = model_from_config(source_config)
  found = _load_weights(source, path)
  if source.up_kernel != model.up_kernel:
    converted = model_from_config(dict(source_config,
                                       up_kernel=model.up_kernel))
    parameters.reparameterize(converted, source)
    source = converted
  widening.widen(model, source)
  return found


def _load_weights(model, path):
  for candidate in (path, os.path.join(path, COMPACT_WEIGHTS)):
    if candidate.endswith(".npz") and os.path.isfile(candidate):
      _load_compact_weights(model, candidate)
      return candidate
  checkpoint = tf.train.Checkpoint(model=model)
  candidates = [path, os.path.join(path, "weights"),
                os.path.join(path, "checkpoints")]
  for candidate in candidates:
    prefix = (tf.train.latest_checkpoint(candidate)
              if os.path.isdir(candidate) else candidate)
    if prefix and tf.io.gfile.exists(prefix + ".index"):
      checkpoint.read(prefix).expect_partial()
      return prefix
  raise FileNotFoundError(f"no weights found at {path}")


def weights_fingerprint(model):
  """SHA-256 (hex, 16 digits) of the trainable weights: equal on all workers."""
  digest = hashlib.sha256()
  for v in model.trainable_variables:
    digest.update(np.ascontiguousarray(v.numpy()).tobytes())
  return digest.hexdigest()[:16]


def save_weights(model, directory):
  """Writes the model's weights to `directory` (with its optimizer's state
  once compiled: Keras tracks it, so a run can be continued from them)."""
  checkpoint = tf.train.Checkpoint(model=model)
  tf.io.gfile.makedirs(directory)
  prefix = checkpoint.write(os.path.join(directory, "weights"))
  with open(os.path.join(directory, "checkpoint"), "w") as f:
    f.write(f'model_checkpoint_path: "{os.path.basename(prefix)}"\n')
  return prefix


def _has_averages(prefix):
  """Whether a training checkpoint holds averaged weights."""
  return any(name.startswith("averages/")
             for name, _ in tf.train.list_variables(prefix))


def average_decay_at(decay, step):
  """The averaging decay at training step `step` (counted from step 0).

  Ramped up as (1 + t) / (10 + t) (tf.train.ExponentialMovingAverage's
  num_updates rule), so that a new run averages over about its last tenth
  instead of dragging in its random start. A run continued from committed
  weights (already an average) gets the full decay at once: a fresh Adam
  wanders off them at first, and a ramp would average only that.
  """
  t = tf.cast(step, tf.float32)
  return tf.minimum(tf.cast(decay, tf.float32), (1. + t) / (10. + t))


def _format(values):
  """'loss 1.2345 bpp 0.4567 psnr 30.12' from a metrics dict."""
  return " ".join(f"{k} {float(v):.4f}" for k, v in values.items())


class Trainer:
  """Trains `model` in `train_dir`, resuming from its newest checkpoint."""

  def __init__(self, model, train_dir, steps, learning_rate=1e-4,
               decay_start=0.8, checkpoint_every=500, log_every=50,
               validate_every=1000, max_checkpoints=3, weights_of=None,
               clip_norm=None, average_decay=None, strategy=None):
    # `model` must have been built in `strategy.scope()`.
    self.strategy = strategy or tf.distribute.get_strategy()
    self.chief = distribute.is_chief(self.strategy)
    self.model = model
    # What the compact final weights hold (default: the trained model).
    self.weights_of = weights_of or model
    self.train_dir = train_dir
    self.steps = int(steps)
    self.checkpoint_every = checkpoint_every
    self.log_every = log_every
    self.validate_every = validate_every
    self.schedule = learning_rate_schedule(learning_rate, steps, decay_start)
    with self.strategy.scope():
      # Steps done before the optimizer existed (continue_from); kept apart
      # from the optimizer's count so that Adam's bias correction restarts.
      self.initial_step = tf.Variable(0, dtype=tf.int64, trainable=False)
      self.optimizer = tf.keras.optimizers.Adam(
          learning_rate=_Schedule(self.schedule, self.initial_step),
          global_clipnorm=clip_norm)
      model.compile(optimizer=self.optimizer)
      self.wall_time = tf.Variable(0., dtype=tf.float64, trainable=False)
      # Moving averages of model.trainable_variables, in that order.
      self.average_decay = average_decay
      self.averages = [tf.Variable(v, trainable=False)
                       for v in model.trainable_variables] if (
                           average_decay) else []
    objects = dict(model=model, optimizer=self.optimizer,
                   wall_time=self.wall_time, initial_step=self.initial_step)
    # Restores checkpoints written before averaging was turned on.
    self._checkpoint_without_averages = tf.train.Checkpoint(**objects)
    self.checkpoint = (tf.train.Checkpoint(averages=self.averages, **objects)
                       if self.averages else
                       self._checkpoint_without_averages)
    # Every worker of a cluster saves (saving reads synchronised variables
    # collectively); only the chief's copy is kept.
    self.checkpoint_dir = os.path.join(train_dir, "checkpoints")
    self.scratch_dir = None if self.chief else os.path.join(
        train_dir, f"workertemp_{distribute.task(self.strategy)[1]}")
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self.scratch_dir or train_dir,
                                      "checkpoints"),
        max_to_keep=max_checkpoints)
    self.writer = (tf.summary.create_file_writer(os.path.join(train_dir, "logs"))
                   if self.chief else tf.summary.create_noop_writer())
    self._stop_signal = None
    self._test_step = None

  @property
  def step(self):
    return int(self.initial_step.numpy() + self.optimizer.iterations.numpy())

  def continue_from(self, path):
    """Starts this (empty) run where the run saved at `path` stopped.

    `path` holds weights (see load_weights) and that run's history.jsonl; the
    history is copied and the step counter and wall time go on from its last
    line. Returns the step.
    """
    if self.latest_checkpoint:
      raise TrainingError(f"{self.train_dir} already has checkpoints; it "
                          "resumes from them")
    with open(os.path.join(path, "history.jsonl")) as f:
      lines = f.read().splitlines()
    last = json.loads(lines[-1]) if lines else {"step": 0, "wall_time": 0.}
    load_weights(self.model, path)
    # A run's weights/ also hold its Adam state (the compiled model tracks
    # its optimizer), step count included: the history's step is the total.
    self.initial_step.assign(last["step"] - self.optimizer.iterations)
    self.wall_time.assign(last["wall_time"])
    if self.chief:
      with open(os.path.join(self.train_dir, "history.jsonl"), "w") as f:
        f.write("".join(line + "\n" for line in lines))
    return self.step

  @property
  def latest_checkpoint(self):
    """The newest checkpoint of the run (the chief's), or None."""
    return tf.train.latest_checkpoint(self.checkpoint_dir)

  def restore(self):
    """Resumes from the newest checkpoint; returns its step (0 if none).

    Averages start from the current weights where the checkpoint has none (a
    new run, or one trained before averaging was on).
    """
    latest = self.latest_checkpoint
    averaged = bool(latest) and _has_averages(latest)
    if latest:
      checkpoint = (self.checkpoint if averaged or not self.averages else
                    self._checkpoint_without_averages)
      checkpoint.restore(latest).assert_existing_objects_matched()
      logging.info("resumed from %s at step %d", latest, self.step)
    if self.averages and not averaged:
      for average, variable in zip(self.averages,
                                   self.model.trainable_variables):
        average.assign(variable)
    return self.step

  def _update_averages(self):
    """One averaging step (cross-replica context, after the optimizer's)."""
    decay = average_decay_at(self.average_decay, self.initial_step +
                             self.optimizer.iterations)
    for average, variable in zip(self.averages, self.model.trainable_variables):
      average.assign_sub((1. - decay) * (average - variable))

  @contextlib.contextmanager
  def averaged(self):
    """Swaps the averaged weights into the model for the `with` block."""
    if not self.averages:
      yield
      return
    variables = self.model.trainable_variables
    current = [tf.identity(v) for v in variables]
    for variable, average in zip(variables, self.averages):
      variable.assign(average)
    try:
      yield
    finally:
      for variable, value in zip(variables, current):
        variable.assign(value)

  def save(self):
    """Writes a checkpoint and the weights to ship (see the module doc)."""
    path = self.manager.save(checkpoint_number=self.step)
    with self.averaged():
      save_weights(self.weights_of, os.path.join(
          self.scratch_dir or self.train_dir, "weights"))
    if self.chief:
      logging.info("checkpoint %s", path)
    else:
      tf.io.gfile.rmtree(self.scratch_dir)
    return path

  def _record(self, kind, values):
    if not self.chief:
      return
    with self.writer.as_default(step=self.step):
      for name, value in values.items():
        tf.summary.scalar(f"{kind}/{name}", value)
    line = dict(kind=kind, step=self.step,
                wall_time=round(float(self.wall_time.numpy()), 1),
                **{k: round(float(v), 5) for k, v in values.items()})
    with open(os.path.join(self.train_dir, "history.jsonl"), "a") as f:
      f.write(json.dumps(line) + "\n")

  def _evaluate(self, dataset):
    """The metrics over `dataset`, or None if a stop signal came first."""
    for metric in self.model.metrics:
      metric.reset_state()
    if self._test_step is None:
      self._test_step = tf.function(
          lambda batch: self.strategy.run(self.model.test_step, args=(batch,)))
    for batch in dataset:
      if self._stop_signal is not None:
        break
      self._test_step(batch)
    values = None if self._stop_signal is not None else {
        m.name: m.result().numpy() for m in self.model.metrics}
    for metric in self.model.metrics:  # Training logs start afresh.
      metric.reset_state()
    return values

  def validate(self, dataset):
    """Validates the weights, and their average ("validation_average") once
    this run has averaged a step. A stop signal cuts it short, unrecorded: a
    full validation takes minutes, and the run checkpoints the step anyway."""
    averaged = self.averages and self.optimizer.iterations.numpy() > 0
    kinds = ["validation"] + (["validation_average"] if averaged else [])
    for kind in kinds:
      with (self.averaged() if kind == "validation_average" else
            contextlib.nullcontext()):
        values = self._evaluate(dataset)
      if values is None:
        logging.warning("%s of step %d interrupted, not recorded", kind,
                        self.step)
        return
      self._record(kind, values)
      if self.chief:
        print(f"{kind} step {self.step}: {_format(values)}", flush=True)

  def _handle_signal(self, signum, frame):
    del frame
    self._stop_signal = signum

  def fit(self, train_dataset, validation_dataset=None):
    """Trains until `steps`; returns the final training metrics."""
    self.restore()
    if self.step >= self.steps:
      logging.info("already at step %d >= %d", self.step, self.steps)
      return {}
    previous = [signal.signal(s, self._handle_signal)
                for s in (signal.SIGTERM, signal.SIGINT)]
    # Built eagerly: Keras 2.14's Adam can fail to build its slots inside a
    # traced step for some tfc.SignalConv2D variables.
    with self.strategy.scope():
      self.optimizer.build(self.model.trainable_variables)

    @tf.function
    def train_step(iterator):
      self.strategy.run(self.model.train_step, args=(next(iterator),))
      if self.averages:
        self._update_averages()
      return {m.name: m.result() for m in self.model.metrics}

    iterator = iter(train_dataset)
    values = {}
    try:
      start_step = self.step
      if start_step == 0 and validation_dataset is not None and (
          self.validate_every):
        self.validate(validation_dataset)  # The baseline (e.g. of stage 2).
      tick, tick_step = time.time(), self.step
      while self.step < self.steps and self._stop_signal is None:
        began = time.time()
        try:
          values = train_step(iterator)
        except tf.errors.OutOfRangeError:
          # The training data repeat forever, unless no image was readable.
          raise TrainingError("the training data gave no images (are any "
                              "of its files readable?)") from None
        self.wall_time.assign_add(time.time() - began)
        step = self.step
        logs = step % self.log_every == 0 or step == self.steps
        saves = step % self.checkpoint_every == 0 or step == self.steps
        if logs or saves or self._stop_signal is not None:
          # The metrics average every step since the last log: a NaN in any
          # of them stops the run before it can reach a checkpoint.
          values = {k: float(v) for k, v in values.items()}
          if not all(math.isfinite(v) for v in values.values()):
            raise TrainingError(
                f"non-finite loss at step {step} ({_format(values)}); the "
                f"last good checkpoint is {self.latest_checkpoint}")
        if logs:
          for metric in self.model.metrics:
            metric.reset_state()
          rate = (step - tick_step) / max(time.time() - tick, 1e-9)
          eta = (self.steps - step) / max(rate, 1e-9)
          if self.chief:
            print(f"step {step}/{self.steps} {_format(values)} "
                  f"{rate:.3f} steps/s ETA {eta / 60:.1f} min", flush=True)
          values["learning_rate"] = self.schedule(step)
          self._record("train", values)
          tick, tick_step = time.time(), step
        if saves:
          self.save()
        if (validation_dataset is not None and self.validate_every and
            (step % self.validate_every == 0 or step == self.steps)):
          self.validate(validation_dataset)
      if self._stop_signal is not None and self.step > start_step:
        self.save()
    finally:
      for s, handler in zip((signal.SIGTERM, signal.SIGINT), previous):
        signal.signal(s, handler)
    if self._stop_signal is not None:
      raise TrainingError(f"stopped by signal {self._stop_signal} at step "
                          f"{self.step}; run again to resume")
    return values
