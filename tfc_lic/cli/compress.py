"""Compresses an image (PNG/JPEG/...) into a tfc-lic stream.

  tfc-lic-compress --input=photo.png --output=photo.tlic --metrics

Uses a codec SavedModel (--model: a path or a zoo name, see tfc_lic/zoo.py);
--refine_steps encodes through its core model instead (tfc_lic.client).
With --metrics it also decodes the stream and prints PSNR and MS-SSIM.
"""

import math
import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tfc_lic import cli
from tfc_lic import container
from tfc_lic import image_io
from tfc_lic import latent_codecs
from tfc_lic import metrics
from tfc_lic import refinement
from tfc_lic import zoo

FLAGS = flags.FLAGS
cli.define_model_flag()
flags.DEFINE_string("input", None, "Image to compress.")
flags.DEFINE_string("output", None, "Stream to write (default: input.tlic).")
flags.DEFINE_enum("quantizer", None, list(latent_codecs.QUANTIZER_IDS),
                  "Quantizer (default: the model's).")
flags.DEFINE_float("rate", None,
                   "Rate index of a variable-rate model, 0 (lowest) to "
                   "#λ-1; fractional values interpolate (default: model's).")
flags.DEFINE_float("delta", None,
                   "Quantizer step Δ, rounded to the grid 2**(j/8) "
                   "(default: the model's).")
flags.DEFINE_integer("refine_steps", 0,
                     "Refine the latents by this many gradient steps on the "
                     "image's rate-distortion cost before coding: slower "
                     "encoding (~1.4 s a step per megapixel on 2 cores), "
                     "smaller streams at the same quality, same decoder.")
flags.DEFINE_bool("metrics", False, "Decode and print PSNR and MS-SSIM.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.mark_flag_as_required("input")


def delta_index(delta):
  if not delta > 0 or not math.isfinite(delta):
    raise ValueError(f"--delta must be positive, not {delta}")
  index = round(8 * math.log2(delta))
  if not container.MIN_DELTA_INDEX <= index <= container.MAX_DELTA_INDEX:
    raise ValueError(f"--delta must be from "
                     f"{2 ** (container.MIN_DELTA_INDEX / 8):g} to "
                     f"{2 ** (container.MAX_DELTA_INDEX / 8):g}, not {delta}")
  return index


def _codec(model, refine_steps):
  """(metadata, encode(image tensor, quantizer, rate, j) -> bytes,
  decode(bytes) -> image) of the codec SavedModel `model`; with refinement,
  of its core model through the client (the full model does not refine)."""
  path = zoo.find(model)
  if refine_steps:
    coder = zoo.load_core(path)
    # (np.asarray shares the tensor's pixels.)
    return coder.info, lambda image, *options: coder.compress(
        np.asarray(image), *options, refine_steps=refine_steps), (
            coder.decompress)
  codec = zoo.load(path)

  def encode(image, quantizer, rate, j):
    return codec.signatures["compress_with_options"](
        image=image,
        quantizer=tf.constant(latent_codecs.QUANTIZER_IDS[quantizer]),
        rate=tf.constant(rate, tf.float32),
        delta_index=tf.constant(j))["stream"].numpy()

  return codec.info, encode, lambda stream: codec.signatures["decompress"](
      stream=tf.constant(stream))["image"].numpy()


def main(argv):
  del argv
  with cli.one_line_errors():
    output = FLAGS.output or FLAGS.input + ".tlic"
    image_io.check_destination(output, FLAGS.overwrite)
    if not 0 <= FLAGS.refine_steps <= refinement.MAX_STEPS:
      raise ValueError(
          f"--refine_steps must be in [0, {refinement.MAX_STEPS}]")
    # One copy of the pixels (the tensor), whatever the image's size.
    image = image_io.to_tensor(image_io.read_image(FLAGS.input))
    info, encode, decode = _codec(FLAGS.model, FLAGS.refine_steps)
    quantizer = FLAGS.quantizer or info["default_quantizer"]
    rate = info["default_rate"] if FLAGS.rate is None else FLAGS.rate
    if not 0 <= rate <= len(info["lmbdas"]) - 1:
      raise ValueError(f"--rate must be in [0, {len(info['lmbdas']) - 1}]")
    j = (info["delta_indexes"][quantizer] if FLAGS.delta is None
         else delta_index(FLAGS.delta))
    start = time.perf_counter()
    stream = encode(image, quantizer, rate, j)
    seconds = time.perf_counter() - start
    image_io.write_atomic(output, stream, overwrite=FLAGS.overwrite)
    print(f"{output}: {len(stream)} bytes, "
          f"{metrics.bpp(len(stream), *image.shape[:2]):.4f} bpp "
          f"({quantizer}, rate {rate:g}, delta {2 ** (j / 8):.4g}, "
          f"{FLAGS.refine_steps} refinement steps, {seconds:.2f} s)")
    if FLAGS.metrics:
      print(metrics.quality(image.numpy(), decode(stream)))


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
