"""Examples read one at a time, by index, from files, a TFDS data source or ArrayRecord.

A reader decodes example i into {"image": uint8 [H, W, C], "label": int, "image_b": ...}
at the configured size and channels. `Feature` shows one feature of a reader as an
array that decodes on indexing, so a dataset larger than memory can stand where an
in-memory array stands; `materialize` decodes everything (the in-memory path). Readers
are picklable: the streaming pipeline's worker processes (gax/data/streaming.py) read through
them. Nothing here imports JAX, which keeps those workers light.
"""

import concurrent.futures
import dataclasses
import io
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import logging
from PIL import Image

from gax import errors

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                  ".ppm", ".pgm")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# PIL's modes of 16-bit grey images (and "I", 32-bit integers, as 16-bit files open).
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
# What PIL raises for a file it cannot decode, or whose header claims more pixels than
# its limit (a decompression bomb): a file to skip or refuse, never a crash.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def image_files(folder: Path) -> list[Path]:
  """The image files under `folder`, found recursively, in sorted order; hidden files
  are left out."""
  return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                and not p.name.startswith(".") and p.is_file())


def channels_of_mode(mode: str) -> int:
  """1 for grey images (with or without alpha), 3 for everything else."""
  return 1 if mode in _GREY_MODES else 3


def square_resize(image: np.ndarray, size: int) -> np.ndarray:
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


def open_image(stored) -> Image.Image:
  """PIL's image of a path or of encoded bytes, its header read; a header that claims
  more pixels than PIL's limit is one clear error."""
  try:
    return Image.open(io.BytesIO(stored) if isinstance(stored, bytes) else stored)
  except Image.DecompressionBombError as e:
    name = "the encoded image" if isinstance(stored, bytes) else str(stored)
    raise errors.DataError(
        f"{name}: its header claims more pixels than PIL's limit of "
        f"{Image.MAX_IMAGE_PIXELS:,} per image ({e}); a damaged file or a decompression "
        "bomb, refused") from None


def to_eight_bits(image: Image.Image) -> Image.Image:
  """The image with 8-bit channels: 16-bit grey scaled to 0..255 at its true values
  (v / 257, rounded), other modes as they are; 32-bit float images are refused."""
  if image.mode == "F":
    raise errors.DataError(f"{getattr(image, 'filename', '') or 'an image'} holds 32-bit "
                           "floats; gax reads images of 8 or 16 bits per channel")
  if image.mode not in _WIDE_MODES:
    return image
  values = np.asarray(image).astype(np.int64)
  if values.size and (values.min() < 0 or values.max() > 65535):
    raise errors.DataError(f"{getattr(image, 'filename', '') or 'an image'} holds 32-bit "
                           "integers outside 0..65535; gax reads 8 or 16 bits per channel")
  return Image.fromarray(((values + 128) // 257).astype(np.uint8), "L")


def _to_channels(image: Image.Image, channels: int) -> Image.Image:
  """Grey ("L") or RGB, from 8 or 16 bits per channel; transparent pixels are composited
  over white first."""
  image = to_eight_bits(image)
  if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and
                                           "transparency" in image.info):
    rgba = image.convert("RGBA")
    image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)),
                                  rgba)
  return image.convert("L" if channels == 1 else "RGB")


@dataclasses.dataclass(frozen=True)
class Decoding:
  """How stored bytes become an image: size (0: as stored), channels, and which half of
  a side-by-side pair ("left", "right"; "": the whole image)."""

  image_size: int = 0
  channels: int = 3
  half: str = ""

  def __call__(self, stored) -> np.ndarray:
    """`stored`: a path or the encoded bytes."""
    with open_image(stored) as image:
      image.load()  # a truncated file fails here, not later
      if self.half:
        width, height = image.size
        box = (0, 0, width // 2, height) if self.half == "left" else (
            width // 2, 0, 2 * (width // 2), height)
        image = image.crop(box)
      array = np.asarray(_to_channels(image, self.channels))
    array = array.reshape(*array.shape[:2], self.channels)
    return square_resize(array, self.image_size) if self.image_size else array


@dataclasses.dataclass(frozen=True)
class FileReader:
  """Images in files; `files_b` (or a side-by-side file, `side_by_side`) makes pairs."""

  files: tuple[str, ...]
  image_shape: tuple[int, int, int]
  decoding: Decoding
  labels: np.ndarray | None = None
  num_classes: int | None = None
  files_b: tuple[str, ...] | None = None
  side_by_side: bool = False

  @property
  def features(self) -> tuple[str, ...]:
    paired = self.files_b is not None or self.side_by_side
    return ("image",) + (("label",) if self.labels is not None else ()) + (
        ("image_b",) if paired else ())

  def __len__(self) -> int:
    return len(self.files)

  def name(self, index: int) -> str:
    return self.files[index]

  def read(self, index: int) -> dict:
    if self.side_by_side:
      example = {"image": dataclasses.replace(self.decoding, half="left")(self.files[index]),
                 "image_b": dataclasses.replace(self.decoding, half="right")(
                     self.files[index])}
    else:
      example = {"image": self.decoding(self.files[index])}
      if self.files_b is not None:
        example["image_b"] = self.decoding(self.files_b[index])
    if self.labels is not None:
      example["label"] = self.labels[index]
    return example


class _OpenedInEachProcess:
  """A reader whose source (file handles) is opened in each process that reads it: a
  pickled copy carries everything but the open source."""

  _source = None

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_source"] = None
    return state

  def _open(self):
    if self._source is None:
      self._source = self._open_source()
    return self._source

  def __len__(self) -> int:
    return self._length


class TfdsReader(_OpenedInEachProcess):
  """A prepared TFDS dataset's split through `tfds.data_source` (ArrayRecord files)."""

  def __init__(self, name: str, split: str, data_dir: str | None, source,
               image_shape: tuple[int, int, int], decoding: Decoding,
               num_classes: int | None):
    self.dataset, self.split, self.data_dir = name, split, data_dir
    self.image_shape, self.decoding, self.num_classes = image_shape, decoding, num_classes
    self._source = source
    self.features = ("image",) + (("label",) if "label" in source[0] else ())
    self._length = len(source)

  def _open_source(self):
    import tensorflow_datasets as tfds

    return tfds.data_source(self.dataset, split=self.split, data_dir=self.data_dir,
                            download=False)

  def name(self, index: int) -> str:
    return f"{self.dataset}[{self.split}][{index}]"

  def read(self, index: int) -> dict:
    example = self._open()[int(index)]
    image = np.asarray(example["image"])
    if image.ndim == 2:
      image = image[..., None]
    image = convert_channels(image, self.decoding.channels)
    if self.decoding.image_size:
      image = square_resize(image, self.decoding.image_size)
    out = {"image": image}
    if "label" in example:
      out["label"] = np.int32(example["label"])
    return out


class ArrayRecordReader(_OpenedInEachProcess):
  """ArrayRecord files whose records are encoded images (PNG, JPEG, ...)."""

  def __init__(self, paths: Sequence[str], image_size: int, channels: int):
    """`image_size` 0 and `channels` 0: the first record's own size and channels."""
    self.paths = tuple(paths)
    self.features, self.num_classes = ("image",), None
    self._length = len(self._open())
    if not self._length:
      raise errors.DataError(f"{', '.join(self.paths)} hold no records")
    with open_image(self.record(0)) as first:
      channels = channels or channels_of_mode(first.mode)
      width, height = first.size
    self.decoding = Decoding(image_size, channels)
    self.image_shape = ((image_size, image_size, channels) if image_size
                        else (height, width, channels))

  def _open_source(self):
    import grain

    return grain.sources.ArrayRecordDataSource(list(self.paths))

  def name(self, index: int) -> str:
    return f"record {index} of {', '.join(self.paths)}"

  def record(self, index: int) -> bytes:
    return bytes(self._open()[int(index)])

  def read(self, index: int) -> dict:
    return {"image": self.decoding(self.record(index))}


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
  have = images.shape[-1]
  if have == channels:
    return images
  if have == 1 and channels == 3:
    return np.repeat(images, 3, axis=-1)
  if have in (3, 4) and channels == 1:
    luminance = images[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                                              np.float32)
    return np.round(luminance)[..., None].astype(np.uint8)
  if have == 4 and channels == 3:
    return images[..., :3]
  raise errors.DataError(f"cannot convert {have}-channel images to {channels} channels; "
                  "data.channels must be 1 or 3")



class Feature:
  """One feature of a reader as a read-only array: indexing decodes what it picks."""

  def __init__(self, reader, feature: str):
    self.reader, self.feature = reader, feature
    example_shape = () if feature == "label" else reader.image_shape
    self.shape = (len(reader), *example_shape)
    self.dtype = np.dtype(np.int32 if feature == "label" else np.uint8)
    self.ndim = len(self.shape)

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __len__(self) -> int:
    return self.shape[0]

  def __getitem__(self, index):
    if isinstance(index, (int, np.integer)):
      return np.asarray(self.reader.read(int(index))[self.feature], self.dtype)
    if isinstance(index, slice):
      index = np.arange(len(self))[index]
    index = np.asarray(index)
    picked = [self[int(i)] for i in index.reshape(-1)]
    return np.stack(picked).reshape(*index.shape, *self.shape[1:]) if picked else (
        np.zeros((*index.shape, *self.shape[1:]), self.dtype))


def read_all(reader, max_bad_fraction: float, threads: int | None = None
             ) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Every example decoded: ({feature: array}, indices of the examples kept). Examples
  that fail to decode are skipped with a warning that names them; more than
  `max_bad_fraction` of them is a DataError."""
  threads = threads or min(8, os.cpu_count() or 1)

  def one(index):
    try:
      return reader.read(index)
    except UNREADABLE as e:
      return e

  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    examples = list(pool.map(one, range(len(reader))))
  bad = [i for i, e in enumerate(examples) if isinstance(e, Exception)]
  if bad:
    names = ", ".join(f"{reader.name(i)} ({examples[i]})" for i in bad[:5])
    logging.warning("Skipping %d of %d images that cannot be decoded: %s%s", len(bad),
                    len(reader), names, " ..." if len(bad) > 5 else "")
    if len(bad) > max_bad_fraction * len(reader):
      raise errors.DataError(f"{len(bad)} of {len(reader)} images cannot be decoded (more than "
                      f"data.max_bad_fraction = {max_bad_fraction}), the first: "
                      f"{reader.name(bad[0])}; fix or remove them, or raise the share")
  kept = np.asarray([i for i, e in enumerate(examples) if not isinstance(e, Exception)],
                    np.int64)
  if not len(kept):
    raise errors.DataError("no image could be decoded")
  features = {}
  for name in reader.features:
    values = [examples[i][name] for i in kept]
    sizes = {v.shape for v in values} if name != "label" else set()
    if len(sizes) > 1:
      raise errors.DataError(f"the images differ in size ({', '.join(map(str, sorted(sizes)[:3]))}"
                      "); set data.image_size to resize them to one square size")
    features[name] = np.stack(values).astype(np.int32 if name == "label" else np.uint8)
  return features, kept



def exit_with_parent(interval_s: float = 0.5) -> None:
  """In a worker process: ends it as soon as its parent is gone, however the parent
  ended (SIGKILL included), so no decoding worker outlives a run. A daemon thread polls
  the parent's pid; the orphan is handed to another parent when its own dies."""
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(interval_s)
    os._exit(0)

  threading.Thread(target=watch, name="gax-exit-with-parent", daemon=True).start()
