"""Benchmarks: training throughput, codec speed, and codec memory.

  python bin/benchmark.py --what=training --dataset=/path/to/training/images
  python bin/benchmark.py --what=codec --images=/path/to/kodak
  python bin/benchmark.py --what=memory --sizes=1024,2048,4096
  python bin/benchmark.py --what=variable_rate --dataset=... --validation=...
  python bin/benchmark.py --what=generalization --weights=A,B \
      --image_sets=val=/path/val_*,train=/path/train_*
  python bin/benchmark.py --what=synthesis --weights=STAGE2_A,STAGE2_B \
      --image_sets=val=/path/val_*
  python bin/benchmark.py --what=learning_curve --history=RUN/history.jsonl

Training: each variant runs in its own process, one after the other, in one
invocation (ratios measured side by side). The reference is the same
architecture written as in tfc's models/bmshj2018.py: float32,
tfc.SignalConv2D for every layer (EXPLICIT padding), images decoded from file
for every crop. Codec: median wall time of warm encodes/decodes per image for
each quantizer of a SavedModel and each classic codec at one setting.
Variable rate: one network trained on six λ against a network trained on
one of them (λ=0.013), same seed, data and steps, both validated at that λ
along the way: is one variable-rate model better than six single-rate models
that share its compute (each with a sixth of the steps)?
Generalization: the loss of trained weights (any --init_from source) on
central crops of several image sets, every rate, latents rounded as in
validation, in float32 as the codec computes (or in bf16, as a bf16 run
validates): a training set's loss falling apart from a held-out set's is
overfitting; falling in step, it is not.
Synthesis: the MSE of each stage-2 synthesis of --weights (stage-2 run dirs)
on central crops of --image_sets, every rate, on latents quantized exactly as
the export's codec does, in float32 as it decodes: stage-2 variants compared
side by side (their rates are the same, being fixed by stage 1).
Learning curve: fits L(t) = L_inf + A (t / 10^4)^-a to a run's averaged
validation loss from --fit_from on: where more of the same training leads.
Writes <what>.json and .png under --output_dir.
"""

# First: starts TensorFlow (oneDNN kernels, no C++ log noise).
from tfc_lic import startup  # pylint: disable=unused-import

import functools
import json
import os
import subprocess
import sys
import time

from absl import app
from absl import flags
import numpy as np

FLAGS = flags.FLAGS
flags.DEFINE_enum("what", "training",
                  ["training", "codec", "precision", "memory",
                   "variable_rate", "generalization", "synthesis",
                   "learning_curve"],
                  "What to measure: training speed, codec speed, the loss "
                  "reached by fp32 vs bf16 training from one seed, the "
                  "codec's peak memory per image size, a variable-rate "
                  "network against a single-rate one at equal steps, "
                  "trained weights' loss on several image sets, stage-2 "
                  "syntheses' distortion, or a run's validation loss "
                  "extrapolated.")
flags.DEFINE_string("history", None,
                    "A run's history.jsonl for --what=learning_curve.")
flags.DEFINE_integer("fit_from", 40000,
                     "First step --what=learning_curve fits.")
flags.DEFINE_list("project_to", ["100000", "200000", "1000000"],
                  "Steps --what=learning_curve extrapolates to.")
flags.DEFINE_list("weights", [],
                  "Trained weights for --what=generalization or synthesis "
                  "(run dirs or compact weights with their config.json).")
flags.DEFINE_list("image_sets", [],
                  "name=images pairs for --what=generalization or synthesis "
                  "(images as in --dataset; ':' may stand for ',' between "
                  "globs).")
flags.DEFINE_float("tcq_lambda", 0.08,
                   "TCQ rate weight λ for --what=synthesis (the export's).")
flags.DEFINE_list("delta_indexes", ["usq=4", "tcq4=4", "tcq8=4"],
                  "quantizer=j pairs, Δ = 2^(j/8), for --what=synthesis (the "
                  "export's).")
flags.DEFINE_enum("eval_precision", "float32", ["float32", "bfloat16"],
                  "What --what=generalization computes in: float32, as the "
                  "exported codec does, or bfloat16, as a bf16 run's "
                  "validation does (the two differ by a small offset).")
flags.DEFINE_bool("whole_images", False,
                  "--what=generalization or synthesis on whole images (one "
                  "per batch) instead of central 256x256 crops.")
flags.DEFINE_list("sizes", ["1024", "2048", "4096"],
                  "Square image sides for --what=memory.")
flags.DEFINE_string("memory_image", "testdata/kodim23.png",
                    "Image resized to each of --sizes for --what=memory.")
flags.DEFINE_string("memory_worker", None,
                    "Internal: 'encode|decode,side,stream path'.")
flags.DEFINE_string("dataset", None, "Training images (folder or glob).")
flags.DEFINE_string("validation", None,
                    "Validation images for --what=variable_rate.")
flags.DEFINE_integer("rate_steps", 1800,
                     "Training steps per network for --what=variable_rate.")
flags.DEFINE_string("images", None, "Test images for --what=codec.")
flags.DEFINE_integer("max_images", 4, "Images for --what=codec.")
flags.DEFINE_integer("repeats", 3, "Timed repeats per image (median).")
flags.DEFINE_string("model", "mbt2018-mean-vr", "Codec SavedModel (zoo name).")
flags.DEFINE_list("also_models", [],
                  "More codec SavedModels (zoo names or paths) for "
                  "--what=codec, measured in the same run as --model.")
flags.DEFINE_string("output_dir", "results/benchmarks", "Where to write.")
flags.DEFINE_integer("warmup_steps", 3, "Steps before timing starts.")
flags.DEFINE_integer("steps", 8, "Timed steps per variant.")
flags.DEFINE_string("worker", None, "Internal: run one variant (JSON).")

# "ours" trains as the shipped config does (mixed proxy); "FFT kernels" are
# its layers before 2026-11-30 (tfc's RDFTParameter); "stock layers" before
# 2026-12-01 (Keras' Conv2DTranspose, tfc's GDN and its offset search for z).
_OURS = dict(proxy="mixed", patch=256, batch=8)
VARIANTS = [
    dict(name="reference (tfc-style, fp32, uncached, TF defaults)",
         reference=True, precision="float32", patch=256, batch=8,
         env={"TF_ENABLE_ONEDNN_OPTS": None}),
    dict(_OURS, name="ours fp32", precision="float32",
         env={"TF_ENABLE_ONEDNN_OPTS": "0"}),
    dict(_OURS, name="ours fp32 + oneDNN, FFT kernels", precision="float32",
         fft_kernels=True, stock_layers=True,
         env={"TF_ENABLE_ONEDNN_OPTS": "1"}),
    dict(_OURS, name="ours fp32 + oneDNN, stock layers", precision="float32",
         stock_layers=True, env={"TF_ENABLE_ONEDNN_OPTS": "1"}),
    dict(_OURS, name="ours fp32 + oneDNN", precision="float32",
         env={"TF_ENABLE_ONEDNN_OPTS": "1"}),
    dict(_OURS, name="ours bf16, FFT kernels", precision="bfloat16",
         fft_kernels=True, stock_layers=True),
    dict(_OURS, name="ours bf16 (auto where native)", precision="bfloat16"),
    dict(_OURS, name="ours bf16, N=192 (z: 128)", precision="bfloat16",
         num_filters=192, hyper_filters=128),
    dict(_OURS, name="ours bf16 128px x 16", precision="bfloat16", patch=128,
         batch=16),
]


PRECISION_VARIANTS = [
    dict(name=f"{p}, N=64 M=96, 128px x 8, 600 steps", precision=p, patch=128,
         batch=8, num_filters=64, latent_channels=96, learning_rate=3e-4,
         train_steps=600) for p in ("float32", "bfloat16")]


RATE_LMBDAS = [0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483]
RATE_PROBE = 0.013  # The λ both networks are validated at.
RATE_VARIANTS = [
    dict(name=f"{name}, N=64 M=96, 128px x 8", lmbdas=lmbdas, patch=128,
         batch=8, num_filters=64, latent_channels=96, learning_rate=3e-4)
    for name, lmbdas in (("variable rate (6 λ)", RATE_LMBDAS),
                         (f"single rate (λ={RATE_PROBE})", [RATE_PROBE]))]


def _reference_conv(filters, kernel, name, down=1, up=1, activation=None,
                    dtype=None, use_bias=True):
  """Every layer a tfc.SignalConv2D, as in tfc's models/bmshj2018.py."""
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top
  return tfc.SignalConv2D(
      filters, (kernel, kernel), name=name, corr=up == 1, strides_down=down,
      strides_up=up, padding="same_zeros", use_bias=use_bias,
      activation=activation, dtype=dtype)


def _seeded_model(variant, lmbdas, precision):
  """A mean-scale model from seed 0 with its Adam built, for `variant`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_lic import models  # pylint: disable=g-import-not-at-top
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


def _single_rate_share():
  """Steps each of six single-rate models gets of the variable-rate run's."""
  return FLAGS.rate_steps // len(RATE_LMBDAS)


def run_worker(variant):
  """Times training steps of one variant; returns its measurements."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_compression as tfc  # pylint: disable=g-import-not-at-top
  from tfc_lic import data  # pylint: disable=g-import-not-at-top
  from tfc_lic import models  # pylint: disable=g-import-not-at-top
  from tfc_lic import transforms  # pylint: disable=g-import-not-at-top
  if variant.get("reference"):
    transforms._conv = _reference_conv  # pylint: disable=protected-access
  if variant.get("fft_kernels"):
    # Before MatrixRDFTParameter: tfc's own layer computes the kernel by FFT.
    transforms._conv = functools.partial(  # pylint: disable=protected-access
        transforms._conv, signal_conv=tfc.SignalConv2D)  # pylint: disable=protected-access
  if variant.get("stock_layers"):
    transforms.Conv2DTranspose = tf.keras.layers.Conv2DTranspose
    transforms.GDN = tfc.GDN
    models.median_offset = lambda prior: None  # tfc's offset heuristic
  model = _seeded_model(variant, [0.0018, 0.0067, 0.025],
                        variant["precision"])
  model.proxy = variant.get("proxy", "noise")
  if variant.get("reference"):
    files = data.list_images(FLAGS.dataset)
    dataset = tf.data.Dataset.from_tensor_slices(files).shuffle(
        len(files)).repeat().map(
            lambda f: tf.cast(tf.image.random_crop(
                data._fit_to_patch(data._decode(f), variant["patch"]),  # pylint: disable=protected-access
                (variant["patch"], variant["patch"], 3)), tf.float32)
        ).batch(variant["batch"])
  else:
    dataset = data.crops(FLAGS.dataset, variant["patch"], variant["batch"],
                         seed=0)
  step = tf.function(model.train_step)
  iterator = iter(dataset)
  for _ in range(FLAGS.warmup_steps):
    step(next(iterator))
  times = []
  for _ in range(FLAGS.steps):
    start = time.perf_counter()
    step(next(iterator))["loss"].numpy()
    times.append(time.perf_counter() - start)
  seconds = float(np.median(times))
  pixels = variant["patch"] ** 2 * variant["batch"]
  losses = []
  for _ in range(variant.get("train_steps", 0)):
    for metric in model.metrics:
      metric.reset_state()
    losses.append(float(step(next(iterator))["loss"]))
  if losses:
    variant = dict(variant, final_loss=float(np.mean(losses[-100:])))
  return dict(variant, seconds_per_step=seconds,
              ms_per_step=1000 * seconds, steps_per_second=1 / seconds,
              megapixels_per_second=pixels / seconds / 1e6)


def run_rate_worker(variant):
  """Trains one network of RATE_VARIANTS; validates it at RATE_PROBE."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_lic import data  # pylint: disable=g-import-not-at-top
  from tfc_lic import precision  # pylint: disable=g-import-not-at-top
  model = _seeded_model(variant, variant["lmbdas"], precision.resolve("auto"))
  step = tf.function(model.train_step)
  iterator = iter(data.crops(FLAGS.dataset, variant["patch"],
                             variant["batch"], seed=0))
  validation = data.crops(FLAGS.validation, 256, 8, training=False)
  rate = variant["lmbdas"].index(RATE_PROBE)

  @tf.function
  def evaluate(x):
    return model(x, tf.fill([tf.shape(x)[0]], rate), training=False)

  def validate():
    _, bpp, mse = (np.concatenate(t) for t in zip(*(
        [np.atleast_1d(v.numpy()) for v in evaluate(x)]
        for x in validation)))
    return _rd_row(RATE_PROBE, bpp, mse)

  # Validated at every multiple of a single-rate model's share.
  share = _single_rate_share()
  points = []
  start = time.perf_counter()
  for i in range(1, FLAGS.rate_steps + 1):
    step(next(iterator))
    if i % share == 0:
      points.append(dict(step=i, **validate()))
  return dict(variant, points=points,
              seconds=time.perf_counter() - start)


def variable_rate(native_bf16):
  """Runs RATE_VARIANTS one after the other; table, JSON and plot."""
  rows = [_run_worker_process(v) for v in RATE_VARIANTS]
  variable, single = rows
  share = _single_rate_share()
  print(f"\nvalidation at λ={RATE_PROBE} (loss = bpp + λ·MSE)")
  print(f"{'network':32s} {'steps':>6s} {'loss':>7s} {'bpp':>7s} {'PSNR':>6s}")
  for row in rows:
    for p in row["points"]:
      print(f"{row['name'][:32]:32s} {p['step']:6d} {p['loss']:7.4f} "
            f"{p['bpp']:7.4f} {p['psnr']:6.2f}")
  final = variable["points"][-1]["loss"]
  same_compute = next(p for p in single["points"] if p["step"] == share)
  summary = dict(
      variable_rate_loss=final,
      single_rate_loss_same_compute=same_compute["loss"],
      single_rate_loss_same_steps=single["points"][-1]["loss"])
  print(f"\nvariable rate, {FLAGS.rate_steps} steps: {final:.4f}; single "
        f"rate with a sixth of the steps ({share}): {same_compute['loss']:.4f}"
        f"; with all of them: {summary['single_rate_loss_same_steps']:.4f}")
  with open(os.path.join(FLAGS.output_dir, "variable_rate.json"), "w") as f:
    json.dump(dict(rows=rows, summary=summary, probe_lmbda=RATE_PROBE,
                   native_bf16=native_bf16, cpu_count=os.cpu_count(),
                   date=time.strftime("%Y-%m-%d")), f, indent=1)
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(6, 4))
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for row in rows:
    ax.plot([p["step"] for p in row["points"]],
            [p["loss"] for p in row["points"]], "o-", label=row["name"])
  ax.set_xlabel("training steps")
  ax.set_ylabel(f"validation loss at λ={RATE_PROBE}")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.output_dir, "variable_rate.png"), dpi=120)


def generalization():
  """Loss, bpp and PSNR of each of --weights on each of --image_sets, over
  all rates and per rate."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_lic import data  # pylint: disable=g-import-not-at-top
  from tfc_lic import precision  # pylint: disable=g-import-not-at-top
  from tfc_lic import training  # pylint: disable=g-import-not-at-top
  compute = FLAGS.eval_precision
  if compute == "bfloat16" and not precision.has_fast_bfloat16():
    sys.exit("error: --eval_precision=bfloat16 needs a CPU with AVX512-BF16 "
             "or AMX, or a GPU of compute capability >= 8.0")
  rows = []
  for path in FLAGS.weights:
    config = training.config_of(path)
    if config is None:
      sys.exit(f"error: no config.json with the weights at {path}")
    model = training.model_from_config(dict(config, precision=compute))
    training.load_weights(model, path)
    evaluate = tf.function(lambda x, r: model(  # pylint: disable=cell-var-from-loop
        x, tf.fill([tf.shape(x)[0]], r), training=False),
                           reduce_retracing=True)
    for name, batches in _image_sets(data):
      per_rate = [dict(bpp=[], mse=[]) for _ in model.lmbdas]
      for batch in batches:
        for rate, values in enumerate(per_rate):
          _, bpp, mse = evaluate(batch, tf.constant(rate))
          values["bpp"].extend(bpp.numpy())
          values["mse"].extend(mse.numpy())
      rates = [_rd_row(lmbda, v["bpp"], v["mse"])
               for lmbda, v in zip(model.lmbdas, per_rate)]
      row = dict(weights=path, images=name, precision=compute, rates=rates,
                 **{k: float(np.mean([r[k] for r in rates]))
                    for k in ("loss", "bpp", "mse", "psnr")})
      print(f"{path:50s} {name:12s} loss {row['loss']:.4f} "
            f"bpp {row['bpp']:.4f} psnr {row['psnr']:.2f}  per rate: " +
            " ".join(f"{r['loss']:.4f}" for r in rates), flush=True)
      rows.append(row)
  return rows


def _image_sets(data):
  """(name, batches) for each of --image_sets."""
  for named in FLAGS.image_sets:
    name, _, spec = named.partition("=")
    spec = spec.replace(":", ",")
    yield name, (data.whole_images(spec) if FLAGS.whole_images else
                 data.crops(spec, 256, 8, training=False))


def synthesis():
  """MSE and PSNR per rate of each stage-2 synthesis of --weights on each of
  --image_sets, on the codec's quantized latents, in float32."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfc_lic import cli  # pylint: disable=g-import-not-at-top
  from tfc_lic import data  # pylint: disable=g-import-not-at-top
  from tfc_lic import finetuning  # pylint: disable=g-import-not-at-top
  from tfc_lic import training  # pylint: disable=g-import-not-at-top
  if not FLAGS.weights or not FLAGS.image_sets:
    sys.exit("error: --what=synthesis needs --weights and --image_sets")
  with cli.one_line_errors():
    delta_indexes = cli.per_quantizer("delta_indexes", int)
  rows = []
  for path in FLAGS.weights:
    config = training.config_of(path)
    if not (config or {}).get("finetuned_quantizers"):
      sys.exit(f"error: no stage-2 weights at {path} (its config.json names "
               "no finetuned_quantizers)")
    model = training.model_from_config(
        dict(config, precision="float32", frozen_precision="float32"))
    training.load_weights(model, path)
    finetuner = finetuning.SynthesisFinetuner(
        model, tcq_lambda=FLAGS.tcq_lambda, delta_indexes=delta_indexes)
    distortions = tf.function(lambda x, r: finetuner.distortions(  # pylint: disable=cell-var-from-loop
        tf.cast(x, tf.float32), tf.fill([tf.shape(x)[0]], r)))
    for name, batches in _image_sets(data):
      mses = {q: [[] for _ in model.lmbdas] for q in finetuner.quantizers}
      for batch in batches:
        for rate in range(model.num_rates):
          for q, mse in zip(finetuner.quantizers,
                            distortions(batch, tf.constant(rate))):
            mses[q][rate].extend(mse.numpy())
      for q, per_rate in mses.items():
        mse = [float(np.mean(m)) for m in per_rate]
        psnr = [float(10 * np.log10(255. ** 2 / m)) for m in mse]
        rows.append(dict(weights=path, images=name, quantizer=q,
                         delta_index=delta_indexes.get(q, 0),
                         tcq_lambda=FLAGS.tcq_lambda, mse=mse, psnr=psnr,
                         mean_psnr=float(np.mean(psnr))))
        print(f"{path:50s} {name:12s} {q:5s} mean PSNR "
              f"{rows[-1]['mean_psnr']:.4f} dB  MSE per rate: " +
              " ".join(f"{m:.3f}" for m in mse), flush=True)
  return rows


def plot_synthesis(rows, path):
  """PSNR per rate of each row against the first --weights' on the same
  quantizer and images: stage-2 variants differ by hundredths of a dB."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(6, 4))
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  first = {(r["quantizer"], r["images"]): r["psnr"] for r in reversed(rows)}
  for r in rows:
    base = first[r["quantizer"], r["images"]]
    ax.plot(np.subtract(r["psnr"], base), "o-",
            label=f"{os.path.basename(r['weights'].rstrip('/'))} "
                  f"{r['quantizer']} {r['images']}")
  ax.set_xlabel("rate index")
  ax.set_ylabel(f"PSNR vs {FLAGS.weights[0]} (dB)")
  ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def learning_curve():
  """Fits the averaged validation loss from --fit_from on; returns the fit,
  its projections and the points (JSON-ready), and plots them."""
  from scipy import optimize  # pylint: disable=g-import-not-at-top
  try:
    with open(FLAGS.history) as f:
      points = sorted((r["step"], r["loss"]) for r in map(json.loads, f)
                      if r["kind"] == "validation_average")
  except (ValueError, KeyError) as e:
    sys.exit(f"error: {FLAGS.history} is not a run's history.jsonl ({e})")
  if sum(step >= FLAGS.fit_from for step, _ in points) < 4:
    sys.exit(f"error: fewer than 4 averaged validations from step "
             f"{FLAGS.fit_from} in {FLAGS.history}")
  steps, losses = (np.array(v, np.float64) for v in zip(*points))
  fitted = steps >= FLAGS.fit_from
  curve = lambda t, floor, scale, power: floor + scale * (t / 1e4) ** -power
  try:
    params, _ = optimize.curve_fit(curve, steps[fitted], losses[fitted],
                                   p0=(losses[-1] * 0.9, 0.5, 1.),
                                   maxfev=20000)
  except RuntimeError as e:
    sys.exit(f"error: the fit did not converge ({e})")
  floor, scale, power = (float(v) for v in params)
  projections = {int(t): float(curve(float(t), *params))
                 for t in FLAGS.project_to}
  print(f"L(t) = {floor:.4f} + {scale:.4f} (t / 1e4)^-{power:.3f} "
        f"(steps {int(steps[fitted][0])}-{int(steps[-1])}, "
        f"rms residual {np.std(losses[fitted] - curve(steps[fitted], *params)):.5f})")
  print(f"last: step {int(steps[-1])} loss {losses[-1]:.4f}")
  for t, loss in projections.items():
    print(f"at step {t:8d}: {loss:.4f} ({loss / losses[-1] - 1:+.2%})")
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(7, 4))
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  ax.plot(steps, losses, "o", ms=3, label="averaged validation")
  t = np.geomspace(steps[fitted][0], max(projections), 200)
  ax.plot(t, curve(t, *params), label=f"fit, floor {floor:.3f}")
  ax.set_xscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("validation loss")
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(FLAGS.output_dir, "learning_curve.png"), dpi=120)
  return dict(history=FLAGS.history, fit_from=FLAGS.fit_from,
              fit=dict(floor=floor, scale=scale, power=power),
              projections=projections,
              points=[dict(step=int(a), loss=float(b)) for a, b in points])


def _rd_row(lmbda, bpp, mse):
  """Means over images at one rate (PSNR: the mean of per-image PSNRs)."""
  bpp, mse = np.array(bpp, np.float64), np.array(mse, np.float64)
  return dict(lmbda=lmbda, loss=float(np.mean(bpp + lmbda * mse)),
              bpp=float(bpp.mean()), mse=float(mse.mean()),
              psnr=float(np.mean(10 * np.log10(255. ** 2 / mse))))


def _run_worker_process(variant):
  """Runs `variant` in a fresh process (own env); returns its RESULT."""
  output = subprocess.run(
      [sys.executable, __file__, f"--what={FLAGS.what}",
       f"--dataset={FLAGS.dataset}", f"--validation={FLAGS.validation}",
       f"--rate_steps={FLAGS.rate_steps}",
       f"--warmup_steps={FLAGS.warmup_steps}", f"--steps={FLAGS.steps}",
       "--worker=" + json.dumps(variant)],
      capture_output=True, text=True, check=False,
      env=_environment(variant.get("env", {})))
  line = [l for l in output.stdout.splitlines() if l.startswith("RESULT ")]
  if not line:
    sys.exit(f"error: variant {variant['name']} failed:\n"
             f"{output.stderr[-2000:]}")
  return json.loads(line[0][len("RESULT "):])


def _environment(changes):
  """os.environ with `changes` applied (None removes a variable)."""
  env = dict(os.environ, **changes)
  return {k: v for k, v in env.items() if v is not None}


def plot(rows, path, keys, xlabel):
  """Horizontal bars of rows[key] for each key, one group per row."""
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  fig = figure.Figure(figsize=(7, 1 + 0.4 * len(rows)))
  backend_agg.FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  height = 0.8 / len(keys)
  for i, key in enumerate(keys):
    ax.barh(np.arange(len(rows)) + i * height, [r[key] for r in rows],
            height=height, label=key)
  ax.set_yticks(np.arange(len(rows)) + 0.4 - height / 2,
                [r["name"] for r in rows])
  ax.set_xlabel(xlabel)
  if len(keys) > 1:
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _median_seconds(fn, repeats):
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def codec_speed():
  """Encode/decode ms per image for each quantizer and classic codec."""
  from tfc_lic import classic  # pylint: disable=g-import-not-at-top
  from tfc_lic import evaluation  # pylint: disable=g-import-not-at-top
  from tfc_lic import learned_codec  # pylint: disable=g-import-not-at-top
  images = list(evaluation.load_images(FLAGS.images).values())
  images = images[:FLAGS.max_images]
  codecs = [(learned_codec.LearnedCodec(f"{model}:{q}"), (3., None))
            for model in [FLAGS.model] + FLAGS.also_models
            for q in ("usq", "tcq4", "tcq8")]
  available, _ = classic.available_codecs()
  codecs += [(c, c.settings[len(c.settings) // 2]) for c in available.values()]
  rows = []
  for codec, setting in codecs:
    encode, decode = [], []
    for image in images:
      data = codec.encode(image, setting)
      encode.append(_median_seconds(lambda: codec.encode(image, setting),
                                    FLAGS.repeats))
      decode.append(_median_seconds(lambda: codec.decode(data),
                                    FLAGS.repeats))
    rows.append(dict(name=codec.name, setting=str(setting),
                     encode_ms=1000 * float(np.mean(encode)),
                     decode_ms=1000 * float(np.mean(decode))))
    print(f"{codec.name:40s} encode {rows[-1]['encode_ms']:8.1f} ms  "
          f"decode {rows[-1]['decode_ms']:8.1f} ms", flush=True)
  return rows


def memory_worker(spec):
  """Peak RSS (GB) of one encode or decode, beyond the loaded model's."""
  import resource  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from tfc_lic import cli  # pylint: disable=g-import-not-at-top
  from tfc_lic import export  # pylint: disable=g-import-not-at-top
  mode, side, path = spec.split(",")
  side = int(side)
  model = export.load(cli.model_path(FLAGS.model))
  with Image.open(FLAGS.memory_image) as source:
    source = source.convert("RGB")
  small = tf.constant(np.asarray(source.resize((64, 64))))
  model.signatures["decompress"](
      stream=model.signatures["compress"](image=small)["stream"])
  peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
  loaded = peak()
  start = time.perf_counter()
  if mode == "encode":
    image = tf.constant(np.asarray(source.resize((side, side),
                                                 Image.BICUBIC)))
    stream = model.signatures["compress"](image=image)["stream"].numpy()
    with open(path, "wb") as f:
      f.write(stream)
  else:
    with open(path, "rb") as f:
      model.signatures["decompress"](stream=tf.constant(f.read()))
  return dict(peak_gb=peak(), model_gb=loaded,
              seconds=time.perf_counter() - start)


def codec_memory():
  """Encode/decode peak memory per image size, each in its own process."""
  import tempfile  # pylint: disable=g-import-not-at-top
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    for side in map(int, FLAGS.sizes):
      row = dict(name=f"{side}x{side}", megapixels=side * side / 1e6)
      for mode in ("encode", "decode"):
        spec = f"{mode},{side},{os.path.join(scratch, 'stream')}"
        output = subprocess.run(
            [sys.executable, __file__, f"--model={FLAGS.model}",
             f"--memory_image={FLAGS.memory_image}",
             f"--memory_worker={spec}"], capture_output=True, text=True,
            check=False)
        line = [l for l in output.stdout.splitlines()
                if l.startswith("RESULT ")]
        if not line:
          sys.exit(f"error: {mode} {side}: {output.stderr[-2000:]}")
        result = json.loads(line[0][len("RESULT "):])
        row[f"{mode}_peak_gb"] = result["peak_gb"]
        row[f"{mode}_seconds"] = result["seconds"]
        row["model_gb"] = result["model_gb"]
      print(f"{row['name']:>12s} encode {row['encode_peak_gb']:6.2f} GB "
            f"{row['encode_seconds']:6.1f} s   decode "
            f"{row['decode_peak_gb']:6.2f} GB {row['decode_seconds']:6.1f} s",
            flush=True)
      rows.append(row)
  return rows


def main(argv):
  del argv
  if FLAGS.memory_worker:
    print("RESULT " + json.dumps(memory_worker(FLAGS.memory_worker)))
    return
  if FLAGS.what == "memory":
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    rows = codec_memory()
    with open(os.path.join(FLAGS.output_dir, "codec_memory.json"), "w") as f:
      json.dump(dict(rows=rows, model=FLAGS.model, cpu_count=os.cpu_count(),
                     date=time.strftime("%Y-%m-%d")), f, indent=1)
    plot(rows, os.path.join(FLAGS.output_dir, "codec_memory.png"),
         ["encode_peak_gb", "decode_peak_gb"], "peak resident memory (GB)")
    return
  if FLAGS.worker:
    worker = (run_rate_worker if FLAGS.what == "variable_rate" else
              run_worker)
    print("RESULT " + json.dumps(worker(json.loads(FLAGS.worker))))
    return
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  if FLAGS.what == "generalization":
    rows = generalization()
    with open(os.path.join(FLAGS.output_dir, "generalization.json"), "w") as f:
      json.dump(dict(rows=rows, date=time.strftime("%Y-%m-%d")), f, indent=1)
    return
  if FLAGS.what == "synthesis":
    rows = synthesis()
    with open(os.path.join(FLAGS.output_dir, "synthesis.json"), "w") as f:
      json.dump(dict(rows=rows, date=time.strftime("%Y-%m-%d")), f, indent=1)
    plot_synthesis(rows, os.path.join(FLAGS.output_dir, "synthesis.png"))
    return
  if FLAGS.what == "learning_curve":
    if not FLAGS.history or not os.path.isfile(FLAGS.history):
      sys.exit(f"error: --history must name a run's history.jsonl "
               f"({FLAGS.history!r})")
    result = learning_curve()
    with open(os.path.join(FLAGS.output_dir, "learning_curve.json"), "w") as f:
      json.dump(dict(result, date=time.strftime("%Y-%m-%d")), f, indent=1)
    return
  if FLAGS.what == "codec":
    if not FLAGS.images:
      sys.exit("error: --images is required")
    rows = codec_speed()
    with open(os.path.join(FLAGS.output_dir, "codec_speed.json"), "w") as f:
      json.dump(dict(rows=rows, images=FLAGS.images,
                     max_images=FLAGS.max_images, cpu_count=os.cpu_count(),
                     date=time.strftime("%Y-%m-%d")), f, indent=1)
    plot(rows, os.path.join(FLAGS.output_dir, "codec_speed.png"),
         ["encode_ms", "decode_ms"], "ms per image (2 CPU cores)")
    return
  if not FLAGS.dataset:
    sys.exit("error: --dataset is required")
  from tfc_lic import precision  # pylint: disable=g-import-not-at-top
  native_bf16 = precision.has_fast_bfloat16()
  if FLAGS.what == "variable_rate":
    if not FLAGS.validation:
      sys.exit("error: --validation is required")
    variable_rate(native_bf16)
    return
  rows = []
  variants = PRECISION_VARIANTS if FLAGS.what == "precision" else VARIANTS
  for variant in variants:
    if variant["precision"] == "bfloat16" and not native_bf16:
      print(f"{variant['name']:40s} skipped: bf16 is emulated on this CPU")
      continue
    rows.append(_run_worker_process(variant))
    print(f"{rows[-1]['name']:40s} {rows[-1]['ms_per_step']:8.0f} ms/step "
          f"{rows[-1]['megapixels_per_second']:6.3f} Mpx/s", flush=True)
  if FLAGS.what == "precision":
    for r in rows:
      print(f"{r['name']:40s} mean loss of the last 100 steps "
            f"{r['final_loss']:.4f}")
    with open(os.path.join(FLAGS.output_dir, "precision.json"), "w") as f:
      json.dump(dict(rows=rows, date=time.strftime("%Y-%m-%d")), f, indent=1)
    plot(rows, os.path.join(FLAGS.output_dir, "precision.png"),
         ["final_loss"], "training loss after 600 steps (lower is better)")
    return
  base = rows[0]["megapixels_per_second"]
  print("\nvariant                                  ms/step   Mpx/s  vs ref")
  for r in rows:
    r["speedup_vs_reference"] = r["megapixels_per_second"] / base
    print(f"{r['name']:40s} {r['ms_per_step']:7.0f} "
          f"{r['megapixels_per_second']:7.3f} {r['speedup_vs_reference']:6.2f}x")
  with open(os.path.join(FLAGS.output_dir, "training_throughput.json"),
            "w") as f:
    json.dump(dict(rows=rows, cpu_count=os.cpu_count(),
                   cpu=precision.cpu_info("model name"),
                   native_bf16=native_bf16,
                   date=time.strftime("%Y-%m-%d")), f, indent=1)
  plot(rows, os.path.join(FLAGS.output_dir, "training_throughput.png"),
       ["megapixels_per_second"], "training throughput (Mpx/s, 2 CPU cores)")


if __name__ == "__main__":
  app.run(main)
