"""The 32x32 networks of Miyato et al. (2018, "Spectral normalization for GANs"): the
"standard CNN" (SNDCGAN, their Table 3) and the ResNet pair (Table 4), as in the authors'
Chainer code (pfnet-research/sngan_projection).

SNDCGAN: G is z -> dense to (size/8)^2 x 8ngf -> three 4x4 stride-2 transposed convs
(BN, ReLU) -> 3x3 conv -> tanh; D is seven convs (3x3 stride 1 and 4x4 stride 2 in
turn, 64 to 512 wide, LeakyReLU 0.1) -> dense logit. ResNet: G is z -> dense to
(size/8)^2 x ngf -> three up-sampling residual blocks -> BN, ReLU, 3x3 conv -> tanh; D
is an optimised down-sampling block, a down-sampling block and two plain blocks of ndf
channels -> ReLU -> global sum pooling -> dense logit. Residual convolutions start from
Glorot-uniform times sqrt(2), shortcuts from Glorot-uniform, as in the Chainer code.
Every D layer is spectrally normalised by default (`spectral_norm`); G's optionally.
Class conditioning: conditional batch norm in G, projection (or an auxiliary head) in D.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from gax.models import conditioning as cond
from gax.models.layers import Conv, ConvTranspose
from gax.models.spectral import normalized

_RESIDUAL_INIT = nn.initializers.variance_scaling(2.0, "fan_avg", "uniform")
_SHORTCUT_INIT = nn.initializers.xavier_uniform()
_BN = dict(momentum=0.9, epsilon=1e-5)  # Chainer's BatchNormalization decay and eps


def _upsample(x: jax.Array) -> jax.Array:
  """Nearest-neighbour 2x (Chainer's unpooling_2d with cover_all=False)."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _downsample(x: jax.Array) -> jax.Array:
  return nn.avg_pool(x, (2, 2), (2, 2))


class _Generator(nn.Module):
  """What both generators share: their fields, and z -> dense -> (size/8)^2 x width maps."""

  image_shape: tuple[int, int, int]
  ngf: int = 64
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"
  num_classes: int = 0
  conditioning: str = "none"  # "cbn": conditional batch norm
  spectral_norm: bool = False

  def _start(self, z, labels, train: bool, width: int, **dense_options):
    """(the first feature maps, G's batch-norm factory, its spectral-norm wrapper)."""
    height, image_width, _ = self.image_shape
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    norm = cond.batch_norm(self.conditioning, self.num_classes, labels, train, self.dtype,
                           **_BN)
    x = sn(nn.Dense(height // 8 * image_width // 8 * width, dtype=self.dtype,
                    **dense_options))(z)
    return x.reshape((z.shape[0], height // 8, image_width // 8, width)), norm, sn


class SNDCGANGenerator(_Generator):
  ngf: int = 64

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    x, norm, sn = self._start(z, labels, train, self.ngf * 8)
    x = nn.relu(norm()(x))
    for width_factor in (4, 2, 1):
      # Chainer's Deconvolution2D(4, stride 2, pad 1) pads the dilated input by 2.
      x = sn(ConvTranspose(self.ngf * width_factor, (4, 4), strides=(2, 2),
                           padding=((2, 2), (2, 2)), dtype=self.dtype,
                           impl=self.conv_transpose))(x)
      x = nn.relu(norm()(x))
    x = sn(Conv(self.image_shape[-1], (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                impl=self.conv_transpose))(x)
    return jnp.tanh(x)


class _Discriminator(nn.Module):
  """Both discriminators' fields; they return {"logit", "features"} (and "class_logits"
  with an auxiliary head)."""

  ndf: int = 64
  dtype: jnp.dtype = jnp.float32
  conv_transpose: str = "auto"
  num_classes: int = 0
  conditioning: str = "none"  # "projection"
  aux_classes: int = 0
  spectral_norm: bool = True


class SNDCGANDiscriminator(_Discriminator):

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    sn = lambda layer: normalized(layer, self.spectral_norm, train)
    x = x.astype(self.dtype)
    for width_factor in (1, 2, 4):
      features = self.ndf * width_factor
      x = sn(Conv(features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                  impl=self.conv_transpose))(x)
      x = nn.leaky_relu(x, 0.1)
      x = sn(Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                  dtype=self.dtype, impl=self.conv_transpose))(x)
      x = nn.leaky_relu(x, 0.1)
    x = sn(Conv(self.ndf * 8, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                impl=self.conv_transpose))(x)
    x = nn.leaky_relu(x, 0.1).reshape((x.shape[0], -1))
    logit = sn(nn.Dense(1, dtype=self.dtype))(x)[:, 0]
    return cond.discriminator_outputs(x, logit, labels, self.num_classes, self.conditioning,
                                      self.aux_classes, self.dtype)


class _Block(nn.Module):
  """What both residual blocks share: their width and same-padded convolutions."""

  features: int
  spectral_norm: bool
  train: bool
  dtype: jnp.dtype = jnp.float32

  def conv(self, kernel: int, init):
    return normalized(nn.Conv(self.features, (kernel, kernel), padding="SAME",
                              kernel_init=init, dtype=self.dtype),
                      self.spectral_norm, self.train)


class GeneratorBlock(_Block):
  """BN, ReLU, up, conv3x3, BN, ReLU, conv3x3; shortcut: up, conv1x1."""

  norm: object = None  # a factory of (conditional) batch norm layers

  @nn.compact
  def __call__(self, x):
    h = _upsample(nn.relu(self.norm()(x)))
    h = self.conv(3, _RESIDUAL_INIT)(h)
    h = self.conv(3, _RESIDUAL_INIT)(nn.relu(self.norm()(h)))
    return h + self.conv(1, _SHORTCUT_INIT)(_upsample(x))


class DiscriminatorBlock(_Block):
  """(ReLU unless first), conv3x3, ReLU, conv3x3, (avg pool); shortcut: conv1x1 and pool
  where the channels or the size change (the first block pools before its conv1x1)."""

  downsample: bool = False
  first: bool = False

  @nn.compact
  def __call__(self, x):
    conv = self.conv
    h = x if self.first else nn.relu(x)
    h = conv(3, _RESIDUAL_INIT)(nn.relu(conv(3, _RESIDUAL_INIT)(h)))
    if self.downsample:
      h = _downsample(h)
    shortcut = x
    if self.first:
      shortcut = conv(1, _SHORTCUT_INIT)(_downsample(x))
    elif self.downsample or x.shape[-1] != self.features:
      shortcut = conv(1, _SHORTCUT_INIT)(x)
      shortcut = _downsample(shortcut) if self.downsample else shortcut
    return h + shortcut


class ResNetGenerator(_Generator):
  ngf: int = 256  # conv_transpose is unused: up-sampling is nearest-neighbour

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    x, norm, sn = self._start(z, labels, train, self.ngf, kernel_init=_SHORTCUT_INIT)
    for _ in range(3):
      x = GeneratorBlock(self.ngf, self.spectral_norm, train, self.dtype, norm=norm)(x)
    x = nn.relu(norm()(x))
    x = sn(nn.Conv(self.image_shape[-1], (3, 3), padding="SAME", kernel_init=_SHORTCUT_INIT,
                   dtype=self.dtype))(x)
    return jnp.tanh(x)


class ResNetDiscriminator(_Discriminator):
  ndf: int = 128  # conv_transpose is unused: no strided convolutions

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    x = x.astype(self.dtype)
    for i, downsample in enumerate((True, True, False, False)):
      x = DiscriminatorBlock(self.ndf, self.spectral_norm, train, self.dtype,
                             downsample=downsample, first=i == 0)(x)
    features = jnp.sum(nn.relu(x), axis=(1, 2))  # global sum pooling
    logit = normalized(nn.Dense(1, kernel_init=_SHORTCUT_INIT, dtype=self.dtype),
                       self.spectral_norm, train)(features)[:, 0]
    return cond.discriminator_outputs(features, logit, labels, self.num_classes,
                                      self.conditioning, self.aux_classes, self.dtype)
