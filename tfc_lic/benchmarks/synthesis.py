"""The distortion of stage-2 syntheses on the latents the codec decodes.

Each quantizer's synthesis of each stage-2 run, every rate, on latents
quantized exactly as the export's codec does (same Δ and TCQ λ), in float32
as it decodes: stage-2 variants compared side by side (their rates are the
same, being fixed by stage 1).
"""

import os

import numpy as np
import tensorflow as tf

from tfc_lic import finetuning
from tfc_lic import plotting
from tfc_lic import settings
from tfc_lic import zoo
from tfc_lic.benchmarks import harness


def run(output_dir, weights, image_sets, tcq_lambda=settings.TCQ_LAMBDA,
        delta_indexes=None, whole_images=False):
  """MSE and PSNR per rate of each stage-2 synthesis of `weights`
  (zoo.load_trained paths) on each of `image_sets` ({name: images}), with
  `delta_indexes` ({quantizer: j}, the shipped ones by default); writes
  synthesis.{json,png}."""
  rows = []
  for path in weights:
    model, config, _ = zoo.load_trained(path)
    if not config.get("finetuned_quantizers"):
      raise ValueError(f"no stage-2 weights at {path} (its config.json names "
                       "no finetuned_quantizers)")
    finetuner = finetuning.SynthesisFinetuner(
        model, tcq_lambda=tcq_lambda, delta_indexes=delta_indexes)
    distortions = tf.function(lambda x, r: finetuner.distortions(  # pylint: disable=cell-var-from-loop
        tf.cast(x, tf.float32), tf.fill([tf.shape(x)[0]], r)))
    for name, images in image_sets.items():
      mses = {q: [[] for _ in model.lmbdas] for q in finetuner.quantizers}
      for batch in harness.image_batches(images, whole_images):
        for rate in range(model.num_rates):
          for q, mse in zip(finetuner.quantizers,
                            distortions(batch, tf.constant(rate))):
            mses[q][rate].extend(mse.numpy())
      for q, delta_index in zip(finetuner.quantizers, finetuner.delta_indexes):
        mse = [float(np.mean(m)) for m in mses[q]]
        psnr = [float(p) for p in harness.psnr(mse)]
        rows.append(dict(weights=path, images=name, quantizer=q,
                         delta_index=delta_index, tcq_lambda=tcq_lambda,
                         mse=mse, psnr=psnr, mean_psnr=float(np.mean(psnr))))
        print(f"{path:50s} {name:12s} {q:5s} mean PSNR "
              f"{rows[-1]['mean_psnr']:.4f} dB  MSE per rate: " +
              " ".join(f"{m:.3f}" for m in mse), flush=True)
  harness.write(output_dir, "synthesis", dict(rows=rows), _plot(rows))
  return rows


def _plot(rows):
  """PSNR per rate of each row against the first run's on the same quantizer
  and images: stage-2 variants differ by hundredths of a dB."""
  fig = plotting.new_figure(6, 4)
  ax = fig.add_subplot()
  first = {(r["quantizer"], r["images"]): r["psnr"] for r in reversed(rows)}
  for r in rows:
    ax.plot(np.subtract(r["psnr"], first[r["quantizer"], r["images"]]), "o-",
            label=f"{os.path.basename(r['weights'].rstrip('/'))} "
                  f"{r['quantizer']} {r['images']}")
  ax.set_xlabel("rate index")
  ax.set_ylabel(f"PSNR vs {rows[0]['weights']} (dB)")
  ax.legend(fontsize="small")
  return fig
