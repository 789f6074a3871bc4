"""Drawing from a trained run's generator (inference mode): the grid, an .npz of the images
for outside tools, latent walks, and, through a run's inference network, reconstructions;
what `python -m gax.sample` writes."""

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from gax import errors, memory
from gax.data import datasets as data_lib
from gax.evaluation import batching
from gax.storage import files
from gax.storage import images as images_lib
from gax.trained import inference as inference_lib
from gax.trained import run as trained_run
from gax.variants import ema as ema_lib


def parse_labels(text: str | None, num_classes: int, variant_name: str) -> list[int] | None:
  """The classes of --labels, checked against the run's."""
  if text is None:
    return None
  if not num_classes:
    raise errors.ConfigError(
        f"--labels needs a class-conditional run; this is a {variant_name!r} run, which "
        "draws without labels (train configs/cgan_mnist.py or configs/acgan_mnist.py)")
  try:
    labels = [int(item) for item in text.split(",") if item.strip()]
  except ValueError:
    raise errors.ConfigError(
        f"--labels={text}: expected comma-separated class numbers, e.g. 3,3,7") from None
  outside = sorted({label for label in labels if not 0 <= label < num_classes})
  if not labels or outside:
    raise errors.ConfigError(
        f"--labels={text}: classes must lie in 0..{num_classes - 1} for this run"
        + (f"; {', '.join(map(str, outside))} do not" if outside else ""))
  return labels


def check_counts(workdir: str, num_images: int, walks: int, walk_steps: int) -> None:
  """Refuses counts below their minimum, or images the host cannot hold (each drawn
  image is kept as uint8 three times over: the images, their grid and the .npz), before
  anything is loaded."""
  if num_images < 1 or walks < 1 or walk_steps < 2:
    raise errors.ConfigError("--num_images and --walks must be >= 1, --walk_steps >= 2")
  config, records = trained_run.read_run(Path(workdir))
  shapes = trained_run.data_info(config, records).field_shapes
  pixels = max(math.prod(shape) for shape in shapes.values())
  memory.check(3 * pixels * (num_images + walks * walk_steps),
               f"--num_images = {num_images} and --walks x --walk_steps = "
               f"{walks} x {walk_steps} images", memory.host_bytes())


def interpolate(start: jax.Array, end: jax.Array, points: int, spherical: bool) -> jax.Array:
  """[points, ...] from `start` to `end`; spherical keeps a Gaussian's norm along the way."""
  t = jnp.linspace(0.0, 1.0, points)[:, None, None]
  if not spherical:
    return (1 - t) * start + t * end
  cosine = jnp.sum(start * end, -1, keepdims=True) / (
      jnp.linalg.norm(start, axis=-1, keepdims=True) * jnp.linalg.norm(end, axis=-1,
                                                                        keepdims=True))
  angle = jnp.arccos(jnp.clip(cosine, -1.0, 1.0))
  sin = jnp.maximum(jnp.sin(angle), 1e-6)
  return (jnp.sin((1 - t) * angle) * start + jnp.sin(t * angle) * end) / sin


def sample_run(workdir: str, step: str | None, num_images: int, labels_text: str | None,
               walks: int, walk_steps: int, seed: int, out: str | None) -> Path:
  """Writes the grid, the .npz and the interpolations; returns the output directory."""
  check_counts(workdir, num_images, walks, walk_steps)
  run = trained_run.load(workdir, step)
  sampler = run.variant.sampler
  if sampler is None:
    raise errors.ConfigError(
        f"the {run.variant.name!r} variant translates images and draws nothing from "
        f"noise; its sample grids are in {run.workdir / 'samples'} and gax.evaluate "
        "translates the held-out images")
  labels = parse_labels(labels_text, sampler.num_classes, run.variant.name)
  out_dir = Path(out) if out else run.workdir / "sampled" / f"step_{run.step}"
  key = jax.random.PRNGKey(seed)
  params, batch_stats = ema_lib.generator_state(ema_lib.chosen(run.state, run.config))
  draw = jax.jit(lambda noise, labels: sampler.draw(params, batch_stats, noise, labels))
  columns = None
  if labels is not None:
    grid_labels = np.asarray(labels, np.int32)
  elif sampler.num_classes:
    columns = max(1, num_images // sampler.num_classes)
    grid_labels = np.repeat(np.arange(sampler.num_classes, dtype=np.int32), columns)
  else:
    grid_labels = None
  count = num_images if grid_labels is None else len(grid_labels)
  files.check_directory(out_dir, "--out")
  noise = sampler.sample_noise(jax.random.fold_in(key, 0), count)
  images = data_lib.to_uint8(batching.in_batches(lambda rows: draw(
      noise[rows], None if grid_labels is None else jnp.asarray(grid_labels[rows])),
      count, run.config.eval.batch_size))
  images_lib.save_png(out_dir / "grid.png", images_lib.make_grid(images, columns))
  arrays = {"images": images}
  if grid_labels is not None:
    arrays["labels"] = grid_labels
  files.write_npz(out_dir / "images.npz", arrays)

  ends = sampler.sample_noise(jax.random.fold_in(key, 1), 2 * walks)
  path = interpolate(ends[:walks], ends[walks:], walk_steps,
                     spherical=run.config.model.noise == "normal")  # [steps, walks, nz]
  walk_labels = None
  if sampler.num_classes:
    chosen = labels if labels is not None else list(range(sampler.num_classes))
    walk_labels = jnp.asarray([chosen[i % len(chosen)] for i in range(walks)], jnp.int32)
  frames = data_lib.to_uint8(jnp.stack([draw(point, walk_labels) for point in path]))
  strips = np.swapaxes(frames, 0, 1).reshape(-1, *frames.shape[2:])  # walk by walk
  images_lib.save_png(out_dir / "interpolation.png",
                      images_lib.make_grid(strips, walk_steps))
  frame_files = []
  for index, frame in enumerate(frames):
    frame_file = out_dir / "frames" / f"frame_{index:03d}.png"
    images_lib.save_png(frame_file, images_lib.make_grid(frame))
    frame_files.append(frame_file)
  images_lib.save_gif(frame_files + frame_files[::-1], out_dir / "interpolation.gif")
  logging.info("Wrote %d images, their grid and %d latent walks of %d points to %s",
               count, walks, walk_steps, out_dir)
  return out_dir


def reconstruct_run(workdir: str, step: str | None, num_images: int, walks: int,
                    walk_steps: int, out: str | None) -> Path:
  """Writes `reconstruction.png` (columns of x, G(E(x)) pairs) and
  `reconstruction_walks.png` (x_a, G along E(x_a) -> E(x_b), x_b per row)."""
  check_counts(workdir, num_images, walks, walk_steps)
  run = trained_run.load(workdir, step)
  inference_lib.check_run(run)
  inference, encoder_params = inference_lib.load(run)
  held_out = inference_lib.held_out_examples(run)
  conditional = bool(inference.sampler.num_classes)
  chosen = np.random.default_rng(0).permutation(len(held_out))[:max(num_images, 2 * walks)]
  real = held_out.images[chosen]
  labels = jnp.asarray(held_out.labels[chosen]) if conditional else None
  rebuilt = data_lib.to_uint8(inference.reconstruct(
      encoder_params, data_lib.to_model_range(real), labels))
  out_dir = Path(out) if out else run.workdir / "sampled" / f"step_{run.step}"
  files.check_directory(out_dir, "--out")
  count = min(num_images, len(real))
  pairs = np.stack([real[:count], rebuilt[:count]], axis=1).reshape(-1, *real.shape[1:])
  images_lib.save_png(out_dir / "reconstruction.png", images_lib.make_grid(pairs, 20))

  ends = inference.encode(encoder_params, data_lib.to_model_range(real[:2 * walks]))
  path = interpolate(ends[:walks], ends[walks:2 * walks], walk_steps, spherical=False)
  params, batch_stats = inference.generator_state()
  walk_labels = None if labels is None else labels[:walks]
  frames = data_lib.to_uint8(jnp.stack([inference.sampler.draw(
      params, batch_stats, point, walk_labels) for point in path]))  # [steps, walks, ...]
  rows = [np.concatenate([real[i:i + 1], frames[:, i], real[walks + i:walks + i + 1]])
          for i in range(walks)]
  images_lib.save_png(out_dir / "reconstruction_walks.png",
                      images_lib.make_grid(np.concatenate(rows), walk_steps + 2))
  logging.info("Wrote %d reconstructions and %d walks between real images to %s", count,
               walks, out_dir)
  return out_dir
