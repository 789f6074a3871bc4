"""Datasets from folders of image files: `dataset="folder:PATH"`.

- Images are found recursively: files whose suffix is one of
  `readers.IMAGE_SUFFIXES`, any case; hidden files are left out.
- Labels come from subfolder names, as torchvision's ImageFolder gives them: when every
  image lies in a subfolder, the first folder of its path below the split's folder is
  its class (classes in sorted order); otherwise the images have no labels.
- Splits: a subfolder named as the split (train/, test/, val/, or CycleGAN's trainA/,
  trainB/, testA/, testB/) holds that split. A folder without split folders is split
  90/10 by a hash of each image's path: the held-out tenth ("test", "val") stays the
  same when images are added.
- Pairs (pix2pix): A/ and B/ folders (inside the split's folder, or each holding split
  folders of its own) with the same file names (the suffixes may differ); or, with
  `data.pairs = "side_by_side"`, files holding A on the left half and B on the right.
- Sizes: `data.image_size` center-crops each image to a square and resizes it; without
  it every image must already have one size. `data.channels` makes them grey (1) or RGB
  (3), transparent pixels composited over white; 0 takes the first image's.
- Files whose header cannot be read are skipped with a warning naming them; more than
  `data.max_bad_fraction` of them stops the run.
"""

import concurrent.futures
import zlib
from pathlib import Path

import ml_collections
import numpy as np
from absl import logging

from gax import errors
from gax.data import readers

PREFIX = "folder:"
SPLIT_FOLDERS = ("train", "test", "val", "valid", "validation", "trainA", "trainB",
                 "testA", "testB", "valA", "valB")
HELD_OUT_SPLITS = ("test", "val", "valid", "validation")
PAIRS = ("auto", "side_by_side")


def is_folder(dataset: str) -> bool:
  return dataset.startswith(PREFIX)


def has_domains(dataset: str) -> bool:
  """Whether `dataset` is a folder of CycleGAN's two domains (trainA/ and trainB/)."""
  if not is_folder(dataset):
    return False
  root = Path(dataset[len(PREFIX):]).expanduser()
  return (root / "trainA").is_dir() and (root / "trainB").is_dir()


def _images_under(root: Path) -> list[Path]:
  images = readers.image_files(root)
  if not images:
    found = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")]
    if not found:
      raise errors.DataError(f"folder {root} has no files; put images in it (or in class "
                      "subfolders), of the formats " + " ".join(
                          readers.IMAGE_SUFFIXES))
    suffixes = sorted({p.suffix.lower() or "(none)" for p in found})
    raise errors.DataError(f"folder {root} has {len(found)} files but no images of the formats "
                    f"read ({' '.join(readers.IMAGE_SUFFIXES)}); its files end in "
                    f"{' '.join(suffixes[:8])}")
  return images


def _held_out(relative: str) -> bool:
  return zlib.crc32(relative.encode()) % 10 == 0


def _split_folder(root: Path, split: str) -> tuple[Path, str | None]:
  """The folder of `split` and, where there is none, the split to draw by hash."""
  if (root / split).is_dir():
    return root / split, None
  present = [s for s in SPLIT_FOLDERS if (root / s).is_dir()]
  if present:
    raise errors.DataError(f"folder {root} has no {split}/ folder for split {split!r}; it has "
                    f"{', '.join(s + '/' for s in present)}")
  if split != "train" and split not in HELD_OUT_SPLITS:
    raise errors.DataError(f"folder {root} has no split folders, so it is split 90/10 into "
                    f"'train' and the held-out {', '.join(HELD_OUT_SPLITS)}; split "
                    f"{split!r} is none of those")
  return root, split


def _by_hash(files: list[Path], root: Path, split: str | None) -> list[Path]:
  if split is None:
    return files
  held_out = split in HELD_OUT_SPLITS
  return [f for f in files if _held_out(f.relative_to(root).as_posix()) == held_out]


def _labels(files: list[Path], root: Path) -> tuple[np.ndarray | None, list[str]]:
  parts = [f.relative_to(root).parts for f in files]
  if any(len(p) < 2 for p in parts):
    return None, []
  classes = sorted({p[0] for p in parts})
  index = {name: i for i, name in enumerate(classes)}
  return np.asarray([index[p[0]] for p in parts], np.int32), classes


def _pair_by_name(a_dir: Path, b_dir: Path, split: str | None
                  ) -> tuple[list[Path], list[Path]]:
  a_files = _by_hash(_images_under(a_dir), a_dir, split)
  b_files = _by_hash(_images_under(b_dir), b_dir, split)
  stem = lambda f, root: f.relative_to(root).with_suffix("").as_posix()
  a_names = {stem(f, a_dir): f for f in a_files}
  b_names = {stem(f, b_dir): f for f in b_files}
  only_a, only_b = sorted(a_names.keys() - b_names), sorted(b_names.keys() - a_names)
  if only_a or only_b:
    said = []
    if only_a:
      said.append(f"{len(only_a)} in {a_dir} only ({', '.join(only_a[:3])}"
                  f"{', ...' if len(only_a) > 3 else ''})")
    if only_b:
      said.append(f"{len(only_b)} in {b_dir} only ({', '.join(only_b[:3])}"
                  f"{', ...' if len(only_b) > 3 else ''})")
    raise errors.DataError("paired folders must hold the same file names: " + "; ".join(said))
  names = sorted(a_names)
  return [a_names[n] for n in names], [b_names[n] for n in names]


def _headers(files: list[Path]) -> list[tuple[tuple[int, int], str] | Exception]:
  """(width, height) and mode of each file, read from its header alone."""

  def one(path):
    try:
      with readers.open_image(path) as image:
        return image.size, image.mode
    except readers.UNREADABLE as e:
      return e

  with concurrent.futures.ThreadPoolExecutor(8) as pool:
    return list(pool.map(one, files))


def _drop_unreadable(columns: list[list[Path]], root: Path, max_bad_fraction: float
                     ) -> tuple[list[list[Path]], list[list[tuple[tuple[int, int], str]]]]:
  """Leaves out the examples any of whose files has no readable header."""
  headers = [_headers(files) for files in columns]
  bad = sorted({i for column in headers for i, h in enumerate(column)
                if isinstance(h, Exception)})
  count = len(columns[0])
  if bad:
    names = ", ".join(str(columns[0][i].relative_to(root)) for i in bad[:5])
    logging.warning("Skipping %d of %d images whose files cannot be read: %s%s", len(bad),
                    count, names, " ..." if len(bad) > 5 else "")
    if len(bad) > max_bad_fraction * count:
      first = next(h for column in headers for h in (column[bad[0]],)
                   if isinstance(h, Exception))
      raise errors.DataError(
          f"{len(bad)} of {count} images in {root} cannot be read (more than "
          f"data.max_bad_fraction = {max_bad_fraction}), the first: "
          f"{columns[0][bad[0]].relative_to(root)} ({str(first).splitlines()[0][:200]}); "
          "fix or remove them, or raise the share")
  keep = [i for i in range(count) if i not in set(bad)]
  return ([[files[i] for i in keep] for files in columns],
          [[column[i] for i in keep] for column in headers])


def load_reader(dataset: str, split: str, data_config: ml_collections.ConfigDict
                ) -> readers.FileReader:
  """The reader of `folder:PATH`'s split, as the module docstring lays it out."""
  root = Path(dataset[len(PREFIX):]).expanduser()
  if not root.is_dir():
    raise errors.DataError(f"{dataset}: {root} is not a folder")
  side_by_side = data_config.pairs == "side_by_side"
  a_dir = b_dir = None
  if (root / "A").is_dir() and (root / "B").is_dir():
    if (root / "A" / split).is_dir():
      a_dir, b_dir, hash_split = root / "A" / split, root / "B" / split, None
    else:
      _split_folder(root / "A", split)  # split folders of other names: say which
      a_dir, b_dir, hash_split = root / "A", root / "B", split
  else:
    folder, hash_split = _split_folder(root, split)
    if (folder / "A").is_dir() and (folder / "B").is_dir():
      a_dir, b_dir = folder / "A", folder / "B"
  if a_dir is not None:
    files, files_b = _pair_by_name(a_dir, b_dir, hash_split)
    label_root = a_dir
  else:
    label_root = folder
    files, files_b = _by_hash(_images_under(folder), folder, hash_split), None
  if not files:
    raise errors.DataError(f"{dataset} has no images in split {split!r} (a folder without split "
                    "folders holds a tenth of its images out by hash; put more images in "
                    "it, or make train/ and test/ folders)")
  columns, headers = _drop_unreadable([files] + ([files_b] if files_b else []),
                                            label_root, data_config.max_bad_fraction)
  files = columns[0]
  files_b = columns[1] if files_b else None
  labels, classes = _labels(files, label_root)
  sizes = {}
  for column, column_files in zip(headers, columns):
    for (size, _), path in zip(column, column_files):
      width, height = size
      sizes.setdefault((width // 2 if side_by_side else width, height), path)
  if len(sizes) > 1 and not data_config.image_size:
    shown = [f"{w}x{h} ({p.relative_to(root)})" for (w, h), p in list(sizes.items())[:3]]
    raise errors.DataError(f"{dataset}'s images differ in size: {', '.join(shown)}; set "
                    "data.image_size to center-crop and resize them to one square size")
  channels = data_config.channels or readers.channels_of_mode(headers[0][0][1])
  if data_config.image_size:
    shape = (data_config.image_size, data_config.image_size, channels)
  else:
    (width, height), = sizes
    shape = (height, width, channels)
  logging.info("%s (%s): %d images%s%s of shape %s", dataset, split, len(files),
               f" in {len(classes)} classes" if classes else "",
               " in pairs" if files_b or side_by_side else "", shape)
  return readers.FileReader(
      tuple(map(str, files)), shape,
      readers.Decoding(data_config.image_size, channels), labels,
      len(classes) or None, tuple(map(str, files_b)) if files_b else None, side_by_side)


def read_folder(folder: Path) -> np.ndarray:
  """Every image under `folder` as uint8 RGB [N, H, W, 3] (grey and RGBA converted as
  PIL's convert("RGB") does, as pytorch-fid reads them). All must have one size: gax
  does not resize them to a common one, which would change what is measured."""
  paths = readers.image_files(folder)
  if not paths:
    raise errors.DataError(f"folder {folder} holds no images (looked recursively for "
                             f"{', '.join(readers.IMAGE_SUFFIXES)})")
  images, sizes = [], {}
  for path in paths:
    try:
      with readers.open_image(path) as image:
        pixels = np.asarray(readers.to_eight_bits(image).convert("RGB"))
    except errors.DataError:
      raise
    except readers.UNREADABLE as e:
      raise errors.DataError(f"cannot read image {path}: {e}") from None
    sizes.setdefault(pixels.shape[:2], []).append(path)
    images.append(pixels)
  if len(sizes) > 1:
    shown = "; ".join(f"{h}x{w}: {len(p)} files, e.g. {p[0].name}"
                      for (h, w), p in list(sizes.items())[:3])
    raise errors.DataError(
        f"folder {folder} holds images of {len(sizes)} sizes ({shown}); they are not "
        "resized to one size: resize the files first")
  return np.stack(images)
