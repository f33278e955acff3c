"""Tiled against untiled coding of the same images, side by side in one
process: stream size, PSNR, and PSNR in the band of +-8 px along the tile
borders, where seams would show. Untiled is the same model and coder run on
the whole image at once (one z string, one y string, as before tiling)."""

import numpy as np
from PIL import Image
import tensorflow as tf

from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import evaluation
from tfc_lic import metrics
from tfc_lic import plotting
from tfc_lic import tiling
from tfc_lic import zoo
from tfc_lic.benchmarks import harness

BAND = 8  # pixels on either side of a tile border


def untiled(codec):
  """A tf.function (image, quantizer, rate, delta_index) -> (stream bytes,
  decoded image) that codes the whole image at once."""
  model, transforms, coder = codec.model, codec.transforms, codec.coder

  @tf.function(input_signature=codec_lib.ENCODE_SIGNATURE)
  def code(image, quantizer, rate, delta_index):
    rate = codec_lib.container_rate(rate)
    latents = transforms.untiled_latents(tf.cast(image, tf.float32)[None],
                                         rate)
    k, table, y_hat = transforms.quantize(
        latents["y"], latents["loc"], latents["scale_index"], quantizer,
        delta_index)
    size = (tf.strings.length(coder.encode_side(latents["z"])) +
            tf.strings.length(coder.encode_tile(k, table, quantizer)) +
            container.header_size(1) + container.CHECKSUM_SIZE)
    x_hat = codec_lib.switch_quantizer(quantizer, lambda i: model.synthesize(
        y_hat, rate, tf.shape(image)[:2],
        model.synthesis_for(codec_lib.QUANTIZERS[i])))
    return size, tf.saturate_cast(tf.round(x_hat[0]), tf.uint8)

  return code


def border_band(height, width):
  """Boolean [height, width]: within BAND px of an inner tile border."""
  side = tiling.TILE * tiling.STRIDE
  near = lambda n: np.any([np.abs(np.arange(n) + .5 - border) < BAND
                           for border in range(side, n, side)] or
                          [np.zeros(n, bool)], axis=0)
  return near(height)[:, None] | near(width)[None, :]


def _band_psnr(image, decoded, band):
  error = (image.astype(np.float64) - decoded) ** 2
  return float(harness.psnr(error[band].mean()))


def run(output_dir, model, images, max_images, quantizers, upscale):
  """Each of the first `max_images` of `images`, upscaled by `upscale`
  (Lanczos) to span several tiles, at every rate of `model` with each of
  `quantizers`; writes seams.{json,png}."""
  trained, _, _ = zoo.load_trained(model)
  codec = codec_lib.ImageCodec(trained)
  whole = untiled(codec)
  info = zoo.metadata(zoo.find(model))
  rows = []
  for name, image in list(evaluation.load_images(images).items())[
      :max_images]:
    height, width = (upscale * n for n in image.shape[:2])
    image = np.asarray(Image.fromarray(image).resize((width, height),
                                                     Image.LANCZOS))
    band = border_band(height, width)
    for quantizer in quantizers:
      q = codec_lib.quantizer_id(quantizer)
      delta_index = info["delta_indexes"][quantizer]
      for rate in range(trained.num_rates):
        stream = codec.compress(image, q, float(rate), delta_index)
        tiled = codec.decompress(stream).numpy()
        size, reference = whole(image, q, float(rate), delta_index)
        reference = reference.numpy()
        rows.append(dict(
            image=name, quantizer=quantizer, rate=rate,
            tiles=int(tiling.Grid(height, width).count),
            bpp=metrics.bpp(len(stream.numpy()), height, width),
            untiled_bpp=metrics.bpp(int(size), height, width),
            psnr=metrics.psnr(image, tiled),
            untiled_psnr=metrics.psnr(image, reference),
            band_psnr=_band_psnr(image, tiled, band),
            untiled_band_psnr=_band_psnr(image, reference, band)))
        print(name, quantizer, rate, {k: round(v, 4) for k, v in
                                      rows[-1].items()
                                      if isinstance(v, float)}, flush=True)
  summary = {}
  for quantizer in quantizers:
    for rate in range(trained.num_rates):
      at = [r for r in rows if r["quantizer"] == quantizer and
            r["rate"] == rate]
      bpp = [r["bpp"] / r["untiled_bpp"] - 1 for r in at]
      psnr = [r["psnr"] - r["untiled_psnr"] for r in at]
      band = [r["band_psnr"] - r["untiled_band_psnr"] for r in at]
      summary[f"{quantizer} rate {rate}"] = dict(
          bpp_change_mean=float(np.mean(bpp)),
          bpp_change_max=float(np.max(np.abs(bpp))),
          psnr_change_max_db=float(np.max(np.abs(psnr))),
          band_psnr_change_max_db=float(np.max(np.abs(band))),
          bpp=float(np.mean([r["bpp"] for r in at])))
  fig = plotting.new_figure(7, 4)
  ax = fig.add_subplot()
  for quantizer in quantizers:
    keys = [f"{quantizer} rate {r}" for r in range(trained.num_rates)]
    ax.plot([summary[k]["bpp"] for k in keys],
            [100 * summary[k]["bpp_change_mean"] for k in keys], "o-",
            label=f"{quantizer}: size, tiled vs untiled (%)")
    ax.plot([summary[k]["bpp"] for k in keys],
            [summary[k]["band_psnr_change_max_db"] for k in keys], "s--",
            label=f"{quantizer}: border band PSNR, largest change (dB)")
  ax.set_xlabel("bpp")
  ax.legend()
  harness.write(output_dir, "seams", dict(
      model=model, images=images, max_images=max_images, upscale=upscale,
      band_px=BAND, summary=summary, rows=rows), fig)
  return summary
