"""Peak memory and speed of one encode and one decode per image size, each in
a fresh process (the peak resident size only grows), with the loaded
model's; the largest also through the client and the core model. The
images are mosaics of a folder's photographs at 3:2, and a panorama as wide
as the format allows, generated in the worker (nothing is written but the
stream)."""

import math
import os
import resource
import tempfile
import time

import numpy as np
import tensorflow as tf

from tfc_lic import container
from tfc_lic import evaluation
from tfc_lic import image_io
from tfc_lic import zoo
from tfc_lic.benchmarks import harness


def _peak_gb():
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def shape(megapixels):
  """(height, width) of a 3:2 image of about `megapixels`."""
  width = round(math.sqrt(megapixels * 1e6 * 1.5))
  return round(width / 1.5), width


def panorama(megapixels):
  """(height, width) of an image of about `megapixels` MAX_SIDE px wide:
  the widest rows of tiles the codec meets."""
  return round(megapixels * 1e6 / container.MAX_SIDE), container.MAX_SIDE


def mosaic(images, height, width):
  """uint8 [height, width, 3] tiled with `images` (uint8 arrays), row by
  row, each cut to the row's height; every other copy mirrored."""
  out = np.empty([height, width, 3], np.uint8)
  index, top = 0, 0
  while top < height:
    row = min(min(i.shape[0] for i in images), height - top)
    left = 0
    while left < width:
      image = images[index % len(images)][:row]
      if index % 2:
        image = image[:, ::-1]
      cut = min(image.shape[1], width - left)
      out[top:top + row, left:left + cut] = image[:, :cut]
      left += cut
      index += 1
    top += row
  return out


# Refinement steps of the client's encode: its peak does not grow with them.
CLIENT_REFINE_STEPS = 1


def _coder(model, client):
  """(encode(uint8 tensor) -> bytes, decode(bytes) -> uint8 image) of the
  SavedModel `model` loaded in this process (the decoded tensor, not a
  NumPy copy of it), or with `client` of its core model through
  tfc_lic.client, encoding refined (the only way to refine)."""
  if client:
    coder = zoo.load_core(model)
    # (np.asarray shares the tensor's pixels.)
    return (lambda image: coder.compress(
        np.asarray(image), refine_steps=CLIENT_REFINE_STEPS),
            coder.decompress)
  codec = zoo.load(model)
  return (lambda image: codec.signatures["compress"](
      image=image)["stream"].numpy(),
          lambda data: codec.signatures["decompress"](
              stream=tf.constant(data))["image"])


def measure(mode, height, width, stream, model, images, client=False):
  """The worker: peak RSS (GB) and seconds of encoding a mosaic of
  `images` (a folder) of height x width into the file `stream` ("encode") or
  of decoding it ("decode"), and the peak with the model loaded and warmed
  up on a 64² image (see _coder). The time is the second of two runs: the
  first compiles the coder's loops for the size (once per size class in a
  server); the client's is its one run, compilation included."""
  encode, decode = _coder(model, client)
  sources = list(evaluation.load_images(images).values())
  decode(encode(tf.constant(sources[0][:64, :64])))
  loaded = _peak_gb()
  if mode == "encode":
    image = image_io.to_tensor(mosaic(sources, height, width))
    run = lambda: encode(image)
  else:
    with open(stream, "rb") as f:
      data = f.read()
    run = lambda: decode(data)
  if not client:
    run()  # (its output freed before the timed run)
  start = time.perf_counter()
  out = run()
  seconds = time.perf_counter() - start
  if mode == "encode":
    with open(stream, "wb") as f:
      f.write(out)
  else:
    assert out.shape == (height, width, 3)
  return dict(peak_gb=_peak_gb(), model_gb=loaded, seconds=seconds,
              bpp=8 * os.path.getsize(stream) / (height * width))


def run(output_dir, megapixels, model, images):
  """Encodes a mosaic of the folder `images` at each size of `megapixels`
  (3:2) and as a panorama of the largest, and decodes it with `model` (zoo
  name or path); then the largest through the client and `model`'s core
  model, refining (CLIENT_REFINE_STEPS); writes codec_memory.{json,png}."""
  rows = []
  cases = [(shape(size), False) for size in megapixels] + [
      (panorama(max(megapixels)), False), (shape(max(megapixels)), True)]
  with tempfile.TemporaryDirectory() as scratch:
    for (height, width), client in cases:
      row = dict(name=f"{width}x{height}" + (" client" if client else ""),
                 megapixels=height * width / 1e6, client=client)
      for mode in ("encode", "decode"):
        result = harness.run_worker(
            measure, mode=mode, height=height, width=width, model=model,
            images=images, stream=os.path.join(scratch, "stream"),
            client=client)
        row[f"{mode}_peak_gb"] = result["peak_gb"]
        row[f"{mode}_seconds"] = result["seconds"]
        row[f"{mode}_megapixels_per_second"] = (
            row["megapixels"] / result["seconds"])
        row["model_gb"] = result["model_gb"]
        row["bpp"] = result["bpp"]
      print(f"{row['name']:>19s} encode {row['encode_peak_gb']:6.2f} GB "
            f"{row['encode_seconds']:6.1f} s   decode "
            f"{row['decode_peak_gb']:6.2f} GB {row['decode_seconds']:6.1f} s",
            flush=True)
      rows.append(row)
  harness.write(output_dir, "codec_memory",
                dict(rows=rows, model=model, images=images,
                     client_refine_steps=CLIENT_REFINE_STEPS),
                harness.bar_figure(rows, ["encode_peak_gb", "decode_peak_gb"],
                                   "peak resident memory (GB)"))
  return rows
