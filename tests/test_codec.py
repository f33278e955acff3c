"""Bitstreams: bit-exact round trips, container validation, odd sizes."""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import smooth_image
from tfc_lic import codec as codec_lib

QUANTIZERS = list(codec_lib.QUANTIZERS)


@pytest.fixture(scope="module")
def encode(tiny_codec):
  return tf.function(tiny_codec.encode,
                     input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8), tf.TensorSpec([], tf.int32),
      tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)])


@pytest.fixture(scope="module")
def decode(tiny_codec):
  return tf.function(tiny_codec.decode,
                     input_signature=[tf.TensorSpec([], tf.string)])


@pytest.mark.parametrize("quantizer", QUANTIZERS)
@pytest.mark.parametrize("shape", [(17, 33), (96, 64), (80, 130), (768, 512)])
def test_round_trip_is_bit_exact(encode, decode, quantizer, shape):
  image = smooth_image(*shape)
  enc = encode(image, codec_lib.quantizer_id(quantizer), 1., 0)
  dec = decode(enc["container"])
  np.testing.assert_array_equal(enc["y_hat"].numpy(), dec["y_hat"].numpy())
  np.testing.assert_array_equal(enc["k"].numpy(), dec["k"].numpy())
  assert dec["image"].shape == shape + (3,)
  assert dec["image"].dtype == tf.uint8


@pytest.mark.parametrize("quantizer", QUANTIZERS)
def test_header_fields_round_trip(encode, decode, quantizer):
  image = smooth_image(40, 72)
  enc = encode(image, codec_lib.quantizer_id(quantizer), 0.5, -3)
  dec = decode(enc["container"])
  assert int(dec["quantizer"]) == codec_lib.quantizer_id(quantizer)
  assert int(dec["delta_index"]) == -3
  assert float(dec["rate"]) == 0.5
  assert (int(dec["height"]), int(dec["width"])) == (40, 72)


@pytest.fixture(scope="module")
def stream(encode):
  return encode(smooth_image(64, 64), 1, 1.0, 0)["container"].numpy()


def _decode_error(decode, data):
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    decode(tf.constant(data))
  from tfc_lic import cli  # pylint: disable=g-import-not-at-top
  return cli.stream_error(info.value)


def test_truncated_stream_is_rejected(decode, stream):
  for size in (0, 3, 20, len(stream) // 2, len(stream) - 1):
    message = _decode_error(decode, stream[:size])
    assert "stream" in message and "\n" not in message


def test_bit_flip_is_rejected(decode, stream):
  rng = np.random.default_rng(0)
  for _ in range(20):
    data = bytearray(stream)
    position = int(rng.integers(4, len(data)))
    data[position] ^= 1 << int(rng.integers(8))
    assert _decode_error(decode, bytes(data))


def test_bad_magic_and_version(decode, stream):
  assert "bad magic" in _decode_error(decode, b"XXXX" + stream[4:])
  data = bytearray(stream)
  data[4] = 99
  assert "version" in _decode_error(decode, bytes(data))


def test_stream_of_another_model_is_rejected(tiny_model, stream):
  from tfc_lic import models  # pylint: disable=g-import-not-at-top
  other = models.create_model("mbt2018-mean", lmbdas=[0.01, 0.05],
                              num_filters=16, latent_channels=24)
  other_codec = codec_lib.ImageCodec(other)
  assert int(other_codec.model_id) != int(codec_lib.ImageCodec(
      tiny_model).model_id)
  message = _decode_error(other_codec.decode, stream)  # Fails at the header.
  assert "different model" in message


def test_model_id_ignores_the_synthesis(tiny_model):
  before = codec_lib.encoder_fingerprint(tiny_model)
  kernel = tiny_model.synthesis_transform.trainable_variables[0]
  kernel.assign_add(tf.ones_like(kernel))
  try:
    assert codec_lib.encoder_fingerprint(tiny_model) == before
  finally:
    kernel.assign_sub(tf.ones_like(kernel))


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1)])
def test_tiny_images_round_trip(encode, decode, shape):
  image = smooth_image(max(shape[0], 8), max(shape[1], 8))[:shape[0], :shape[1]]
  enc = encode(image, 2, 1., 0)
  dec = decode(enc["container"])
  assert dec["image"].shape == shape + (3,)
  np.testing.assert_array_equal(enc["y_hat"].numpy(), dec["y_hat"].numpy())


def test_crafted_header_with_huge_size_is_refused(decode, stream):
  """A valid checksum over a 65535x65535 header must not make the decoder
  allocate for that size."""
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  body = bytearray(stream[:-container.CHECKSUM_SIZE])
  body[13:17] = b"\xff\xff\xff\xff"
  crafted = bytes(body) + container._checksum(bytes(body)).numpy()  # pylint: disable=protected-access
  assert "image size outside the codec limit" in _decode_error(
      decode, crafted)


def test_encoder_refuses_images_above_the_side_limit(tiny_codec):
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  too_wide = tf.zeros([1, container.MAX_SIDE + 1, 3], tf.uint8)
  with pytest.raises(tf.errors.InvalidArgumentError, match="limit"):
    tiny_codec.compress(too_wide, 0, 1., 0)


@pytest.mark.parametrize("argument, value, error", [
    ("quantizer", 3, "quantizer must be 0 (usq), 1 (tcq4), 2 (tcq8)"),
    ("quantizer", -1, "quantizer must be"),
    ("quantizer", 2**31 - 1, "quantizer must be"),
    ("rate", -1., "rate must be a rate index from 0 to 1"),
    ("rate", 256., "rate must be"),
    ("rate", float("inf"), "rate must be"),
    ("rate", float("nan"), "rate must be"),
    ("delta_index", 200, "delta_index must be from -32 to 32"),
    ("delta_index", -129, "delta_index must be"),
    ("delta_index", -300, "delta_index must be")])
def test_encoder_names_an_argument_out_of_range(tiny_codec, argument, value,
                                                error):
  """Out-of-range values are refused, not coded with another quantizer or
  wrapped in their header fields (which decoded to a wrong picture), and
  fast: a tiny step would make the range coder's escapes grow without
  bound."""
  arguments = dict(image=smooth_image(24, 40), quantizer=0, rate=1.,
                   delta_index=0)
  arguments[argument] = value
  with pytest.raises(tf.errors.InvalidArgumentError) as info:
    tiny_codec.compress(**arguments)
  from tfc_lic import cli  # pylint: disable=g-import-not-at-top
  assert cli.stream_error(info.value).startswith(error)


@pytest.mark.parametrize("shape", [(1, 65536), (70000, 1)])
def test_encoder_refuses_sides_the_header_cannot_hold(tiny_codec, shape):
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match="65535 px a side"):
    tiny_codec.compress(tf.zeros(shape + (3,), tf.uint8), 0, 1., 0)


@pytest.mark.parametrize("offset, value, error", [
    (9, b"\x03", "corrupt stream: its quantizer must be"),
    (11, b"\xff\x00", "corrupt stream: its rate must be"),
    (10, b"\x64", "corrupt stream: step index outside")])
def test_decoder_refuses_header_fields_out_of_range(decode, stream, offset,
                                                    value, error):
  """Even under a valid checksum: such a stream decoded to a wrong picture
  (rate, step) or with another quantizer's tables."""
  from tfc_lic import container  # pylint: disable=g-import-not-at-top
  body = bytearray(stream[:-container.CHECKSUM_SIZE])
  body[offset:offset + len(value)] = value
  crafted = bytes(body) + container._checksum(bytes(body)).numpy()  # pylint: disable=protected-access
  assert _decode_error(decode, crafted).startswith(error)
