"""A transposed convolution computed as stride-1 convolutions and depth-to-space.

A stride-s transposed convolution sends output pixel s*q + r (phase r) a stride-1
correlation of the input with the taps w[t0(r) + s*m] of the kernel. Computing the s*s
phases as ordinary convolutions and interleaving them (depth-to-space) gives the
transposed convolution exactly. XLA's CPU backend runs ordinary convolutions faster than
the input-dilated one it would otherwise emit, and cuDNN does too (measured when this was
made; benchmarks/README.md lists what the CPU step is made of). Layers with thin outputs
(an RGB image) compute the phases as one matrix product and shifted sums instead.
Parameters ("kernel", "bias") are laid out as in `flax.linen.ConvTranspose`, so the two
are interchangeable on the same checkpoint.
"""

import functools
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


def _output_size(in_size: int, k: int, s: int, low: int, high: int) -> int:
  """Length of the transposed convolution's output along one axis."""
  return (in_size - 1) * s + 1 + low + high - k + 1


def subpixel_supported(in_size: int, k: int, s: int, low: int, high: int) -> bool:
  out = _output_size(in_size, k, s, low, high)
  return out > 0 and out % s == 0


def _conv(x, kernel, strides, pads, precision):
  return jax.lax.conv_general_dilated(x, kernel, strides, pads,
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                      precision=precision)


def _flip(kernel):
  """HWIO kernel of the adjoint convolution: taps reversed, in and out swapped."""
  return kernel[::-1, ::-1].swapaxes(2, 3)


def _phase_conv(x, kernel, offsets, out_size, precision):
  """Stride-1 correlation of x with the kernel taps of one phase (or several stacked)."""
  pads = [(-c, q - 1 + c + length - 1 - (size - 1)) for c, q, length, size in
          zip(offsets, out_size, kernel.shape[:2], x.shape[1:3])]
  return _conv(x, kernel.astype(x.dtype), (1, 1), pads, precision)


def subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                            padding: Padding, precision=None) -> jax.Array:
  """Equals `lax.conv_transpose(x, kernel, strides, padding)` in NHWC / HWIO layout.

  Its gradients go through the strided convolution that the transposed one is the
  adjoint of (see `_adjoint_conv`).
  """
  pads = tuple(tuple(pair) for pair in _padding_pairs(padding, kernel.shape[:2], strides))
  return _subpixel_with_adjoint_gradients(x, kernel, tuple(strides), pads, precision)


def _adjoint_conv(x_shape, kernel, strides, pads, grad, precision):
  """conv(grad, flip(kernel)): the stride-s convolution whose input gradient the
  transposed convolution is, so <conv_transpose(x, k), g> = <x, conv(g, flip(k))>."""
  adjoint_pads = [(k - 1 - low, (n - 1) * s + k - g - (k - 1 - low))
                  for k, s, (low, _), n, g in zip(kernel.shape[:2], strides, pads,
                                                  x_shape[1:3], grad.shape[1:3])]
  return _conv(grad, _flip(kernel).astype(grad.dtype), strides, adjoint_pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _subpixel_with_adjoint_gradients(x, kernel, strides, pads, precision):
  return _subpixel_conv_transpose(x, kernel, strides, pads, precision)


def _subpixel_fwd(x, kernel, strides, pads, precision):
  return _subpixel_conv_transpose(x, kernel, strides, pads, precision), (x, kernel)


def _subpixel_bwd(strides, pads, precision, residuals, grad):
  """Both gradients through the adjoint strided convolution k -> conv(g, flip(k)): dx is
  that convolution itself, and dw its kernel gradient applied to x. On the CPU these
  run 1.5 to 4 times faster than the transposes of the per-phase convolutions."""
  x, kernel = residuals
  dx = _adjoint_conv(x.shape, kernel, strides, pads, grad, precision)
  dw = jax.linear_transpose(
      lambda k: _adjoint_conv(x.shape, k, strides, pads, grad, precision),
      kernel)(x.astype(grad.dtype))[0]
  return dx.astype(x.dtype), dw.astype(kernel.dtype)


_subpixel_with_adjoint_gradients.defvjp(_subpixel_fwd, _subpixel_bwd)


def _subpixel_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                             padding: Padding, precision=None) -> jax.Array:
  """The forward computation of `subpixel_conv_transpose`, in one of three forms.

  - Thin outputs (k_h * k_w * c_out <= _OVERLAP_ADD_MAX_WIDTH, e.g. a 4x4 kernel to an
    RGB image): one matrix product and shifted sums (`_overlap_add`).
  - Phases whose taps fit one shared window with little waste (5x5 kernels, stride 2):
    one convolution with s*s times the output channels.
  - Otherwise (4x4 kernels, stride 2, where the shared window would hold 2.25x the
    taps): each phase as its own convolution with exactly its taps.
  """
  (k_h, k_w, c_in, c_out), (s_h, s_w) = kernel.shape, strides
  pads = _padding_pairs(padding, (k_h, k_w), strides)
  phases_h, phases_w = (_phase_taps(k, s, low) for k, s, (low, _) in
                        zip((k_h, k_w), strides, pads))
  out_size = [_output_size(size, k, s, low, high) // s for size, k, s, (low, high)
              in zip(x.shape[1:3], (k_h, k_w), strides, pads)]
  windows = []
  for phases in (phases_h, phases_w):
    start = min(c for c, _ in phases)
    windows.append((start, max(c - start + len(taps) for c, taps in phases)))
  (start_h, len_h), (start_w, len_w) = windows
  batch = x.shape[0]
  if k_h * k_w * c_out <= _OVERLAP_ADD_MAX_WIDTH:
    y = _overlap_add(x, kernel, phases_h, phases_w, out_size, precision)
  elif len_h * len_w * s_h * s_w <= 1.5 * k_h * k_w:
    # One convolution over a shared window; select[r, l, t] = 1 where phase r's window
    # position l reads kernel tap t.
    selects = []
    for phases, start, length, k in ((phases_h, start_h, len_h, k_h),
                                     (phases_w, start_w, len_w, k_w)):
      select = np.zeros((len(phases), length, k), np.float32)
      for r, (c, taps) in enumerate(phases):
        for m, t in enumerate(taps):
          select[r, c - start + m, t] = 1.0
      selects.append(select)
    phase_kernel = jnp.einsum("alt,bmu,tuio->lmiabo", *selects, kernel,
                              precision=jax.lax.Precision.HIGHEST)
    phase_kernel = phase_kernel.reshape(len_h, len_w, c_in, s_h * s_w * c_out)
    y = _phase_conv(x, phase_kernel, (start_h, start_w), out_size, precision)
    y = y.reshape(batch, *out_size, s_h, s_w, c_out)
  else:
    y = _stacked_phases([[_phase_conv(x, kernel[np.array(taps_h)][:, np.array(taps_w)],
                                      (c_h, c_w), out_size, precision)
                          for c_w, taps_w in phases_w] for c_h, taps_h in phases_h])
  y = y.transpose(0, 1, 3, 2, 4, 5)
  return y.reshape(batch, out_size[0] * s_h, out_size[1] * s_w, c_out)


def _stacked_phases(phases):
  """[[B, Qh, Qw, C] per w-phase] per h-phase -> [B, Qh, Qw, s_h, s_w, C]."""
  return jnp.stack([jnp.stack(row, axis=3) for row in phases], axis=3)


# Widest product x @ kernel (k_h * k_w * c_out columns) that `_overlap_add` computes.
# On this project's CPU, XLA's convolutions with 1 to 4 output channels ran 5 to 10
# times slower than this form (4x4 kernel, 64 input channels); from 8 channels on the
# convolution was faster.
_OVERLAP_ADD_MAX_WIDTH = 64


def _overlap_add(x, kernel, phases_h, phases_w, out_size, precision):
  """The phases as one matrix product and shifted sums, [B, Qh, Qw, s_h, s_w, C].

  Every input pixel times every kernel tap (x @ kernel), then each output pixel sums
  its taps' products from the input pixels around it. The sums accumulate in float32,
  as a convolution's do.
  """
  products = jnp.einsum("nhwi,abio->nhwabo", x, kernel.astype(x.dtype),
                        precision=precision, preferred_element_type=jnp.float32)
  zero = jnp.zeros((), products.dtype)
  (q_h, q_w), (n_h, n_w) = out_size, x.shape[1:3]

  def phase(c_h, taps_h, c_w, taps_w):
    total = jnp.zeros((x.shape[0], q_h, q_w, kernel.shape[3]), jnp.float32)
    for m_h, t_h in enumerate(taps_h):
      for m_w, t_w in enumerate(taps_w):
        # Output q of this phase reads input q + c + m; lax.pad shifts and zero-fills.
        o_h, o_w = c_h + m_h, c_w + m_w
        total = total + jax.lax.pad(
            products[:, :, :, t_h, t_w, :], zero,
            ((0, 0, 0), (-o_h, q_h - n_h + o_h, 0), (-o_w, q_w - n_w + o_w, 0), (0, 0, 0)))
    return total.astype(x.dtype)

  return _stacked_phases([[phase(c_h, taps_h, c_w, taps_w) for c_w, taps_w in phases_w]
                          for c_h, taps_h in phases_h])


def _input_gradient_pads(x_shape, kernel_shape, strides, pads):
  """Padding of the transposed convolution that is a strided convolution's input gradient."""
  result = []
  for n, k, s, (low, high) in zip(x_shape[1:3], kernel_shape[:2], strides, pads):
    out = (n + low + high - k) // s + 1
    before = k - 1 - low
    result.append((before, n + k - 2 - (out - 1) * s - before))
  return tuple(result)


def strided_conv(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                 padding: Padding, precision=None,
                 per_phase_input_gradient: bool = True) -> jax.Array:
  """Equals `lax.conv_general_dilated(x, kernel, strides, padding)` in NHWC / HWIO layout.

  With `per_phase_input_gradient`, its input gradient, a transposed convolution, runs
  in the per-phase form (`subpixel_conv_transpose`) rather than as XLA's input-dilated
  convolution, where the shapes allow it.
  """
  strides = tuple(strides)
  pads = (jax.lax.padtype_to_pads(x.shape[1:3], kernel.shape[:2], strides, padding)
          if isinstance(padding, str) else padding)
  pads = tuple(tuple(pair) for pair in pads)
  gradient_pads = _input_gradient_pads(x.shape, kernel.shape, strides, pads)
  out_sizes = [(n + low + high - k) // s + 1 for n, k, s, (low, high) in
               zip(x.shape[1:3], kernel.shape[:2], strides, pads)]
  if per_phase_input_gradient and max(strides) > 1 and all(
      low >= 0 and high >= 0 and subpixel_supported(out, k, s, low, high)
      for out, k, s, (low, high) in zip(out_sizes, kernel.shape[:2], strides, gradient_pads)):
    return _conv_with_subpixel_input_gradient(x, kernel, strides, pads, precision)
  return _conv(x, kernel, strides, pads, precision)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_with_subpixel_input_gradient(x, kernel, strides, pads, precision):
  return _conv(x, kernel, strides, pads, precision)


def _strided_conv_fwd(x, kernel, strides, pads, precision):
  return _conv(x, kernel, strides, pads, precision), (x, kernel)


def _strided_conv_bwd(strides, pads, precision, residuals, grad):
  x, kernel = residuals
  dx = subpixel_conv_transpose(grad, _flip(kernel), strides,
                               _input_gradient_pads(x.shape, kernel.shape, strides, pads),
                               precision)
  dw = jax.linear_transpose(lambda k: _conv(x, k, strides, pads, precision), kernel)(grad)[0]
  return dx.astype(x.dtype), dw


_conv_with_subpixel_input_gradient.defvjp(_strided_conv_fwd, _strided_conv_bwd)


class _ConvLayer(nn.Module):
  """Fields, parameters and bias shared by `Conv` and `ConvTranspose`; laid out as in
  `flax.linen`'s, so either is interchangeable with flax's on the same checkpoint."""

  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int] = (1, 1)
  padding: Padding = "SAME"
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: jnp.dtype = jnp.float32
  impl: str = "auto"

  def convolve(self, x: jax.Array, kernel: jax.Array) -> jax.Array:
    raise NotImplementedError

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init,
                        (*self.kernel_size, x.shape[-1], self.features), jnp.float32)
    y = self.convolve(x.astype(self.dtype), kernel.astype(self.dtype))
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,),
                         jnp.float32).astype(self.dtype)
    return y


class ConvTranspose(_ConvLayer):
  """`flax.linen.ConvTranspose` (2-D, NHWC) that can run as conv + depth-to-space.

  `impl`: "xla" (lax.conv_transpose), "subpixel", or "auto" (subpixel for strided
  layers, the faster form on both CPU and GPU).
  """

  def convolve(self, x, kernel):
    pads = _padding_pairs(self.padding, self.kernel_size, self.strides)
    use_subpixel = self.impl == "subpixel" or (self.impl == "auto" and max(self.strides) > 1)
    use_subpixel = use_subpixel and all(
        subpixel_supported(n, k, s, lo, hi) for n, k, s, (lo, hi) in
        zip(x.shape[1:3], self.kernel_size, self.strides, pads))
    if use_subpixel:
      return subpixel_conv_transpose(x, kernel, self.strides, pads)
    return jax.lax.conv_transpose(x, kernel, self.strides, pads,
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"))


class Conv(_ConvLayer):
  """`flax.linen.Conv` (2-D, NHWC) whose input gradient can run in the per-phase form.

  `impl`: "xla" (XLA's own gradient, an input-dilated convolution), "subpixel" or
  "auto" (both: the per-phase input gradient for strided layers; see `strided_conv`).
  """

  def convolve(self, x, kernel):
    return strided_conv(x, kernel, self.strides, self.padding,
                        per_phase_input_gradient=self.impl != "xla")
