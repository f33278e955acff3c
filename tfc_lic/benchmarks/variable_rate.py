"""A variable-rate network against single-rate ones at equal compute.

One network trained on six λ and one trained on one of them (PROBE), same
seed, data and steps, both validated at PROBE along the way: is one
variable-rate model better than six single-rate models that share its
compute (each with a sixth of its steps)?
"""

import time

import numpy as np
import tensorflow as tf

from tfc_lic import data
from tfc_lic import plotting
from tfc_lic import precision
from tfc_lic.benchmarks import harness
from tfc_lic.benchmarks import training_speed

LMBDAS = [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]
PROBE = 0.013  # The λ both networks are validated at.
VARIANTS = [
    dict(name=f"{name}, N=64 M=96, 128px x 8", lmbdas=lmbdas, patch=128,
         batch=8, num_filters=64, latent_channels=96, learning_rate=3e-4)
    for name, lmbdas in (("variable rate (6 λ)", LMBDAS),
                         (f"single rate (λ={PROBE})", [PROBE]))]


def single_rate_share(steps):
  """Steps each of six single-rate models gets of a variable-rate run's."""
  return steps // len(LMBDAS)


def train(variant, dataset, validation, steps):
  """The worker: trains one of VARIANTS for `steps`, validating at PROBE
  after each single-rate model's share of them."""
  model = training_speed.seeded_model(variant, variant["lmbdas"],
                                      precision.resolve("auto"))
  step = tf.function(model.train_step)
  iterator = iter(data.crops(dataset, variant["patch"], variant["batch"],
                             seed=0))
  batches = data.crops(validation, 256, 8, training=False)
  rate = variant["lmbdas"].index(PROBE)

  @tf.function
  def evaluate(x):
    return model(x, tf.fill([tf.shape(x)[0]], rate), training=False)

  def validate():
    _, bpp, mse = (np.concatenate(t) for t in zip(*(
        [np.atleast_1d(v.numpy()) for v in evaluate(x)] for x in batches)))
    return harness.rd_row(PROBE, bpp, mse)

  points = []
  start = time.perf_counter()
  for i in range(1, steps + 1):
    step(next(iterator))
    if i % single_rate_share(steps) == 0:
      points.append(dict(step=i, **validate()))
  return dict(variant, points=points, seconds=time.perf_counter() - start)


def run(output_dir, dataset, validation, steps):
  """Both VARIANTS for `steps` on `dataset`, one after the other, each in a
  fresh process; writes variable_rate.{json,png}."""
  rows = [harness.run_worker(train, variant=v, dataset=dataset,
                             validation=validation, steps=steps)
          for v in VARIANTS]
  print(f"\nvalidation at λ={PROBE} (loss = bpp + λ·MSE)")
  print(f"{'network':32s} {'steps':>6s} {'loss':>7s} {'bpp':>7s} {'PSNR':>6s}")
  for row in rows:
    for p in row["points"]:
      print(f"{row['name'][:32]:32s} {p['step']:6d} {p['loss']:7.4f} "
            f"{p['bpp']:7.4f} {p['psnr']:6.2f}")
  variable, single = rows
  share = single_rate_share(steps)
  summary = dict(
      variable_rate_loss=variable["points"][-1]["loss"],
      single_rate_loss_same_compute=next(
          p["loss"] for p in single["points"] if p["step"] == share),
      single_rate_loss_same_steps=single["points"][-1]["loss"])
  print(f"\nvariable rate, {steps} steps: {summary['variable_rate_loss']:.4f}"
        f"; single rate with a sixth of the steps ({share}): "
        f"{summary['single_rate_loss_same_compute']:.4f}; with all of them: "
        f"{summary['single_rate_loss_same_steps']:.4f}")
  fig = plotting.new_figure(6, 4)
  ax = fig.add_subplot()
  for row in rows:
    ax.plot([p["step"] for p in row["points"]],
            [p["loss"] for p in row["points"]], "o-", label=row["name"])
  ax.set_xlabel("training steps")
  ax.set_ylabel(f"validation loss at λ={PROBE}")
  ax.legend()
  harness.write(output_dir, "variable_rate",
                dict(rows=rows, summary=summary, probe_lmbda=PROBE,
                     native_bf16=precision.has_fast_bfloat16()), fig)
  return rows, summary
