"""The codec's entropy coder (index_coder: rANS in core TF ops, XLA loops)
against tfc's range coder, in one run (#59): the same model and latents
coded by two codecs that differ only in their coder, per image, quantizer
and rate index: container size and whole compress/decompress time.

The baseline (`RangeCoder`) is the coder the codec had up to v18: tfc's
range-coding ops, Elias-gamma escapes, TCQ decoded channel by channel.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import evaluation
from tfc_lic import scale_grid
from tfc_lic import tiling
from tfc_lic import zoo
from tfc_lic.benchmarks import harness
from tfc_lic.latent_codecs import tcq
from tfc_lic.latent_codecs import usq


class RangeCoder(codec_lib.EntropyCoder):
  """EntropyCoder with tfc's range coder (the pre-v19 coder)."""

  def __init__(self, side_model, codecs, *args):
    super().__init__((side_model.cdf.numpy(), side_model.cdf_offset.numpy(),
                      side_model.quantization_offset.numpy()), codecs, *args)
    self.side_model = side_model
    self.lookup = codecs[0].tables.lookup

  def encode_side(self, z):
    return self.side_model.compress(z)[0]

  def encode_tile(self, k, table, quantizer):
    k, table = self.latent_symbols(k, table, quantizer)
    handle = tfc.entropy_encode_index(
        tfc.create_range_encoder([], self.lookup), table,
        k - tf.gather(self.latent_codecs[0].tables.offset, table))
    return tfc.entropy_encode_finalize(handle)

  def decode_side(self, stream, max_pixels=container.MAX_PIXELS):
    del max_pixels  # The codec's check, not the coder's: not timed here.
    fields = container.unpack(stream, self.model_id)
    z_shape = tiling.Grid(fields["height"], fields["width"]).z_shape
    return fields, self.side_model.decompress(fields["z_string"][None],
                                              z_shape)

  def start_tile(self, y_string):
    return tfc.create_range_decoder(y_string, self.lookup)

  def read_pass(self, cursor, quantizer, delta_index, loc, scale_index):
    return codec_lib.switch_quantizer(quantizer, lambda i: _read(
        self.latent_codecs[i], cursor, loc, scale_index, delta_index))

  def finish_tile(self, cursor, *tensors):
    with tf.control_dependencies([tf.debugging.assert_equal(
        tfc.entropy_decode_finalize(cursor), True)]):
      return tuple(tf.identity(t) for t in tensors)


def _read(codec, handle, loc, scale_index, delta_index):
  """A latent codec's decoding with tfc's range decoder: (handle, k, y_hat)."""
  tables = codec.tables
  scales = usq.scale_indexes(scale_index, tables.num_scales)
  delta = scale_grid.step_size(delta_index)
  if isinstance(codec, usq.UniformQuantizer):
    table = tf.reshape(tables.table_index(codec.bank, scales, delta_index),
                       [-1])
    handle, symbols = tfc.entropy_decode_index(handle, table, tf.shape(table),
                                               tf.int32)
    k = tf.reshape(symbols + tf.gather(tables.offset, table), tf.shape(loc))
    return handle, k, loc + tf.cast(k, tf.float32) * delta
  base = codec.coding_order(tables.table_index(0, scales, delta_index))
  steps, n = tf.shape(base)[0], tf.shape(base)[1]

  def body(t, handle, state, ks, qs):
    q = tf.gather(codec.state_quantizer, state)
    table = tables.table_index(tf.gather(tcq.BANKS, q), base[t], 0)
    handle, symbol = tfc.entropy_decode_index(handle, table, [n], tf.int32)
    k = symbol + tf.gather(tables.offset, table)
    state = tf.gather_nd(codec.transitions,
                         tf.stack([state, tf.bitwise.bitwise_and(k, 1)], -1))
    return t + 1, handle, state, ks.write(t, k), qs.write(t, q)

  _, handle, _, ks, qs = tf.while_loop(
      lambda t, *_: t < steps, body,
      (0, handle, tf.zeros([n], tf.int32), tf.TensorArray(tf.int32, steps),
       tf.TensorArray(tf.int32, steps)))
  k, q = ks.stack(), qs.stack()
  level = tf.cast(tcq.quantizer_levels(q, k), tf.float32)
  shape = tf.shape(loc)
  return handle, tf.reshape(tf.transpose(k), shape), loc + tf.reshape(
      tf.transpose(level), shape) * delta


def _codecs(model, tcq_lambda):
  """(the codec, the same codec with tfc's range coder)."""
  codec = codec_lib.ImageCodec(model, tcq_lambda=tcq_lambda)
  baseline = codec_lib.ImageCodec(model, tcq_lambda=tcq_lambda)
  baseline.coder = RangeCoder(
      baseline.transforms.side_model, baseline.latent_codecs,
      codec_lib.encoder_fingerprint(model), model.num_rates,
      model.coding_scheme)
  return codec, baseline


def run(output_dir, model, images, max_images, quantizers, repeats,
        timed_images):
  """Codes each image at every rate index with each quantizer by both
  codecs, timing the first `timed_images`; writes entropy_coder.{json,png}
  with the rows and `summarize`."""
  trained, _, _ = zoo.load_trained(model)
  info = zoo.metadata(zoo.find(model))
  coders = dict(zip(("rans", "tfc"), _codecs(trained, info["tcq_lambda"])))
  loaded = list(evaluation.load_images(images).items())[:max_images]
  rows = []
  for index, (name, image) in enumerate(loaded):
    for quantizer in quantizers:
      for rate in range(len(info["lmbdas"])):
        args = (image, codec_lib.quantizer_id(quantizer), float(rate),
                info["delta_indexes"][quantizer])
        row = dict(image=name, quantizer=quantizer, rate=rate)
        decoded = {}
        for label, codec in coders.items():
          stream = codec.compress(*args)
          decoded[label] = codec.decompress(stream).numpy()
          row[f"{label}_bytes"] = len(stream.numpy())
          if index >= timed_images:
            continue
          row[f"{label}_encode_ms"] = 1000 * harness.median_seconds(
              lambda codec=codec: codec.compress(*args), repeats)
          row[f"{label}_decode_ms"] = 1000 * harness.median_seconds(
              lambda codec=codec, stream=stream: codec.decompress(stream),
              repeats)
        assert np.array_equal(decoded["rans"], decoded["tfc"]), name
        row["overhead"] = row["rans_bytes"] / row["tfc_bytes"] - 1
        rows.append(row)
        print(f"{name} {quantizer} rate {rate}: {row['rans_bytes']} B "
              f"({row['overhead']:+.2%})" + (
                  f"; encode {row['rans_encode_ms']:.0f} / "
                  f"{row['tfc_encode_ms']:.0f} ms, decode "
                  f"{row['rans_decode_ms']:.0f} / {row['tfc_decode_ms']:.0f}"
                  " ms" if index < timed_images else ""), flush=True)
  summary = summarize(rows)
  harness.write(
      output_dir, "entropy_coder",
      dict(rows=rows, summary=summary, model=model, images=images,
           max_images=max_images, container_version=container.VERSION),
      figure(summary))
  return summary


def summarize(rows):
  """Per quantizer and rate index: size overhead (%, mean and worst over the
  images) and time as a multiple of the tfc codec's (mean of ratios)."""
  groups = {}
  for row in rows:
    groups.setdefault((row["quantizer"], row["rate"]), []).append(row)
  return [dict(
      name=f"{quantizer} rate {rate}",
      overhead_percent=100 * float(np.mean([r["overhead"] for r in group])),
      worst_overhead_percent=100 * float(max(r["overhead"] for r in group)),
      **{f"{step}_vs_tfc": float(np.mean(
          [r[f"rans_{step}_ms"] / r[f"tfc_{step}_ms"] for r in group
           if f"rans_{step}_ms" in r]))
         for step in ("encode", "decode")})
               for (quantizer, rate), group in groups.items()]


def figure(summary):
  return harness.bar_figure(
      summary, ["overhead_percent", "encode_vs_tfc", "decode_vs_tfc"],
      "rANS codec vs tfc's range coder: size overhead (%), time (multiple)")
