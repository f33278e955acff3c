"""--precision=auto: bf16 only where the hardware computes it natively."""

import pytest

from tfc_lic import precision

AVX2_ONLY = frozenset({"fma", "avx", "avx2"})  # AMD EPYC Milan (measured here)
SAPPHIRE_RAPIDS = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"})


@pytest.mark.parametrize("flags,capabilities,expected", [
    (AVX2_ONLY, [], "float32"),
    (SAPPHIRE_RAPIDS, [], "bfloat16"),
    (frozenset({"avx512f", "avx512_bf16"}), [], "bfloat16"),
    (AVX2_ONLY, [(8, 0)], "bfloat16"),
    (SAPPHIRE_RAPIDS, [(7, 5)], "float32"),  # a T4 would emulate bf16
    (frozenset(), [], "float32"),
])
def test_auto_picks_native_bfloat16_only(flags, capabilities, expected):
  assert precision.resolve("auto", flags, capabilities) == expected


def test_explicit_precision_is_kept_where_the_hardware_has_it():
  assert precision.resolve("float32", SAPPHIRE_RAPIDS, []) == "float32"
  assert precision.resolve("bfloat16", SAPPHIRE_RAPIDS, []) == "bfloat16"
  assert precision.resolve("float32", AVX2_ONLY, []) == "float32"


def test_explicit_bfloat16_without_native_support_is_an_error():
  with pytest.raises(ValueError, match="AVX512-BF16"):
    precision.resolve("bfloat16", AVX2_ONLY, [])


def test_unknown_precision_is_an_error():
  with pytest.raises(ValueError, match="float16"):
    precision.resolve("float16")


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\n"
                     "processor\t: 1\nflags\t\t: fpu avx2 avx512_bf16\n")
  assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "avx2", "avx512_bf16"}
  assert precision.cpu_flags(str(tmp_path / "missing")) == frozenset()
