"""Image files gax writes: sample grids as PNG, and the GIF of a run's grids."""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from gax.storage import files


def make_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
  """uint8 [N, H, W, C] -> one uint8 [rows*(H+pad)+pad, cols*(W+pad)+pad, C] image."""
  count, height, width, channels = images.shape
  columns = columns or math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  grid = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels),
                  np.uint8)
  for i, image in enumerate(images):
    top = pad + (i // columns) * (height + pad)
    left = pad + (i % columns) * (width + pad)
    grid[top:top + height, left:left + width] = image
  return grid


def _to_pil(image: np.ndarray, scale: int) -> Image.Image:
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  return pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)


def save_png(path: Path, image: np.ndarray, scale: int = 2) -> None:
  """Writes the image through a temporary file, so a crash never leaves half a PNG."""
  with files.partial_file(path) as partial:
    _to_pil(image, scale).save(partial, format="PNG")


def save_gif(frames: Sequence[Path], path: Path, frame_ms: int = 200) -> None:
  """Animates PNG frames in order; the last frame is held longer."""
  images = [Image.open(f).convert("P") for f in frames]
  durations = [frame_ms] * (len(images) - 1) + [frame_ms * 5]
  with files.partial_file(path) as partial:
    images[0].save(partial, format="GIF", save_all=True, append_images=images[1:],
                   duration=durations, loop=0)
