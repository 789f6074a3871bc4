"""pix2pix's U-Net generator (Isola et al., 2017, and the official UnetGenerator).

An encoder of 4x4 stride-2 convolutions (LeakyReLU 0.2, instance norm but on the first
and the innermost), a decoder of 4x4 stride-2 transposed convolutions (ReLU, instance
norm, dropout 0.5 on the first `num_dropout` layers below the bottleneck), and a skip
connection from each encoder layer to the decoder layer of the same size. With
`num_downs` = 8 a 256x256 image goes down to 1x1. Images whose sides are not multiples of
2^num_downs (MNIST's 28) are edge-padded to the next multiple and the output cropped back.

Normalisation is per image: the paper runs G at test time as in training, with the
statistics of the test batch at batch size 1, which is instance normalisation; it also
keeps dropout on at test time as G's only noise (`deterministic=False` when sampling).
"""

import flax.linen as nn
import jax.numpy as jnp

from gax.models import layers
from gax.models.cyclegan import instance_norm


class UNetGenerator(nn.Module):
  out_channels: int
  ngf: int = 64
  num_downs: int = 8
  num_dropout: int = 3
  dropout_rate: float = 0.5
  conv_transpose: str = "auto"  # layers.ConvTranspose's impl
  dtype: jnp.dtype = jnp.float32

  def _width(self, level: int) -> int:
    return self.ngf * min(2 ** level, 8)

  @nn.compact
  def __call__(self, x, deterministic: bool = False):
    height, width = x.shape[1:3]
    multiple = 2 ** self.num_downs
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h or pad_w:
      x = jnp.pad(x, ((0, 0), (pad_h // 2, pad_h - pad_h // 2),
                      (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="edge")
    normal = nn.initializers.normal(0.02)
    down = lambda f: layers.Conv(f, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                                 kernel_init=normal, dtype=self.dtype)
    up = lambda f: layers.ConvTranspose(f, (4, 4), strides=(2, 2), padding="SAME",
                                        kernel_init=normal, dtype=self.dtype,
                                        impl=self.conv_transpose)
    h = x.astype(self.dtype)
    skips = []
    for level in range(self.num_downs):
      if level:
        h = nn.leaky_relu(h, 0.2)
      h = down(self._width(level))(h)
      if 0 < level < self.num_downs - 1:
        h = instance_norm(h)
      skips.append(h)
    for level in reversed(range(self.num_downs)):
      h = nn.relu(h if level == self.num_downs - 1 else jnp.concatenate(
          [h, skips[level]], axis=-1))
      if level == 0:
        h = up(self.out_channels)(h)
        break
      h = instance_norm(up(self._width(level - 1))(h))
      if self.num_downs - 1 - level < self.num_dropout:
        h = nn.Dropout(self.dropout_rate)(h, deterministic=deterministic)
    out = jnp.tanh(h).astype(jnp.float32)
    top, left = pad_h // 2, pad_w // 2
    return out[:, top:top + height, left:left + width]
