"""Peak memory of one encode and one decode per image size, each in a fresh
process (the peak resident size only grows), with the loaded model's."""

import os
import resource
import tempfile
import time

import numpy as np
from PIL import Image
import tensorflow as tf

from tfc_lic import zoo
from tfc_lic.benchmarks import harness


def _peak_gb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(mode, side, stream, model, image):
  """The worker: peak RSS (GB) and seconds of encoding `image` resized to
  side² into the file `stream` ("encode") or of decoding it ("decode"), and
  the peak with `model` loaded and warmed up on a 64² image."""
  codec = zoo.load(model)
  with Image.open(image) as source:
    source = source.convert("RGB")
  small = tf.constant(np.asarray(source.resize((64, 64))))
  codec.signatures["decompress"](
      stream=codec.signatures["compress"](image=small)["stream"])
  loaded = _peak_gb()
  start = time.perf_counter()
  if mode == "encode":
    resized = tf.constant(np.asarray(source.resize((side, side),
                                                   Image.BICUBIC)))
    with open(stream, "wb") as f:
      f.write(codec.signatures["compress"](image=resized)["stream"].numpy())
  else:
    with open(stream, "rb") as f:
      codec.signatures["decompress"](stream=tf.constant(f.read()))
  return dict(peak_gb=_peak_gb(), model_gb=loaded,
              seconds=time.perf_counter() - start)


def run(output_dir, sizes, model, image):
  """Encodes `image` resized to each side of `sizes` and decodes it with
  `model` (zoo name or path); writes codec_memory.{json,png}."""
  rows = []
  with tempfile.TemporaryDirectory() as scratch:
    for side in sizes:
      row = dict(name=f"{side}x{side}", megapixels=side * side / 1e6)
      for mode in ("encode", "decode"):
        result = harness.run_worker(
            measure, mode=mode, side=side, model=model, image=image,
            stream=os.path.join(scratch, "stream"))
        row[f"{mode}_peak_gb"] = result["peak_gb"]
        row[f"{mode}_seconds"] = result["seconds"]
        row["model_gb"] = result["model_gb"]
      print(f"{row['name']:>12s} encode {row['encode_peak_gb']:6.2f} GB "
            f"{row['encode_seconds']:6.1f} s   decode "
            f"{row['decode_peak_gb']:6.2f} GB {row['decode_seconds']:6.1f} s",
            flush=True)
      rows.append(row)
  harness.write(output_dir, "codec_memory", dict(rows=rows, model=model),
                harness.bar_figure(rows, ["encode_peak_gb", "decode_peak_gb"],
                                   "peak resident memory (GB)"))
  return rows
