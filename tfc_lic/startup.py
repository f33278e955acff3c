"""Imported first by the binaries: starts TensorFlow the way they need it.

- oneDNN CPU kernels on. TF 2.14 enables them by default only on CPUs with
  AVX512 and newer. Where it leaves them off (e.g. AVX2-only AMD EPYC), its
  Eigen convolutions are slower (measured on kodim23: decode 1.0-1.2 s vs
  0.73 s, a 256²×8 fp32 training step 4.9 vs 4.4 s) and sum in a
  thread-count-dependent order, so decoders with different thread counts
  round a few pixels differently.
- TF's C++ info and warning logs off (TF_CPP_MIN_LOG_LEVEL=2): CUDA, TensorRT
  and CPU-feature notices on every run; errors still show.
- glibc's malloc limited to 2 arenas (as MALLOC_ARENA_MAX=2 would): by
  default each of TF's threads may get an arena that keeps the memory
  freed in it (measured: -0.1 GB peak RSS coding a 35-Mpx image; TF
  Serving links tcmalloc instead).
- The three "Unable to register cuDNN/cuFFT/cuBLAS factory" errors that TF
  2.14's pip wheel logs on every import, also on CPU-only machines, dropped
  (harmless; tensorflow/tensorflow#62075), so that an error line is a real one.

The settings act only before TensorFlow is imported; an explicit environment
variable wins. The library itself never imports this module.
"""

import contextlib
import ctypes
import ctypes.util
import os
import re
import sys
import tempfile

SPURIOUS_TF_ERRORS = re.compile(
    rb"Unable to register cu(DNN|FFT|BLAS) factory: Attempting to register "
    rb"factory for plugin cu(DNN|FFT|BLAS) when one has already been "
    rb"registered")


@contextlib.contextmanager
def dropping_stderr_lines(pattern):
  """Captures file descriptor 2 (C++ logs too) and writes back, in order,
  every line that does not match `pattern`, also when the body raises."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      os.write(2, b"".join(
          line for line in captured.read().splitlines(keepends=True)
          if not pattern.search(line)))


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(count=2):
  """mallopt(M_ARENA_MAX, count) unless MALLOC_ARENA_MAX is set; a no-op
  without glibc."""
  if "MALLOC_ARENA_MAX" in os.environ:
    return
  try:
    ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_ARENA_MAX, count)
  except (OSError, AttributeError, TypeError):
    pass


limit_malloc_arenas()
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
with dropping_stderr_lines(SPURIOUS_TF_ERRORS):
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
