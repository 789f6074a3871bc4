"""Convolutional GANs: the TensorFlow DCGAN tutorial's 28x28 pair, and Radford et al.'s 64x64 pair.

DCGAN28 follows tensorflow.org/tutorials/generative/dcgan layer for layer (Keras
defaults included: Glorot-uniform kernels, LeakyReLU slope 0.3, BatchNorm momentum 0.99
and epsilon 1e-3). DCGAN64 follows pytorch/examples' dcgan (4x4 kernels, no biases,
N(0, 0.02) kernels, BatchNorm scale N(1, 0.02), LeakyReLU 0.2, PyTorch's BN momentum).
With `num_classes` > 0 they take labels as gax/models/conditioning.py describes; without,
they are the reference networks, parameter for parameter. `spectral_norm` normalises
every convolution and dense layer of the network (gax/models/spectral.py).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from gax.models import conditioning as cond
from gax.models.layers import Conv, ConvTranspose
from gax.models.spectral import normalized

_KERAS_KERNEL_INIT = nn.initializers.xavier_uniform()
_DCGAN_KERNEL_INIT = nn.initializers.normal(0.02)


def _dcgan_scale_init(key, shape, dtype=jnp.float32):
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class DCGAN28Generator(nn.Module):
  """z -> Dense(s*s*256) -> ConvTranspose 128/64/C (5x5) -> tanh, with s = size / 4."""

  image_shape: tuple[int, int, int]
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"  # see gax.models.layers.ConvTranspose
  num_classes: int = 0
  conditioning: str = "none"  # "concat" (label joins z) or "cbn" (conditional batch norm)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    height, width, channels = self.image_shape
    norm = cond.batch_norm(self.conditioning, self.num_classes, labels, train, self.dtype,
                           momentum=0.99, epsilon=1e-3)
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    act = lambda x: nn.leaky_relu(x, 0.3)
    x = sn(nn.Dense(height // 4 * width // 4 * 256, use_bias=False,
                    kernel_init=_KERAS_KERNEL_INIT, dtype=self.dtype))(
                        cond.join_noise(z, labels, self.num_classes, self.conditioning))
    x = act(norm()(x))
    x = x.reshape((z.shape[0], height // 4, width // 4, 256))
    join = lambda x: cond.join_image(x, labels, self.num_classes, self.conditioning)
    for features, stride in ((128, 1), (64, 2)):
      x = sn(ConvTranspose(features, (5, 5), strides=(stride, stride), padding="SAME",
                           use_bias=False, kernel_init=_KERAS_KERNEL_INIT,
                           dtype=self.dtype, impl=self.conv_transpose))(join(x))
      x = act(norm()(x))
    x = sn(ConvTranspose(channels, (5, 5), strides=(2, 2), padding="SAME",
                         use_bias=False, kernel_init=_KERAS_KERNEL_INIT,
                         dtype=self.dtype, impl=self.conv_transpose))(join(x))
    return jnp.tanh(x)


class DCGAN28Discriminator(nn.Module):
  """Conv 64/128 (5x5, stride 2) with LeakyReLU and Dropout 0.3 -> Dense(1) logit.

  Returns {"logit", "features"} (and "class_logits" with an auxiliary head).
  """

  dropout: float = 0.3
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"  # how the strided convs' input gradients run (layers.Conv)
  num_classes: int = 0
  conditioning: str = "none"  # "concat" (one-hot maps) or "projection"
  aux_classes: int = 0  # > 0: an auxiliary classifier head (ACGAN)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    x = x.astype(self.dtype)
    for features in (64, 128):
      x = cond.join_image(x, labels, self.num_classes, self.conditioning)
      x = sn(Conv(features, (5, 5), strides=(2, 2), padding="SAME",
                  kernel_init=_KERAS_KERNEL_INIT, dtype=self.dtype,
                  impl=self.conv_transpose))(x)
      x = nn.leaky_relu(x, 0.3)
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = x.reshape((x.shape[0], -1))
    logit = sn(nn.Dense(1, kernel_init=_KERAS_KERNEL_INIT, dtype=self.dtype))(x)[:, 0]
    return cond.discriminator_outputs(x, logit, labels, self.num_classes, self.conditioning,
                                      self.aux_classes, self.dtype)


def _num_resolution_steps(size: int) -> int:
  """How many stride-2 layers take 4x4 to size x size."""
  return int(math.log2(size)) - 2


class DCGAN64Generator(nn.Module):
  """z -> ConvTranspose(4x4, valid) to 4x4 -> stride-2 ConvTransposes -> tanh.

  At 64x64 the widths are ngf*8, ngf*4, ngf*2, ngf, C as in pytorch/examples.
  """

  image_shape: tuple[int, int, int]
  ngf: int = 64
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"  # see gax.models.layers.ConvTranspose
  num_classes: int = 0
  conditioning: str = "none"  # "concat" (label joins z) or "cbn" (conditional batch norm)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    size, _, channels = self.image_shape
    num_up = _num_resolution_steps(size)
    bn_options = dict(momentum=0.9, epsilon=1e-5)
    if self.conditioning != "cbn":
      bn_options["scale_init"] = _dcgan_scale_init
    norm = cond.batch_norm(self.conditioning, self.num_classes, labels, train, self.dtype,
                           **bn_options)
    z = cond.join_noise(z, labels, self.num_classes, self.conditioning)
    x = z.reshape((z.shape[0], 1, 1, z.shape[-1])).astype(self.dtype)
    x = sn(ConvTranspose(self.ngf * 2 ** (num_up - 1), (4, 4), padding="VALID",
                         use_bias=False, kernel_init=_DCGAN_KERNEL_INIT,
                         dtype=self.dtype, impl=self.conv_transpose))(x)
    x = nn.relu(norm()(x))
    join = lambda x: cond.join_image(x, labels, self.num_classes, self.conditioning)
    for i in range(num_up - 1, 0, -1):
      # PyTorch's ConvTranspose2d(k=4, s=2, p=1) pads the dilated input by k - 1 - p = 2.
      x = sn(ConvTranspose(self.ngf * 2 ** (i - 1), (4, 4), strides=(2, 2),
                           padding=((2, 2), (2, 2)), use_bias=False,
                           kernel_init=_DCGAN_KERNEL_INIT, dtype=self.dtype,
                           impl=self.conv_transpose))(join(x))
      x = nn.relu(norm()(x))
    x = sn(ConvTranspose(channels, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                         use_bias=False, kernel_init=_DCGAN_KERNEL_INIT,
                         dtype=self.dtype, impl=self.conv_transpose))(join(x))
    return jnp.tanh(x)


class DCGAN64Discriminator(nn.Module):
  """Stride-2 4x4 convs (ndf, 2ndf, 4ndf, 8ndf at 64x64) -> 4x4 valid conv -> logit.

  Returns {"logit", "features"} (and "class_logits" with an auxiliary head).
  """

  ndf: int = 64
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"  # how the strided convs' input gradients run (layers.Conv)
  num_classes: int = 0
  conditioning: str = "none"  # "concat" (one-hot maps) or "projection"
  aux_classes: int = 0  # > 0: an auxiliary classifier head (ACGAN)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    num_down = _num_resolution_steps(x.shape[1])
    x = x.astype(self.dtype)
    for i in range(num_down):
      x = cond.join_image(x, labels, self.num_classes, self.conditioning)
      x = sn(Conv(self.ndf * 2 ** i, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                  use_bias=False, kernel_init=_DCGAN_KERNEL_INIT, dtype=self.dtype,
                  impl=self.conv_transpose))(x)
      if i > 0:
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                         scale_init=_dcgan_scale_init, dtype=self.dtype)(x)
      x = nn.leaky_relu(x, 0.2)
    logit = sn(nn.Conv(1, (4, 4), padding="VALID", use_bias=False,
                       kernel_init=_DCGAN_KERNEL_INIT, dtype=self.dtype))(x)
    return cond.discriminator_outputs(x.reshape((x.shape[0], -1)), logit.reshape(-1),
                                      labels, self.num_classes, self.conditioning,
                                      self.aux_classes, self.dtype)
