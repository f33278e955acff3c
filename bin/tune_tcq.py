"""Tunes TCQ's rate weight λ and step Δ = 2**(j/8) against USQ on a model.

  python bin/tune_tcq.py --run=~/runs/mbt2018-mean-vr --images=<folder> \
      --max_images=4 --output=results/tcq_tuning.json

For every (λ, j) it measures the RD curve over the model's rates (bpp from
real streams, PSNR of the decoded image) and its BD-rate against USQ (Δ = 1),
then prints the table and the best setting.
"""

# Before TensorFlow loads: oneDNN kernels (faster, thread-count-independent).
from tfc_lic import onednn  # pylint: disable=unused-import

import itertools
import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

from tfc_lic import bd_rate
from tfc_lic import codec as codec_lib
from tfc_lic import evaluation
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import training

FLAGS = flags.FLAGS
flags.DEFINE_string("run", None, "Run directory (config.json + weights).")
flags.DEFINE_string("images", None, "Folder of test images.")
flags.DEFINE_integer("max_images", 4, "Use the first N images.")
flags.DEFINE_string("quantizer", "tcq8", "tcq4 or tcq8.")
flags.DEFINE_list("lambdas", ["0.06", "0.12", "0.2"], "λ values to try.")
flags.DEFINE_list("delta_indexes", ["-6", "-4", "-2", "0"], "Step indexes j.")
flags.DEFINE_float("min_bpp", 0.15,
                   "Points below this rate are left out of the BD-rate: "
                   "there y carries almost no bits (the mean-scale prior's "
                   "mean does the work) and the curves bunch up, which "
                   "makes BD-rate meaningless.")
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


def bd_rate_above(anchor, test, min_bpp):
  """BD-rate (%) over the points at or above `min_bpp`; None if undefined."""
  keep = lambda points: [p for p in points if p[0] >= min_bpp]
  try:
    return bd_rate.bd_rate(keep(anchor), keep(test))
  except ValueError:
    return None


def main(argv):
  del argv
  try:
    run = os.path.expanduser(FLAGS.run)
    config = training.load_config(os.path.join(run, "config.json"))
    model = training.model_from_config(dict(config, precision="float32"))
    training.load_weights(model, run)
    images = list(evaluation.load_images(FLAGS.images).values())
    images = images[:FLAGS.max_images]
    anchor = curve(codec_lib.ImageCodec(model), images, "usq", 0)
    print("usq:", " ".join(f"{b:.3f}/{p:.2f}" for b, p in anchor), flush=True)
    rows = []
    for lmbda, j in itertools.product(FLAGS.lambdas, FLAGS.delta_indexes):
      codec = codec_lib.ImageCodec(model, tcq_lambda=float(lmbda))
      points = curve(codec, images, FLAGS.quantizer, int(j))
      saving = bd_rate_above(anchor, points, FLAGS.min_bpp)
      rows.append(dict(lmbda=float(lmbda), delta_index=int(j), points=points,
                       bd_rate_vs_usq=saving))
      print(f"{FLAGS.quantizer} λ={lmbda} j={j}: BD-rate vs USQ "
            f"{'n/a' if saving is None else f'{saving:+.2f} %'}", flush=True)
    scored = [r for r in rows if r["bd_rate_vs_usq"] is not None]
    best = min(scored, key=lambda r: r["bd_rate_vs_usq"]) if scored else None
    print(f"best: λ={best['lmbda']} j={best['delta_index']} "
          f"({best['bd_rate_vs_usq']:+.2f} %)" if best else
          f"best: none (no curve overlaps USQ's above {FLAGS.min_bpp} bpp)")
    image_io.write_atomic(FLAGS.output, json.dumps(dict(
        run=FLAGS.run, images=FLAGS.images, max_images=FLAGS.max_images,
        min_bpp=FLAGS.min_bpp,
        quantizer=FLAGS.quantizer, usq=anchor, rows=rows, best=best),
        indent=1).encode(), overwrite=True)
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  app.run(main)
