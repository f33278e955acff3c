"""The loss of trained weights on several image sets, to tell overfitting
from a capacity floor.

Every rate, latents rounded as validation rounds them, computed in float32 as
the codec does (or in bf16, as a bf16 run validates): a training set's loss
falling apart from a held-out set's is overfitting; falling in step, it is
not.
"""

import numpy as np
import tensorflow as tf

from tfc_lic import zoo
from tfc_lic.benchmarks import harness


def run(output_dir, weights, image_sets, precision="float32",
        whole_images=False):
  """Loss, bpp and PSNR of each of `weights` (zoo.load_trained paths) on each
  of `image_sets` ({name: images}), over all rates and per rate; writes
  generalization.json."""
  rows = []
  for path in weights:
    model, _, _ = zoo.load_trained(path, precision)
    evaluate = tf.function(lambda x, r: model(  # pylint: disable=cell-var-from-loop
        x, tf.fill([tf.shape(x)[0]], r), training=False),
                           reduce_retracing=True)
    for name, images in image_sets.items():
      per_rate = [dict(bpp=[], mse=[]) for _ in model.lmbdas]
      for batch in harness.image_batches(images, whole_images):
        for rate, values in enumerate(per_rate):
          _, bpp, mse = evaluate(batch, tf.constant(rate))
          values["bpp"].extend(bpp.numpy())
          values["mse"].extend(mse.numpy())
      rates = [harness.rd_row(lmbda, v["bpp"], v["mse"])
               for lmbda, v in zip(model.lmbdas, per_rate)]
      row = dict(weights=path, images=name, precision=precision, rates=rates,
                 **{k: float(np.mean([r[k] for r in rates]))
                    for k in ("loss", "bpp", "mse", "psnr")})
      print(f"{path:50s} {name:12s} loss {row['loss']:.4f} "
            f"bpp {row['bpp']:.4f} psnr {row['psnr']:.2f}  per rate: " +
            " ".join(f"{r['loss']:.4f}" for r in rates), flush=True)
      rows.append(row)
  harness.write(output_dir, "generalization", dict(rows=rows))
  return rows
