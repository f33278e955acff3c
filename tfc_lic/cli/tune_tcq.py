"""Tunes TCQ's rate weight λ and step Δ = 2**(j/8) against USQ on a model.

  tfc-lic-tune-tcq --run=~/runs/mbt2018-mean-vr --images=<folder> \
      --max_images=8 --psnr_window=26.5,29 --output=results/tcq_tuning.json

For every (λ, j) it measures the RD curve over the model's rates (bpp from
real streams, PSNR of the decoded image) and its BD-rate against USQ (Δ = 1),
then prints the table and the best setting. A larger step shifts a curve to
lower rates, so the BD-rate over the common range compares different
qualities; --psnr_window compares every setting on the same ones (and picks
the best by it). --quantizer=usq tunes USQ's own step the same way.
"""

import itertools
import json
import sys

from absl import app
from absl import flags
import numpy as np

from tfc_lic import bd_rate
from tfc_lic import codec as codec_lib
from tfc_lic import evaluation
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import zoo

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Run directory, committed weights or "
                    "SavedModel (tfc_lic.zoo.load_trained).")
flags.DEFINE_string("images", None, "Folder of test images.")
flags.DEFINE_integer("max_images", 4, "Use the first N images.")
flags.DEFINE_enum("quantizer", "tcq8", list(codec_lib.QUANTIZERS),
                  "Quantizer to tune (λ only matters for TCQ).")
flags.DEFINE_list("lambdas", ["0.06", "0.12", "0.2"], "λ values to try.")
flags.DEFINE_list("delta_indexes", ["-6", "-4", "-2", "0"], "Step indexes j.")
flags.DEFINE_float("min_bpp", 0.15,
                   "Points below this rate are left out of the BD-rate: "
                   "there y carries almost no bits (the mean-scale prior's "
                   "mean does the work) and the curves bunch up, which "
                   "makes BD-rate meaningless.")
flags.DEFINE_list("psnr_window", [],
                  "low,high (dB): also the BD-rate over this PSNR interval, "
                  "which every curve must span to be scored on it.")
flags.DEFINE_string("output", None, "JSON file to write.")
flags.mark_flags_as_required(["run", "images", "output"])


def curve(codec, images, quantizer, delta_index):
  """[(bpp, psnr)] over the model's rates, averaged over images."""
  points = []
  for rate in range(codec.model.num_rates):
    bpps, psnrs = [], []
    for image in images:
      stream = codec.compress(image, codec_lib.quantizer_id(quantizer),
                              float(rate), delta_index)
      decoded = codec.decompress(stream).numpy()
      bpps.append(metrics.bpp(len(stream.numpy()), *image.shape[:2]))
      psnrs.append(metrics.psnr(image, decoded))
    points.append((float(np.mean(bpps)), float(np.mean(psnrs))))
  return points


def bd_rate_above(anchor, test, min_bpp, psnr_window=None):
  """BD-rate (%) over the points at or above `min_bpp`; None if undefined."""
  keep = lambda points: [p for p in points if p[0] >= min_bpp]
  try:
    return bd_rate.bd_rate(keep(anchor), keep(test), psnr_window)
  except ValueError:
    return None


def _percent(value):
  return "n/a" if value is None else f"{value:+.2f} %"


def main(argv):
  del argv
  try:
    model, _, _ = zoo.load_trained(FLAGS.run)
    images = list(evaluation.load_images(FLAGS.images).values())
    images = images[:FLAGS.max_images]
    window = tuple(map(float, FLAGS.psnr_window)) or None
    if window is not None and len(window) != 2:
      raise ValueError("--psnr_window takes two values, low,high")
    score = "bd_rate_in_window" if window else "bd_rate_vs_usq"
    anchor = curve(codec_lib.ImageCodec(model), images, "usq", 0)
    print("usq:", " ".join(f"{b:.3f}/{p:.2f}" for b, p in anchor), flush=True)
    rows = []
    for lmbda, j in itertools.product(FLAGS.lambdas, FLAGS.delta_indexes):
      codec = codec_lib.ImageCodec(model, tcq_lambda=float(lmbda))
      points = curve(codec, images, FLAGS.quantizer, int(j))
      row = dict(lmbda=float(lmbda), delta_index=int(j), points=points,
                 bd_rate_vs_usq=bd_rate_above(anchor, points, FLAGS.min_bpp))
      text = f"BD-rate vs USQ {_percent(row['bd_rate_vs_usq'])}"
      if window:
        row["bd_rate_in_window"] = bd_rate_above(anchor, points, FLAGS.min_bpp,
                                                 window)
        text += (f", in {window[0]}-{window[1]} dB "
                 f"{_percent(row['bd_rate_in_window'])}")
      rows.append(row)
      print(f"{FLAGS.quantizer} λ={lmbda} j={j}: {text}", flush=True)
    scored = [r for r in rows if r[score] is not None]
    best = min(scored, key=lambda r: r[score]) if scored else None
    if best:
      print(f"best: λ={best['lmbda']} j={best['delta_index']} "
            f"({_percent(best[score])})")
    else:
      where = (f" in {window[0]}-{window[1]} dB; move the window into the "
               "curves' common range" if window else "")
      print(f"best: none (no curve scored against USQ above {FLAGS.min_bpp} "
            f"bpp{where})")
    image_io.write_atomic(FLAGS.output, json.dumps(dict(
        run=FLAGS.run, images=FLAGS.images, max_images=FLAGS.max_images,
        min_bpp=FLAGS.min_bpp, psnr_window=window,
        quantizer=FLAGS.quantizer, usq=anchor, rows=rows, best=best),
        indent=1).encode(), overwrite=True)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
