"""Encode and decode time per image of codec SavedModels (each quantizer)
and of the classic codecs, each at its middle setting: the median wall time
of warm calls, averaged over the images."""

import os

import numpy as np

from tfc_lic import classic
from tfc_lic import codec as codec_lib
from tfc_lic import evaluation
from tfc_lic import learned_codec
from tfc_lic.benchmarks import harness


def run(output_dir, images, max_images, models, repeats):
  """Times the first `max_images` of the folder `images` with every quantizer
  of each of `models` (zoo names or paths) and every classic codec available
  here, `repeats` times each; writes codec_speed.{json,png}."""
  loaded = list(evaluation.load_images(images).values())[:max_images]
  codecs = [learned_codec.LearnedCodec(f"{model}:{q}")
            for model in models for q in codec_lib.QUANTIZERS]
  codecs += classic.available_codecs()[0].values()
  rows = []
  for codec in codecs:
    setting = codec.settings[len(codec.settings) // 2]
    encode, decode = [], []
    for image in loaded:
      stream = codec.encode(image, setting)
      encode.append(harness.median_seconds(
          lambda: codec.encode(image, setting), repeats))
      decode.append(harness.median_seconds(lambda: codec.decode(stream),
                                           repeats))
    rows.append(dict(name=codec.name, setting=str(setting),
                     encode_ms=1000 * float(np.mean(encode)),
                     decode_ms=1000 * float(np.mean(decode))))
    print(f"{codec.name:40s} encode {rows[-1]['encode_ms']:8.1f} ms  "
          f"decode {rows[-1]['decode_ms']:8.1f} ms", flush=True)
  harness.write(
      output_dir, "codec_speed",
      dict(rows=rows, images=images, max_images=max_images,
           models=list(models)),
      harness.bar_figure(rows, ["encode_ms", "decode_ms"],
                         f"ms per image ({os.cpu_count()} CPU cores)"))
  return rows
