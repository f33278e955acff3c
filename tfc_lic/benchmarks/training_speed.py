"""Training speed of variants of the shipped recipe, and what bf16 costs.

Each variant trains in a fresh process, one after the other in one run, so
that their ratios are measured side by side on the same machine and load.
`throughput` times the shipped config (mixed proxy, 256²×8) in float32 with
and without oneDNN and in bf16, wider and on smaller patches; `precision`
trains two small networks from one seed in float32 and bf16 to compare the
loss reached at equal steps.
"""

import os

import numpy as np
import tensorflow as tf

from tfc_lic import data
from tfc_lic import models
from tfc_lic import precision as precision_lib
from tfc_lic.benchmarks import harness

# "ours" trains as the shipped config does. TF reads TF_ENABLE_ONEDNN_OPTS only
# as it starts (tfc_lic.startup sets 1 unless it is set), hence `env`, the
# environment of the variant's process.
_OURS = dict(proxy="mixed", patch=256, batch=8)
THROUGHPUT_VARIANTS = [
    dict(_OURS, name="ours fp32", precision="float32",
         env={"TF_ENABLE_ONEDNN_OPTS": "0"}),
    dict(_OURS, name="ours fp32 + oneDNN", precision="float32",
         env={"TF_ENABLE_ONEDNN_OPTS": "1"}),
    dict(_OURS, name="ours bf16 (auto where native)", precision="bfloat16"),
    dict(_OURS, name="ours bf16, N=192 (z: 128)", precision="bfloat16",
         num_filters=192, hyper_filters=128),
    dict(_OURS, name="ours bf16 128px x 16", precision="bfloat16", patch=128,
         batch=16),
]

PRECISION_STEPS = 600
PRECISION_VARIANTS = [
    dict(name=f"{p}, N=64 M=96, 128px x 8, {PRECISION_STEPS} steps",
         precision=p, proxy="noise", patch=128, batch=8, num_filters=64,
         latent_channels=96, learning_rate=3e-4, train_steps=PRECISION_STEPS)
    for p in ("float32", "bfloat16")]


def seeded_model(variant, lmbdas, precision):
  """A mean-scale model from seed 0 with its Adam built, for `variant`."""
  tf.keras.utils.set_random_seed(0)
  model = models.create_model(
      "mbt2018-mean", lmbdas=lmbdas, precision=precision,
      num_filters=variant.get("num_filters", 128),
      latent_channels=variant.get("latent_channels", 192),
      hyper_filters=variant.get("hyper_filters"))
  model.compile(optimizer=tf.keras.optimizers.Adam(
      variant.get("learning_rate", 1e-4)))
  # Built eagerly: Keras 2.14's Adam fails to build its slots inside the
  # traced step for some tfc.SignalConv2D variables.
  model.optimizer.build(model.trainable_variables)
  return model


def measure(variant, dataset, warmup_steps, steps):
  """The worker: `variant` with its median step time over `steps` (after
  `warmup_steps`) and, if it has `train_steps`, the mean loss of the last
  100 of that many more steps."""
  model = seeded_model(variant, [0.0018, 0.0067, 0.025], variant["precision"])
  model.proxy = variant["proxy"]
  step = tf.function(model.train_step)
  iterator = iter(data.crops(dataset, variant["patch"], variant["batch"],
                             seed=0))
  seconds = harness.median_seconds(
      lambda: step(next(iterator))["loss"].numpy(), steps, warmup_steps)
  pixels = variant["patch"] ** 2 * variant["batch"]
  row = dict(variant, seconds_per_step=seconds, ms_per_step=1000 * seconds,
             steps_per_second=1 / seconds,
             megapixels_per_second=pixels / seconds / 1e6)
  losses = []
  for _ in range(variant.get("train_steps", 0)):
    # A step returns its metrics' running means: reset, each is its own loss.
    for metric in model.metrics:
      metric.reset_state()
    losses.append(float(step(next(iterator))["loss"]))
  if losses:
    row["final_loss"] = float(np.mean(losses[-100:]))
  return row


def _measure_all(variants, dataset, warmup_steps, steps):
  """measure() of each variant in its own process; bf16 skipped where the
  CPU emulates it (>40 s a step)."""
  native_bf16 = precision_lib.has_fast_bfloat16()
  rows = []
  for variant in variants:
    if variant["precision"] == "bfloat16" and not native_bf16:
      print(f"{variant['name']:40s} skipped: bf16 is emulated on this CPU")
      continue
    rows.append(harness.run_worker(
        measure, env=variant.get("env"), variant=variant, dataset=dataset,
        warmup_steps=warmup_steps, steps=steps))
    print(f"{rows[-1]['name']:40s} {rows[-1]['ms_per_step']:8.0f} ms/step "
          f"{rows[-1]['megapixels_per_second']:6.3f} Mpx/s", flush=True)
  return rows


def throughput(output_dir, dataset, warmup_steps, steps):
  """THROUGHPUT_VARIANTS on `dataset`, with their speed-ups over the first;
  writes training_throughput.{json,png}."""
  rows = _measure_all(THROUGHPUT_VARIANTS, dataset, warmup_steps, steps)
  print(f"\n{'variant':40s} ms/step   Mpx/s  vs 1st")
  for r in rows:
    r["speedup_vs_first"] = (r["megapixels_per_second"] /
                             rows[0]["megapixels_per_second"])
    print(f"{r['name']:40s} {r['ms_per_step']:7.0f} "
          f"{r['megapixels_per_second']:7.3f} {r['speedup_vs_first']:6.2f}x")
  harness.write(
      output_dir, "training_throughput",
      dict(rows=rows, cpu=precision_lib.cpu_info("model name"),
           native_bf16=precision_lib.has_fast_bfloat16()),
      harness.bar_figure(rows, ["megapixels_per_second"],
                         f"training throughput (Mpx/s, {os.cpu_count()} CPU "
                         "cores)"))
  return rows


def precision(output_dir, dataset, warmup_steps, steps):
  """PRECISION_VARIANTS on `dataset`; writes precision.{json,png}."""
  rows = _measure_all(PRECISION_VARIANTS, dataset, warmup_steps, steps)
  for r in rows:
    print(f"{r['name']:40s} mean loss of the last 100 steps "
          f"{r['final_loss']:.4f}")
  harness.write(output_dir, "precision", dict(rows=rows), harness.bar_figure(
      rows, ["final_loss"],
      f"training loss after {PRECISION_STEPS} steps (lower is better)"))
  return rows
