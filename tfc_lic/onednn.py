"""Imported first by the binaries: turns on TensorFlow's oneDNN CPU kernels.

TF 2.14 enables oneDNN by default only on CPUs with AVX512 and newer. Where
it leaves it off (e.g. AVX2-only AMD EPYC), its Eigen convolutions are slower
(measured on kodim23: decode 1.0-1.2 s vs 0.73 s, a 256²×8 fp32 training step
4.9 vs 4.4 s) and sum in a thread-count-dependent order, so decoders with
different thread counts round a few pixels differently. Has effect only
before TensorFlow is imported; an explicit TF_ENABLE_ONEDNN_OPTS wins.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
