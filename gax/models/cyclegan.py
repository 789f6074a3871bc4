"""CycleGAN's networks (Zhu et al., 2017, and the official code): a ResNet generator and
the 70x70 PatchGAN discriminator, with instance normalisation and reflection padding."""

import flax.linen as nn
import jax.numpy as jnp

from gax.models.layers import ConvTranspose


def _reflect(x, pad: int):
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def instance_norm(x):
  # The official code's InstanceNorm2d: no affine parameters, no running statistics.
  return nn.InstanceNorm(use_scale=False, use_bias=False, epsilon=1e-5)(x)


class ResidualBlock(nn.Module):
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    features = x.shape[-1]
    y = nn.relu(instance_norm(nn.Conv(features, (3, 3), padding="VALID",
                                       dtype=self.dtype)(_reflect(x, 1))))
    y = instance_norm(nn.Conv(features, (3, 3), padding="VALID",
                               dtype=self.dtype)(_reflect(y, 1)))
    return x + y


class ResnetGenerator(nn.Module):
  """c7s1-ngf, d2ngf, d4ngf, `num_blocks` x R4ngf, u2ngf, ungf, c7s1-C, tanh."""

  out_channels: int
  ngf: int = 64
  num_blocks: int = 9
  conv_transpose: str = "auto"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    normal = nn.initializers.normal(0.02)  # the official init_type="normal", gain 0.02
    conv = lambda f, k, **kw: nn.Conv(f, k, kernel_init=normal, dtype=self.dtype, **kw)
    x = x.astype(self.dtype)
    x = nn.relu(instance_norm(conv(self.ngf, (7, 7), padding="VALID")(_reflect(x, 3))))
    for multiple in (2, 4):
      x = nn.relu(instance_norm(conv(self.ngf * multiple, (3, 3), strides=(2, 2),
                                      padding=((1, 1), (1, 1)))(x)))
    for _ in range(self.num_blocks):
      x = ResidualBlock(self.dtype)(x)
    for multiple in (2, 1):
      x = ConvTranspose(self.ngf * multiple, (3, 3), strides=(2, 2), padding="SAME",
                        kernel_init=normal, dtype=self.dtype, impl=self.conv_transpose)(x)
      x = nn.relu(instance_norm(x))
    x = conv(self.out_channels, (7, 7), padding="VALID")(_reflect(x, 3))
    return jnp.tanh(x).astype(jnp.float32)


class PatchDiscriminator(nn.Module):
  """The 70x70 PatchGAN (n_layers = 3): a grid of real/fake scores, one per patch."""

  ndf: int = 64
  num_layers: int = 3
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    normal = nn.initializers.normal(0.02)
    conv = lambda f, s: nn.Conv(f, (4, 4), strides=(s, s), padding=((1, 1), (1, 1)),
                                kernel_init=normal, dtype=self.dtype)
    x = nn.leaky_relu(conv(self.ndf, 2)(x.astype(self.dtype)), 0.2)
    for i in range(1, self.num_layers + 1):
      stride = 2 if i < self.num_layers else 1
      x = nn.leaky_relu(instance_norm(conv(self.ndf * min(2 ** i, 8), stride)(x)), 0.2)
    return conv(1, 1)(x).astype(jnp.float32)[..., 0]
