"""The core-op rANS coder (tfc_lic.rans) against tfc's range coder on the
same latents (#59): size of the y string and time to code it, per quantizer,
rate and lane count, in one run.

The latents of each image are coded in the codec's order (per position,
along the channels), split into `lanes` runs of positions. rANS uses the
codec's own tables; an index outside its table costs the overflow symbol
plus the Elias-gamma bits tfc spends on it. Decoding here reads the tables
from the encoder (the codec's decoder derives them from the hyperprior and,
for TCQ, the trellis state: a few more ops a step).
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tfc_lic import codec as codec_lib
from tfc_lic import container
from tfc_lic import evaluation
from tfc_lic import rans
from tfc_lic import zoo
from tfc_lic.benchmarks import harness


def _cdfs(tables):
  """The tables' cdfs [tables, length] (tfc's rows without their precision)
  and index offsets [tables], as numpy arrays."""
  return (tables.lookup.numpy()[:, 1:].astype(np.int64),
          tables.offset.numpy())


def _symbols(cdf, offsets, k, table):
  """rANS symbols, (starts, freqs), overflow count and gamma bits of `k`."""
  offset = offsets[table]
  size = -2 * offset + 1
  symbol = k - offset
  inside = (symbol >= 0) & (symbol < size)
  position = np.where(inside, symbol, size)
  starts = cdf[table, position]
  freqs = cdf[table, position + 1] - starts
  excess = np.where(symbol < 0, -symbol, symbol - size + 1)[~inside]
  gamma = (2 * np.floor(np.log2(np.maximum(excess, 1))) + 1).sum()
  return position, starts, freqs, int((~inside).sum()), float(gamma)


def _in_lanes(values, lanes):
  """[n] in coding order -> [steps, lanes] (lane i: the i-th run) and the
  mask of real entries."""
  steps = -(-len(values) // lanes)
  padded = np.zeros(steps * lanes, values.dtype)
  padded[:len(values)] = values
  active = np.arange(steps * lanes) < len(values)
  to_lanes = lambda v: v.reshape(lanes, steps).T
  return to_lanes(padded), to_lanes(active)


def run(output_dir, model, images, max_images, lane_counts, repeats):
  """Codes each image's latents at every rate with USQ and TCQ-8 by both
  coders; writes entropy_coder.{json,png} with the rows and `summarize`."""
  trained, _, _ = zoo.load_trained(model)
  info = zoo.metadata(zoo.find(model))
  codec = codec_lib.ImageCodec(trained, tcq_lambda=info["tcq_lambda"])
  analyze = tf.function(codec.transforms.analyze)
  tables = codec.tables
  cdf, offsets = _cdfs(tables)
  cdfs = tf.constant(cdf)
  range_encode = tf.function(lambda table, symbols: tfc.entropy_encode_finalize(
      tfc.entropy_encode_index(tfc.create_range_encoder([], tables.lookup),
                               table, symbols)))
  range_decode = tf.function(lambda string, table: tfc.entropy_decode_index(
      tfc.create_range_decoder(string, tables.lookup), table, tf.shape(table),
      tf.int32)[1])
  coders = {jit: (tf.function(rans.encode, jit_compile=jit),
                  tf.function(rans.decode, jit_compile=jit))
            for jit in (False, True)}
  loaded = list(evaluation.load_images(images).items())[:max_images]
  rows = []
  for name, image in loaded:
    for quantizer in ("usq", "tcq8"):
      for rate in range(len(info["lmbdas"])):
        out = analyze(image, codec_lib.quantizer_id(quantizer), float(rate),
                      info["delta_indexes"][quantizer])
        k = out["k"].numpy().ravel()
        table = out["table"].numpy().ravel()
        indexes = k - offsets[table]
        tfc_string = range_encode(table, indexes)
        row = dict(image=name, quantizer=quantizer, rate=rate,
                   symbols=len(k), tfc_bytes=len(tfc_string.numpy()),
                   tfc_encode_ms=1000 * harness.median_seconds(
                       lambda: range_encode(table, indexes), repeats),
                   tfc_decode_ms=1000 * harness.median_seconds(
                       lambda: range_decode(tfc_string, table), repeats))
        symbols, starts, freqs, overflows, gamma = _symbols(cdf, offsets, k,
                                                            table)
        row.update(overflows=overflows, lanes={})
        for lanes in lane_counts:
          (s, active), (f, _), (t, _), (expected, _) = (
              _in_lanes(v, lanes) for v in (starts, freqs, table, symbols))
          result = dict()
          # Without XLA a loop step costs ~100x more: timed at the most
          # lanes (fewest steps) only.
          for jit, (encode, decode) in coders.items():
            if not jit and lanes != max(lane_counts):
              continue
            words, states = encode(s, f, active)
            decoded, intact = decode(words, states, cdfs, t, active)
            assert bool(intact)
            np.testing.assert_array_equal(decoded.numpy()[active],
                                          expected[active])
            mode = "xla" if jit else "graph"
            result[f"{mode}_encode_ms"] = 1000 * harness.median_seconds(
                lambda: encode(s, f, active), repeats)
            result[f"{mode}_decode_ms"] = 1000 * harness.median_seconds(
                lambda: decode(words, states, cdfs, t, active), repeats)
          bits = 16 * int(tf.size(words)) + 32 * lanes + gamma
          result["bytes"] = int(np.ceil(bits / 8))
          result["overhead"] = result["bytes"] / row["tfc_bytes"] - 1
          row["lanes"][str(lanes)] = result
        rows.append(row)
        print(f"{name} {quantizer} rate {rate}: tfc {row['tfc_bytes']} B "
              f"{row['tfc_decode_ms']:.1f} ms; " + "; ".join(
                  f"{l} lanes {r['overhead']:+.2%}, decode "
                  f"{r['xla_decode_ms']:.1f} ms" for l, r in
                  row["lanes"].items()), flush=True)
  summary = summarize(rows, lane_counts)
  harness.write(
      output_dir, "entropy_coder",
      dict(rows=rows, summary=summary, model=model, images=images,
           max_images=max_images, container_version=container.VERSION),
      figure(summary))
  return summary


def summarize(rows, lane_counts):
  """Per lane count: rANS's mean size overhead (%) and XLA times as
  multiples of tfc's."""
  return [dict(
      name=f"{lanes} lanes",
      overhead_percent=100 * float(np.mean(
          [r["lanes"][str(lanes)]["overhead"] for r in rows])),
      **{f"{step}_vs_tfc": float(np.mean(
          [r["lanes"][str(lanes)][f"xla_{step}_ms"] / r[f"tfc_{step}_ms"]
           for r in rows])) for step in ("decode", "encode")})
          for lanes in lane_counts]


def figure(summary):
  return harness.bar_figure(
      summary, ["overhead_percent", "decode_vs_tfc", "encode_vs_tfc"],
      "rANS: size overhead (%) and XLA time (multiple of tfc's)")
