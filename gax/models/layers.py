"""A transposed convolution computed as one stride-1 convolution and depth-to-space.

A stride-s transposed convolution sends output pixel s*q + r (phase r) a stride-1
correlation of the input with the taps w[t0(r) + s*m] of the kernel. Stacking the s*s
phases as output channels gives one ordinary convolution whose result, rearranged
depth-to-space, is the transposed convolution exactly. XLA's CPU backend runs the
ordinary convolution many times faster than the input-dilated one it would otherwise
emit. Parameters ("kernel", "bias") are laid out as in `flax.linen.ConvTranspose`, so
the two are interchangeable on the same checkpoint.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Padding = str | Sequence[tuple[int, int]]


def _padding_pairs(padding: Padding, kernel: Sequence[int],
                   strides: Sequence[int]) -> list[tuple[int, int]]:
  """The (low, high) padding of the dilated input, as `lax.conv_transpose` computes it."""
  if not isinstance(padding, str):
    return [tuple(p) for p in padding]
  pairs = []
  for k, s in zip(kernel, strides):
    if padding == "SAME":
      pad_len = k + s - 2
      low = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    elif padding == "VALID":
      pad_len = k + s - 2 + max(k - s, 0)
      low = k - 1
    else:
      raise ValueError(f"padding must be 'SAME', 'VALID' or pairs; got {padding!r}")
    pairs.append((low, pad_len - low))
  return pairs


def _phase_taps(k: int, s: int, low: int):
  """Per output phase r: (input offset c_r, kernel taps) of the stride-1 correlation."""
  phases = []
  for r in range(s):
    t0 = (low - r) % s
    phases.append(((r + t0 - low) // s, list(range(t0, k, s))))
  return phases


def subpixel_supported(in_size: int, k: int, s: int, low: int, high: int) -> bool:
  out = (in_size - 1) * s + 1 + low + high - k + 1
  return out > 0 and out % s == 0


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                            padding: Padding, precision=None) -> jax.Array:
  """Equals `lax.conv_transpose(x, kernel, strides, padding)` in NHWC / HWIO layout."""
  (k_h, k_w, c_in, c_out), (s_h, s_w) = kernel.shape, strides
  pads = _padding_pairs(padding, (k_h, k_w), strides)
  axes = []
  for size, k, s, (low, high) in zip(x.shape[1:3], (k_h, k_w), strides, pads):
    out = (size - 1) * s + 1 + low + high - k + 1
    phases = _phase_taps(k, s, low)
    start = min(c for c, _ in phases)
    length = max(c - start + len(taps) for c, taps in phases)
    # select[r, l, t] = 1 where phase r's window position l reads kernel tap t.
    select = np.zeros((s, length, k), np.float32)
    for r, (c, taps) in enumerate(phases):
      for m, t in enumerate(taps):
        select[r, c - start + m, t] = 1.0
    axes.append((out // s, start, length, select))
  (q_h, start_h, len_h, sel_h), (q_w, start_w, len_w, sel_w) = axes
  # [r_h, l_h, r_w, l_w, c_in, c_out] -> HWIO with the s_h*s_w phases in the O axis.
  phase_kernel = jnp.einsum("alt,bmu,tuio->lmiabo", sel_h, sel_w, kernel,
                            precision=jax.lax.Precision.HIGHEST)
  phase_kernel = phase_kernel.reshape(len_h, len_w, c_in, s_h * s_w * c_out)
  conv_pads = [(-start, q - 1 + start + length - 1 - (size - 1))
               for q, start, length, size in ((q_h, start_h, len_h, x.shape[1]),
                                              (q_w, start_w, len_w, x.shape[2]))]
  y = jax.lax.conv_general_dilated(
      x, phase_kernel.astype(x.dtype), (1, 1), conv_pads,
      dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision)
  batch = x.shape[0]
  y = y.reshape(batch, q_h, q_w, s_h, s_w, c_out).transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, q_h * s_h, q_w * s_w, c_out)


class ConvTranspose(nn.Module):
  """`flax.linen.ConvTranspose` (2-D, NHWC) that can run as conv + depth-to-space.

  `impl`: "xla" (lax.conv_transpose), "subpixel", or "auto" (subpixel on CPU, where
  it is much faster, and for strided layers only).
  """

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Padding = "SAME"
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype = jnp.float32
  impl: str = "auto"

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    pads = _padding_pairs(self.padding, self.kernel_size, self.strides)
    use_subpixel = self.impl == "subpixel" or (
        self.impl == "auto" and jax.default_backend() == "cpu"
        and max(self.strides) > 1)
    use_subpixel = use_subpixel and all(
        subpixel_supported(n, k, s, lo, hi) for n, k, s, (lo, hi) in
        zip(x.shape[1:3], self.kernel_size, self.strides, pads))
    if use_subpixel:
      y = subpixel_conv_transpose(x, kernel, self.strides, pads)
    else:
      y = jax.lax.conv_transpose(x, kernel, self.strides, pads,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y
