"""The fully connected GAN of Goodfellow et al. (2014): ReLU generator, maxout discriminator."""

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gax.models import conditioning as cond


def _init(init_range: float) -> dict:
  if not init_range:
    return {}
  uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -init_range, init_range)
  return {"kernel_init": uniform}


class MLPGenerator(nn.Module):
  """z -> ReLU hidden layers -> image in [-1, 1] (tanh, or a rescaled sigmoid)."""

  image_shape: tuple[int, int, int]
  hidden: Sequence[int] = (1200, 1200)
  output_activation: str = "tanh"
  init_range: float = 0.0  # > 0: weights ~ U(-r, r) as in pylearn2; 0: Flax's default
  dtype: jnp.dtype = jnp.float32
  num_classes: int = 0
  conditioning: str = "none"  # "concat": the one-hot label joins z

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    dense = functools.partial(nn.Dense, dtype=self.dtype, **_init(self.init_range))
    x = cond.join_noise(z, labels, self.num_classes, self.conditioning)
    for width in self.hidden:
      x = nn.relu(dense(width)(x))
    x = dense(math.prod(self.image_shape))(x)
    if self.output_activation == "tanh":
      x = jnp.tanh(x)
    elif self.output_activation == "sigmoid":
      # The paper's sigmoid outputs [0, 1]; gax pixels live in [-1, 1].
      x = 2.0 * nn.sigmoid(x) - 1.0
    else:
      raise ValueError(
          f"unknown output_activation {self.output_activation!r}; "
          "choose 'tanh' or 'sigmoid'")
    return x.reshape((z.shape[0], *self.image_shape))


class Maxout(nn.Module):
  """A dense layer whose unit is the max over `pieces` linear pieces."""

  units: int
  pieces: int
  init_range: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    y = nn.Dense(self.units * self.pieces, dtype=self.dtype, **_init(self.init_range))(x)
    return y.reshape((*y.shape[:-1], self.units, self.pieces)).max(axis=-1)


class MLPDiscriminator(nn.Module):
  """Image -> maxout layers with dropout -> one logit.

  Returns {"logit", "features"} (and "class_logits" with an auxiliary head).
  """

  hidden: Sequence[int] = (240, 240)
  pieces: int = 5
  input_dropout: float = 0.2
  dropout: float = 0.5
  init_range: float = 0.0
  dtype: jnp.dtype = jnp.float32
  num_classes: int = 0
  conditioning: str = "none"  # "concat" (the one-hot label joins the pixels), "projection"
  aux_classes: int = 0  # > 0: an auxiliary classifier head (ACGAN)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    x = x.reshape((x.shape[0], -1)).astype(self.dtype)
    if self.conditioning == "concat":
      x = jnp.concatenate([x, cond.one_hot(labels, self.num_classes, x.dtype)], axis=-1)
    x = nn.Dropout(self.input_dropout, deterministic=not train)(x)
    for width in self.hidden:
      x = Maxout(width, self.pieces, self.init_range, dtype=self.dtype)(x)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    logit = nn.Dense(1, dtype=self.dtype, **_init(self.init_range))(x)[:, 0]
    return cond.discriminator_outputs(x, logit, labels, self.num_classes, self.conditioning,
                                      self.aux_classes, self.dtype)
