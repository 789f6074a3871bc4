"""Datasets by name, the seeded batch order, and the TFDS path under mock data."""

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from gax import config_base, errors
from gax.data import datasets as data
from gax.data import in_memory


def _data_config(**fields):
  config = config_base.base_config().data
  config.update(fields)
  return config


def test_mnist5k_is_a_fixed_class_balanced_split_of_real_digits():
  train = data.load_dataset(_data_config(), "mnist5k", "train")
  test = data.load_dataset(_data_config(), "mnist5k", "test")
  assert train.images.shape == (4000, 28, 28, 1) and test.images.shape == (1000, 28, 28, 1)
  assert train.images.dtype == np.uint8 and train.images.max() == 255
  np.testing.assert_array_equal(np.bincount(train.labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(test.labels), [100] * 10)
  train_rows = {row.tobytes() for row in train.images}
  assert not any(row.tobytes() in train_rows for row in test.images)
  again = data.load_dataset(_data_config(), "mnist5k", "test")
  np.testing.assert_array_equal(again.images, test.images)


def test_digits_resized_and_fake_shapes():
  digits = data.load_dataset(_data_config(image_size=32), "digits", "train")
  assert digits.images.shape[1:] == (32, 32, 1) and len(digits) + len(
      data.load_dataset(_data_config(), "digits", "test")) == 1797
  fake = data.load_dataset(_data_config(image_size=16, channels=3, num_fake_examples=50),
                           "fake", "train")
  assert fake.images.shape == (50, 16, 16, 3)


def test_digits_framed_puts_the_8x8_digits_in_a_12x12_frame_like_mnist():
  digits = data.load_dataset(_data_config(), "digits", "test")
  framed = data.load_dataset(_data_config(), "digits_framed", "test")
  assert framed.images.shape[1:] == (12, 12, 1)
  np.testing.assert_array_equal(framed.images[:, 2:10, 2:10], digits.images)
  assert framed.images.sum() == digits.images.sum()  # the border is empty
  np.testing.assert_array_equal(framed.labels, digits.labels)


def test_channel_conversion():
  rgb = data.load_dataset(_data_config(channels=3), "mnist5k", "test")
  assert rgb.images.shape[-1] == 3
  np.testing.assert_array_equal(rgb.images[..., 0], rgb.images[..., 2])


def test_pixel_range():
  images = np.array([0, 255, 128], np.uint8)
  scaled = np.asarray(data.to_model_range(images))
  np.testing.assert_allclose(scaled[:2], [-1.0, 1.0])
  np.testing.assert_array_equal(data.to_uint8(scaled), images)


def test_batch_order_is_a_seeded_permutation_per_epoch():
  key = jax.random.PRNGKey(3)
  num_examples, batch = 20, 6  # 3 batches per epoch; 2 examples left out each epoch
  epoch0 = np.concatenate([in_memory.batch_indices(key, b, num_examples, batch)
                           for b in range(3)])
  epoch1 = np.concatenate([in_memory.batch_indices(key, b, num_examples, batch)
                           for b in range(3, 6)])
  assert len(set(epoch0.tolist())) == 18 and len(set(epoch1.tolist())) == 18
  assert not np.array_equal(epoch0, epoch1)
  np.testing.assert_array_equal(
      epoch0, np.concatenate([in_memory.batch_indices(key, b, num_examples, batch)
                              for b in range(3)]))
  other = in_memory.batch_indices(jax.random.PRNGKey(4), 0, num_examples, batch)
  assert not np.array_equal(other, epoch0[:6])


SPEC = {"image": data.Field(data.Source("toy"))}


def test_device_sampler_matches_host_sampler():
  images = np.arange(50 * 2 * 2, dtype=np.uint8).reshape(50, 2, 2, 1)
  kwargs = dict(spec=SPEC, arrays={"image": images}, batch_size=8, batches_per_step=2)
  on_device = in_memory.TrainBatches(on_device=True, **kwargs)
  on_host = in_memory.TrainBatches(on_device=False, **kwargs)
  key = jax.random.PRNGKey(0)
  host = on_host.host_batches(key, first_step=5, num_steps=3)["image"]
  assert host.shape == (3, 2, 8, 2, 2, 1)
  gather = jax.jit(on_device.gather)
  for i in range(3):
    np.testing.assert_array_equal(gather({"image": images}, 5 + i, key)["image"], host[i])


def test_pairs_share_their_order_and_their_crops_and_flips():
  """Two fields of one source (a pair) get the same examples and the same augmentation;
  a second source has an order of its own."""
  images = np.random.default_rng(0).integers(0, 256, (40, 6, 6, 1), dtype=np.uint8)
  pair, other = data.Source("pairs"), data.Source("other")
  spec = {"a": data.Field(pair), "b": data.Field(pair), "c": data.Field(other)}
  batches = in_memory.TrainBatches(spec, {"a": images, "b": images, "c": images}, 8,
                                        1, True, crop_size=4, random_flip=True)
  key = jax.random.PRNGKey(1)
  raw = batches.gather({"a": images, "b": images, "c": images}, 3, key)
  np.testing.assert_array_equal(raw["a"], raw["b"])
  assert not np.array_equal(raw["a"], raw["c"])
  prepared = batches.prepare(raw, 3, key)
  np.testing.assert_array_equal(prepared["a"], prepared["b"])
  assert prepared["a"].shape == (1, 8, 4, 4, 1)
  assert batches.info.field_shapes == {"a": (4, 4, 1), "b": (4, 4, 1), "c": (4, 4, 1)}


def test_batch_larger_than_dataset_is_refused():
  with pytest.raises(errors.DataError, match="larger than the dataset"):
    in_memory.TrainBatches(SPEC, {"image": np.zeros((4, 2, 2, 1), np.uint8)}, 8, 1,
                                True)


def test_tfds_catalog_under_mock_data():
  with tfds.testing.mock_data(num_examples=12):
    mnist = data.load_dataset(_data_config(), "mnist", "train")
    cifar = data.load_dataset(_data_config(image_size=16), "cifar10", "test")
    faces = data.load_dataset(_data_config(image_size=16), "celeb_a", "train")
  assert mnist.images.shape == (12, 28, 28, 1) and mnist.labels.shape == (12,)
  assert cifar.images.shape == (12, 16, 16, 3)
  assert faces.images.shape == (12, 16, 16, 3) and faces.labels is None


def test_unknown_dataset_lists_choices():
  with pytest.raises(errors.DataError, match="mnist5k"):
    data.load_dataset(_data_config(), "no_such_dataset")


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(errors.DataError, match="tfds build fashion_mnist"):
    data.load_dataset(_data_config(data_dir=str(tmp_path)), "fashion_mnist")
