"""Decompresses a tfc-lic stream into a PNG image.

  tfc-lic-decompress --input=photo.tlic --output=photo.png

The stream's header names its quantizer, rate and step; decoding a stream of
another model, or a corrupt one, fails with a one-line error.
"""

import time

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from tfc_lic import cli
from tfc_lic import container
from tfc_lic import image_io
from tfc_lic import metrics
from tfc_lic import zoo

FLAGS = flags.FLAGS
cli.define_model_flag()
flags.DEFINE_string("input", None, "Stream to decode.")
flags.DEFINE_string("output", None, "PNG to write (default: input.png).")
flags.DEFINE_string("reference", None,
                    "Original image: print PSNR and MS-SSIM against it.")
flags.DEFINE_bool("overwrite", False, "Replace an existing output file.")
flags.DEFINE_integer("max_pixels", container.MAX_PIXELS,
                     "Decode budget: refuse streams whose header claims a "
                     "larger image, before any decoding (memory grows with "
                     "the image).", lower_bound=1)
flags.mark_flag_as_required("input")


def main(argv):
  del argv
  with cli.one_line_errors():
    output = FLAGS.output or FLAGS.input + ".png"
    image_io.check_destination(output, FLAGS.overwrite)
    stream = image_io.read_stream(FLAGS.input)
    size = container.image_size(stream)
    if size and size[0] * size[1] > FLAGS.max_pixels:
      raise ValueError(f"{FLAGS.input}: a {size[1]}x{size[0]} image, above "
                       f"the decode budget of {FLAGS.max_pixels} pixels "
                       "(--max_pixels)")
    codec = zoo.load(FLAGS.model)
    start = time.perf_counter()
    image = codec.signatures["decompress_with_options"](
        stream=tf.constant(stream),
        max_pixels=tf.constant(FLAGS.max_pixels, tf.int64))["image"]
    seconds = time.perf_counter() - start
    image_io.write_atomic(output, image_io.encode_png(image),
                          overwrite=FLAGS.overwrite)
    # A view of the tensor's pixels (.numpy() would copy them).
    image = np.asarray(image)
    height, width = image.shape[:2]
    print(f"{output}: {width}x{height}, "
          f"{metrics.bpp(len(stream), height, width):.4f} bpp "
          f"({seconds:.2f} s)")
    if FLAGS.reference:
      reference = image_io.read_image(FLAGS.reference)
      if reference.shape != image.shape:
        raise ValueError(f"{FLAGS.reference} is {reference.shape[1]}x"
                         f"{reference.shape[0]}, the stream {width}x{height}")
      print(metrics.quality(reference, image))


def run():
  """Console entry point (setup.py)."""
  app.run(main)


if __name__ == "__main__":
  run()
