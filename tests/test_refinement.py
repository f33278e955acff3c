"""Latent refinement: the plain encoder at zero steps, streams that decode
bit-exactly, repeatable encodes, clear refusals. (Its RD gain on the shipped
model: test_zoo.)"""

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import smooth_image
from tfc_lic import codec as codec_lib
from tfc_lic import refinement


@pytest.fixture(scope="module")
def encode(tiny_codec):
  return tf.function(tiny_codec.encode,
                     input_signature=codec_lib.REFINED_ENCODE_SIGNATURE)


@pytest.fixture(scope="module")
def image():
  return smooth_image(48, 80, seed=3)


def test_zero_steps_is_the_plain_encoder(tiny_codec, encode, image):
  for quantizer in (0, 2):
    plain = tiny_codec.compress(image, quantizer, 1., 0).numpy()
    assert encode(image, quantizer, 1., 0, 0)["container"].numpy() == plain


@pytest.mark.parametrize("quantizer", [0, 1, 2])
def test_refined_stream_decodes_to_the_encoders_latents(
    tiny_codec, encode, image, quantizer):
  plain = encode(image, quantizer, 1., 0, 0)
  out = encode(image, quantizer, 1., 0, 8)
  assert not np.array_equal(out["y"].numpy(), plain["y"].numpy())
  back = tiny_codec.decode(out["container"])
  np.testing.assert_array_equal(back["y_hat"].numpy(), out["y_hat"].numpy())
  np.testing.assert_array_equal(back["k"].numpy(), out["k"].numpy())


def test_encodes_repeat(encode, image):
  first, second = (encode(image, 0, .5, 2, 6)["container"].numpy()
                   for _ in range(2))
  assert first == second


@pytest.mark.parametrize("steps", [-1, refinement.MAX_STEPS + 1])
def test_refuses_steps_out_of_range(encode, image, steps):
  with pytest.raises(tf.errors.InvalidArgumentError, match="0 to 10000 steps"):
    encode(image, 0, 1., 0, steps)


def test_refuses_images_above_its_pixel_limit(encode):
  too_large = np.zeros([2049, 2048, 3], np.uint8)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=f"up to {refinement.MAX_PIXELS} pixels"):
    encode(too_large, 0, 1., 0, 1)
