"""Differentiable augmentation of every image the discriminator sees, real and fake.

The operations are DiffAugment's (Zhao et al. 2020, the authors' PyTorch code): "color"
(random brightness, saturation and contrast), "translation" (shifts of up to 1/8 of the
size, zero-filled) and "cutout" (a square of half the size set to zero). Each is applied
to each image with probability p: always under "diffaugment" (p = `augment.p`, 1 by
default), and under "ada" with the p of the train state, which moves towards the target
of ADA's overfitting signal r_t = E[sign(D(x_real))] (Karras et al. 2020): up when D is
surer of the real images than `augment.target`, down otherwise, by
batch / (ada_kimg * 1000) per D update, so p can cross [0, 1] in `ada_kimg` thousand
real images.

Every random choice comes from the key the variant hands over (the step's key), so the
same key gives the same augmentation, and the images' gradient flows through it.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from gax import config_base, errors

Array = jax.Array
OPS = ("color", "translation", "cutout")
NAMES = ("none", "diffaugment", "ada")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _per_image(key: Array, images: Array) -> Array:
  """U[0, 1) draws shaped to broadcast over each image [B, 1, 1, 1]."""
  return jax.random.uniform(key, (images.shape[0], 1, 1, 1), images.dtype)


def brightness(images: Array, key: Array) -> Array:
  return images + (_per_image(key, images) - 0.5)


def saturation(images: Array, key: Array) -> Array:
  mean = jnp.mean(images, axis=-1, keepdims=True)
  return (images - mean) * (_per_image(key, images) * 2) + mean


def contrast(images: Array, key: Array) -> Array:
  mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  return (images - mean) * (_per_image(key, images) + 0.5) + mean


def translation(images: Array, key: Array, ratio: float = TRANSLATION_RATIO) -> Array:
  """Each image shifted by up to ratio * size pixels along each axis, zeros shifted in."""
  batch, height, width, _ = images.shape
  max_dy, max_dx = int(height * ratio + 0.5), int(width * ratio + 0.5)
  dy_key, dx_key = jax.random.split(key)
  dy = jax.random.randint(dy_key, (batch,), -max_dy, max_dy + 1)
  dx = jax.random.randint(dx_key, (batch,), -max_dx, max_dx + 1)
  padded = jnp.pad(images, ((0, 0), (max_dy, max_dy), (max_dx, max_dx), (0, 0)))

  def shift(image, dy, dx):
    return jax.lax.dynamic_slice(image, (max_dy + dy, max_dx + dx, 0),
                                 (height, width, image.shape[-1]))

  return jax.vmap(shift)(padded, dy, dx)


def cutout(images: Array, key: Array, ratio: float = CUTOUT_RATIO) -> Array:
  """A square of ratio * size per side, centred anywhere in the image, set to zero."""
  batch, height, width, _ = images.shape
  size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
  y_key, x_key = jax.random.split(key)
  top = jax.random.randint(y_key, (batch, 1), 0, height + (1 - size_y % 2)) - size_y // 2
  left = jax.random.randint(x_key, (batch, 1), 0, width + (1 - size_x % 2)) - size_x // 2
  rows, columns = jnp.arange(height)[None], jnp.arange(width)[None]
  inside_y = (rows >= top) & (rows < top + size_y)
  inside_x = (columns >= left) & (columns < left + size_x)
  keep = ~(inside_y[:, :, None] & inside_x[:, None, :])
  return images * keep[..., None].astype(images.dtype)


_OPERATIONS = {"color": (brightness, saturation, contrast), "translation": (translation,),
               "cutout": (cutout,)}


def parse_ops(text: str) -> tuple[str, ...]:
  """'color,translation,cutout' -> its operations, each checked by name."""
  ops = tuple(op.strip() for op in text.split(",") if op.strip())
  for op in ops:
    config_base.check_choice("augment.ops", op, OPS)
  if not ops:
    raise errors.ConfigError(f"config.augment.ops = {text!r} names no operation; "
                                  f"choose from {', '.join(OPS)}")
  return ops


def augment(images: Array, key: Array, ops: tuple[str, ...], p: Array | float = 1.0
            ) -> Array:
  """`images` with each operation of `ops` applied to each image with probability p."""
  for i, function in enumerate(f for op in ops for f in _OPERATIONS[op]):
    op_key, apply_key = jax.random.split(jax.random.fold_in(key, i))
    changed = function(images, op_key)
    if isinstance(p, (int, float)) and p >= 1:
      images = changed
    else:
      images = jnp.where(_per_image(apply_key, images) < p, changed, images)
  return images


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """What the discriminator's inputs go through: the configured operations, at a fixed
  p or (adaptive) the train state's."""

  ops: tuple[str, ...] = ()
  p: float = 1.0
  adaptive: bool = False
  target: float = 0.6
  speed: float = 0.0  # p's change per D update: batch / (ada_kimg * 1000)

  @property
  def active(self) -> bool:
    return bool(self.ops)

  def initial_state(self) -> dict[str, Array]:
    """ADA's p, which starts at 0; nothing for a fixed p."""
    return {"p": jnp.zeros((), jnp.float32)} if self.adaptive else {}

  def apply(self, images: Array, key: Array, state: dict[str, Array]) -> Array:
    if not self.active:
      return images
    return augment(images, key, self.ops, state["p"] if self.adaptive else self.p)

  def adapt(self, state: dict[str, Array], real_signs: Array) -> dict[str, Array]:
    """ADA's p after one D update whose real images gave `real_signs` (sign(D(x)))."""
    if not self.adaptive:
      return state
    r_t = jnp.mean(real_signs)
    return {"p": jnp.clip(state["p"] + jnp.sign(r_t - self.target) * self.speed, 0.0, 1.0)}


def from_config(config: ml_collections.ConfigDict) -> Augmentation:
  """The augmentation of `config.augment` (name "none", "diffaugment" or "ada")."""
  cfg = config.augment
  config_base.check_choice("augment.name", cfg.name, NAMES)
  if cfg.name == "none":
    return Augmentation()
  return Augmentation(parse_ops(cfg.ops), cfg.p, cfg.name == "ada", cfg.target,
                      config.batch_size / (cfg.ada_kimg * 1000))
