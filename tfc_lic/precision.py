"""Picks the training compute precision this machine runs fastest.

bfloat16 mixed precision halves conv time only where the hardware has bf16
arithmetic (AVX512-BF16 or AMX CPUs, GPUs of compute capability >= 8.0).
Elsewhere TF emulates it and a step is many times slower than float32
(measured on an AVX2-only AMD EPYC: > 40 s vs 4.4 s per 256²×8 step), so
"auto" falls back to float32 there.
"""

import tensorflow as tf

CHOICES = ("auto", "float32", "bfloat16")
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_info(field, cpuinfo="/proc/cpuinfo"):
  """The first CPU's value of a /proc/cpuinfo field ('' where there is none)."""
  try:
    with open(cpuinfo) as f:
      for line in f:
        name, _, value = line.partition(":")
        if name.strip() == field:
          return value.strip()
  except OSError:
    pass
  return ""


def cpu_flags(cpuinfo="/proc/cpuinfo"):
  """The CPU feature flags the kernel reports (empty where it doesn't)."""
  return frozenset(cpu_info("flags", cpuinfo).split())


def gpu_compute_capabilities():
  """(major, minor) per visible GPU."""
  return [tf.config.experimental.get_device_details(gpu).get(
      "compute_capability", (0, 0))
          for gpu in tf.config.list_physical_devices("GPU")]


def has_fast_bfloat16(flags=None, capabilities=None):
  """Whether bf16 convolutions run natively on the device TF will use."""
  if capabilities is None:
    capabilities = gpu_compute_capabilities()
  if capabilities:
    return all(c >= (8, 0) for c in capabilities)
  return bool(BF16_CPU_FLAGS & (cpu_flags() if flags is None else flags))


def resolve(precision, flags=None, capabilities=None):
  """"auto" -> "bfloat16" where it is native, else "float32".

  An explicit "bfloat16" where it is not native is an error: TF then either
  emulates it (> 10x slower) or, with oneDNN on, has no kernel at all.
  """
  if precision not in CHOICES:
    raise ValueError(f"precision must be one of {', '.join(CHOICES)}, "
                     f"not {precision}")
  if precision == "float32":
    return precision
  if has_fast_bfloat16(flags, capabilities):
    return "bfloat16"
  if precision == "bfloat16":
    raise ValueError("bfloat16 needs a CPU with AVX512-BF16 or AMX, or a GPU "
                     "of compute capability >= 8.0; use --precision=auto or "
                     "float32 here")
  return "float32"
