"""Salimans et al.'s (2016) networks for the semi-supervised GAN on MNIST: G z(100) ->
softplus 500 -> softplus 500 (batch norm) -> sigmoid pixels with weight norm; D Gaussian
noise (std 0.3 on [0, 1] pixels, 0.5 between layers) -> 1000 -> 500 -> 250 -> 250 -> 250
ReLU layers -> K logits, every layer weight-normalised (gax/variants/ssgan.py)."""

import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def _dense(features: int, weight_norm: bool, dtype) -> nn.Module:
  layer = nn.Dense(features, dtype=dtype)
  return nn.WeightNorm(layer) if weight_norm else layer


class SSGANGenerator(nn.Module):
  """z -> softplus layers with batch norm -> pixels (a sigmoid, mapped to [-1, 1])."""

  image_shape: tuple[int, int, int]
  hidden: Sequence[int] = (500, 500)
  weight_norm: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    del labels  # unconditional
    x = z
    for width in self.hidden:
      x = nn.Dense(width, use_bias=False, dtype=self.dtype)(x)
      x = nn.softplus(nn.BatchNorm(use_running_average=not train, dtype=self.dtype)(x))
    x = _dense(math.prod(self.image_shape), self.weight_norm, self.dtype)(x)
    return (2.0 * nn.sigmoid(x) - 1.0).reshape((z.shape[0], *self.image_shape))


class SSGANDiscriminator(nn.Module):
  """Image -> K class logits, with Gaussian noise on the input and between layers in
  training. Returns {"logit": logsumexp of the class logits, "features": the last hidden
  layer, "class_logits"}."""

  num_classes: int
  hidden: Sequence[int] = (1000, 500, 250, 250, 250)
  input_noise: float = 0.3
  hidden_noise: float = 0.5
  weight_norm: bool = True
  dtype: Any = jnp.float32

  def _noisy(self, x, std: float, train: bool):
    if not train or not std:
      return x
    return x + std * jax.random.normal(self.make_rng("dropout"), x.shape, x.dtype)

  @nn.compact
  def __call__(self, images, labels=None, train: bool = True):
    del labels
    x = (images.reshape((images.shape[0], -1)) + 1.0) / 2.0  # the paper's [0, 1] pixels
    x = self._noisy(x, self.input_noise, train)
    for i, width in enumerate(self.hidden):
      if i:
        x = self._noisy(x, self.hidden_noise, train)
      x = nn.relu(_dense(width, self.weight_norm, self.dtype)(x))
    features = x
    class_logits = _dense(self.num_classes, self.weight_norm, self.dtype)(
        self._noisy(x, self.hidden_noise, train)).astype(jnp.float32)
    return {"logit": jax.nn.logsumexp(class_logits, axis=-1), "features": features,
            "class_logits": class_logits}
