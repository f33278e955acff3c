"""What the benchmarks share: fresh worker processes, timing, RD means, image
sets, and results written as JSON and a bar plot."""

import importlib
import json
import os
import subprocess
import sys
import time

import numpy as np

from tfc_lic import data
from tfc_lic import plotting

# A worker prints its result on a line of its own that starts with this.
RESULT = "RESULT "


def run_worker(function, env=None, **kwargs):
  """function(**kwargs) in a fresh process; returns its (JSON) result.

  A fresh process is what a measurement of speed or peak memory needs: no
  other variant's graphs, caches or threads, and variables TF reads only at
  start-up (TF_ENABLE_ONEDNN_OPTS) set by `env` (added to os.environ). It is
  `tfc-lic-benchmark --worker=...`, started as a module so that it also runs
  from an installed package.
  """
  task = dict(module=function.__module__, function=function.__name__,
              kwargs=kwargs)
  output = subprocess.run(
      [sys.executable, "-m", "tfc_lic.cli.benchmark",
       "--worker=" + json.dumps(task)],
      capture_output=True, text=True, check=False,
      env=dict(os.environ, **(env or {})))
  lines = [l for l in output.stdout.splitlines() if l.startswith(RESULT)]
  if not lines:
    raise RuntimeError(f"worker {function.__name__}({kwargs}) failed:\n"
                       f"{output.stderr[-2000:]}")
  return json.loads(lines[-1][len(RESULT):])


def serve_worker(task):
  """Runs a task of run_worker (its JSON) and prints the RESULT line."""
  task = json.loads(task)
  function = getattr(importlib.import_module(task["module"]),
                     task["function"])
  print(RESULT + json.dumps(function(**task["kwargs"])), flush=True)


def median_seconds(fn, repeats, warmup=1):
  """Median wall time of `repeats` calls of fn after `warmup` untimed ones."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def psnr(mse):
  """PSNR (dB, peak 255) of an MSE or an array of them."""
  return 10 * np.log10(255. ** 2 / np.asarray(mse, np.float64))


def rd_row(lmbda, bpp, mse):
  """Means over images at one rate (PSNR: the mean of per-image PSNRs)."""
  bpp, mse = np.array(bpp, np.float64), np.array(mse, np.float64)
  return dict(lmbda=lmbda, loss=float(np.mean(bpp + lmbda * mse)),
              bpp=float(bpp.mean()), mse=float(mse.mean()),
              psnr=float(np.mean(psnr(mse))))


def image_batches(images, whole_images=False):
  """Float32 batches of `images` (as data.crops takes them): central 256²
  crops, 8 a batch, as validation takes them, or whole images one by one."""
  if whole_images:
    return data.whole_images(images)
  return data.crops(images, 256, 8, training=False)


def bar_figure(rows, keys, xlabel):
  """Horizontal bars of row[key] for each key, one group per row's name."""
  fig = plotting.new_figure(7, 1 + 0.4 * len(rows))
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
  return fig


def write(output_dir, name, results, figure=None):
  """Writes <output_dir>/<name>.json (`results`, the CPU count and the date)
  and, if given, `figure` as <name>.png."""
  os.makedirs(output_dir, exist_ok=True)
  with open(os.path.join(output_dir, name + ".json"), "w") as f:
    json.dump(dict(results, cpu_count=os.cpu_count(),
                   date=time.strftime("%Y-%m-%d")), f, indent=1)
  if figure is not None:
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, name + ".png"), dpi=120)
