"""Training and validation input pipelines.

`--dataset` is either a TensorFlow Datasets name (e.g. "clic", needs tfds to
reach its data) or local images: a folder, a glob, or a comma-separated list
of them (PNG/JPEG). Both give the same element spec: float32 crops
[batch, patch, patch, 3] in [0, 255].

Local images are decoded once and cached in memory (a few hundred training
photos fit easily), so that the per-step cost is a random crop and flip: the
input pipeline stays off the training step's critical path.
"""

import glob
import os

from absl import logging
import tensorflow as tf

from tfc_lic import distribute

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def list_images(spec):
  """Expands a folder, glob or comma-separated list of them to image files."""
  files = []
  for part in [p for p in spec.split(",") if p]:
    if os.path.isdir(part):
      matches = glob.glob(os.path.join(part, "**", "*"), recursive=True)
    else:
      matches = glob.glob(part, recursive=True)
    files.extend(f for f in matches
                 if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(f))
  return sorted(set(files))


def is_local(spec):
  """True if `spec` names local files rather than a tfds dataset."""
  return any(c in spec for c in "/*,.") or os.path.exists(spec)


def _decode(path):
  image = tf.io.decode_image(
      tf.io.read_file(path), channels=3, expand_animations=False)
  image.set_shape([None, None, 3])
  return image


def _fit_to_patch(image, patch_size):
  """Upsamples images smaller than the patch so that a crop fits."""
  shape = tf.shape(image)
  short = tf.minimum(shape[0], shape[1])

  def upsample():
    scale = patch_size / tf.cast(short, tf.float32)
    size = tf.cast(tf.math.ceil(tf.cast(shape[:2], tf.float32) * scale),
                   tf.int32)
    size = tf.maximum(size, patch_size)
    return tf.cast(tf.clip_by_value(
        tf.image.resize(image, size, antialias=False), 0, 255), tf.uint8)

  return tf.cond(short < patch_size, upsample, lambda: image)


def _crop(image, patch_size, training, seed=None, max_downscale=1.):
  """A random crop and flips (stateless if `seed`, a [2] int tensor).

  With `max_downscale` > 1, training crops are a random square of up to that
  many times the patch (as the image allows), downscaled to the patch: more
  distinct crops from a few large images, at the pixel density of smaller
  ones.
  """
  size = (patch_size, patch_size, 3)
  if not training:
    image = tf.image.resize_with_crop_or_pad(image, patch_size, patch_size)
    return tf.cast(image, tf.float32)
  if max_downscale > 1:
    short = tf.cast(tf.reduce_min(tf.shape(image)[:2]), tf.float32)
    high = tf.math.log(tf.minimum(float(max_downscale), short / patch_size))
    u = (tf.random.uniform([]) if seed is None else
         tf.random.stateless_uniform([], seed + 3))
    side = tf.cast(tf.floor(patch_size * tf.exp(u * high)), tf.int32)
    size = tf.stack([side, side, 3])
  if seed is None:
    image = tf.image.random_crop(image, size)
    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_flip_up_down(image)
  else:
    image = tf.image.stateless_random_crop(image, size, seed)
    image = tf.image.stateless_random_flip_left_right(image, seed + 1)
    image = tf.image.stateless_random_flip_up_down(image, seed + 2)
  if max_downscale > 1:
    image = tf.image.resize(image, (patch_size, patch_size), antialias=True)
    image = tf.round(tf.clip_by_value(image, 0, 255))  # an 8-bit image
    image.set_shape((patch_size, patch_size, 3))
  return tf.cast(image, tf.float32)


def local_images(spec, num_shards=1, shard_index=0):
  """Decoded uint8 images of a local spec; unreadable files are skipped.

  With shards, this pipeline reads every num_shards-th file from shard_index.
  """
  files = list_images(spec)
  if not files:
    raise ValueError(f"no PNG/JPEG images found in {spec!r}")
  files = files[shard_index::num_shards]
  if not files:
    raise ValueError(f"{spec!r} has fewer images than the {num_shards} "
                     "input pipelines")
  dataset = tf.data.Dataset.from_tensor_slices(files)
  dataset = dataset.map(_decode, num_parallel_calls=tf.data.AUTOTUNE)
  return dataset.ignore_errors(log_warning=True), len(files)


def whole_images(spec):
  """Each local image of `spec`, whole, as a float32 batch of one."""
  images, _ = local_images(spec)
  return images.map(lambda x: tf.cast(x, tf.float32)[None]).prefetch(1)


def tfds_images(name, split, num_shards=1, shard_index=0):
  """Images of a TensorFlow Datasets dataset (needs its data to be present)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  dataset = tfds.load(name, split=split, shuffle_files=split == "train")
  dataset = dataset.shard(num_shards, shard_index)
  return dataset.map(lambda x: x["image"]), None


def crops(spec, patch_size, batch_size, training=True, split="train",
          seed=None, num_shards=1, shard_index=0, max_downscale=1.):
  """Batches of float32 crops for training (endless) or validation (once).

  Training crops are random with random flips; validation takes one central
  crop per image so that its loss is comparable between evaluations. Shards
  (one per input pipeline of a distributed run) see disjoint images and
  draw different crops. `max_downscale`: see _crop.
  """
  if seed is not None:
    seed += shard_index
  with tf.device("/cpu:0"):
    if is_local(spec):
      images, count = local_images(spec, num_shards, shard_index)
      logging.info("%s: %d image files", spec, count)
    else:
      images, count = tfds_images(spec, split, num_shards, shard_index)
    images = images.map(lambda x: _fit_to_patch(x, patch_size),
                        num_parallel_calls=tf.data.AUTOTUNE)
    if count is not None:
      images = images.cache()
    if training:
      images = images.shuffle(count or 1000, seed=seed,
                              reshuffle_each_iteration=True).repeat()
    if seed is None:
      dataset = images.map(
          lambda x: _crop(x, patch_size, training, None, max_downscale),
          num_parallel_calls=tf.data.AUTOTUNE)
    else:  # Reproducible: the i-th crop depends only on (seed, i).
      dataset = images.enumerate().map(
          lambda i, x: _crop(x, patch_size, training,
                             tf.stack([tf.cast(seed, tf.int64), 4 * i]),
                             max_downscale),
          num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.batch(batch_size, drop_remainder=training)
    return dataset.prefetch(tf.data.AUTOTUNE)


def train_and_validation(train_spec, validation_spec, patch_size, batch_size,
                         validation_patch_size, seed=None, strategy=None,
                         max_downscale=1.):
  """The endless training crops and, if `validation_spec`, validation crops.

  Both are distributed over `strategy`'s replicas (default: one device);
  `batch_size` is the global batch.
  """
  strategy = strategy or tf.distribute.get_strategy()
  train = distribute.distribute(strategy, lambda batch, n, i: crops(
      train_spec, patch_size, batch, training=True, seed=seed, num_shards=n,
      shard_index=i, max_downscale=max_downscale), batch_size)
  validation = None
  if validation_spec:
    validation = distribute.distribute(strategy, lambda batch, n, i: crops(
        validation_spec, validation_patch_size, batch, training=False,
        split="validation", num_shards=n, shard_index=i), batch_size)
  return train, validation
