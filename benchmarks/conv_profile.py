"""Per-layer convolution times of the DCGAN-64 step, in JAX (XLA) or in PyTorch; JSON.

  python benchmarks/conv_profile.py --framework=jax --batch_size=64
  PATH/TO/python-with-torch benchmarks/conv_profile.py --framework=torch --batch_size=64

For each of the discriminator's stride-2 4x4 convolutions (3->64->128->256->512 at
64/32/16/8 pixels) and the generator's stride-2 4x4 transposed convolutions (the same
layers, reversed), it times the forward pass, the gradient with respect to the input
(dx) and the gradient with respect to the kernel (dw). Together these are almost all of
a DCGAN step's FLOPs, so comparing the two frameworks' lines locates a speed gap. gax's
convolutions are timed as gax runs them (`model.conv_transpose="auto"`).
"""

import argparse
import json
import time

LAYERS = [(64, 3, 64), (32, 64, 128), (16, 128, 256), (8, 256, 512)]  # (size, c_in, c_out)


def timed(fn, repeats: int) -> float:
  fn()
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats * 1e3


def _time_jax_layer(op, x, w, repeats: int) -> dict[str, float]:
  import jax

  g = jax.numpy.ones_like(op(x, w))
  fwd = jax.jit(op)
  dx = jax.jit(lambda x, w, g: jax.vjp(lambda x: op(x, w), x)[1](g)[0])
  dw = jax.jit(lambda x, w, g: jax.vjp(lambda w: op(x, w), w)[1](g)[0])
  return {"fwd_ms": timed(lambda: fwd(x, w).block_until_ready(), repeats),
          "dx_ms": timed(lambda: dx(x, w, g).block_until_ready(), repeats),
          "dw_ms": timed(lambda: dw(x, w, g).block_until_ready(), repeats)}


def _time_torch_layer(op, x, w, repeats: int) -> dict[str, float]:
  import torch

  g = torch.ones_like(op(x, w))

  def forward():
    with torch.no_grad():
      op(x, w)

  forward_ms = timed(forward, repeats)
  # autograd recomputes the forward; subtract it to leave the gradient alone.
  return {"fwd_ms": forward_ms,
          "dx_ms": timed(lambda: torch.autograd.grad(op(x, w), x, g), repeats) - forward_ms,
          "dw_ms": timed(lambda: torch.autograd.grad(op(x, w), w, g), repeats) - forward_ms}


def jax_rows(batch: int, repeats: int) -> list[dict]:
  import jax.numpy as jnp

  from gax.models import layers

  def conv(x, w):
    return layers.strided_conv(x, w, (2, 2), ((1, 1), (1, 1)))

  def conv_transpose(x, w):
    return layers.ConvTranspose(w.shape[-1], (4, 4), (2, 2), ((2, 2), (2, 2)),
                                use_bias=False).apply({"params": {"kernel": w}}, x)

  rows = []
  for name, op, shapes in (
      ("conv", conv, [((batch, s, s, ci), (4, 4, ci, co)) for s, ci, co in LAYERS]),
      ("conv_transpose", conv_transpose,
       [((batch, s // 2, s // 2, co), (4, 4, co, ci)) for s, ci, co in LAYERS])):
    for x_shape, w_shape in shapes:
      rows.append({"op": name, "input": list(x_shape), "kernel": list(w_shape),
                   **_time_jax_layer(op, jnp.ones(x_shape) * 0.1,
                                     jnp.ones(w_shape) * 0.01, repeats)})
  return rows


def torch_rows(batch: int, repeats: int) -> list[dict]:
  import torch

  rows = []
  for name, transposed in (("conv", False), ("conv_transpose", True)):
    for s, ci, co in LAYERS:
      if transposed:
        x = torch.full((batch, co, s // 2, s // 2), 0.1, requires_grad=True)
        w = torch.full((co, ci, 4, 4), 0.01, requires_grad=True)
        op = lambda x, w: torch.nn.functional.conv_transpose2d(x, w, stride=2, padding=1)
      else:
        x = torch.full((batch, ci, s, s), 0.1, requires_grad=True)
        w = torch.full((co, ci, 4, 4), 0.01, requires_grad=True)
        op = lambda x, w: torch.nn.functional.conv2d(x, w, stride=2, padding=1)
      size = s // 2 if transposed else s
      rows.append({"op": name, "input": [batch, size, size, co if transposed else ci],
                   **_time_torch_layer(op, x, w, repeats)})
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--framework", choices=("jax", "torch"), required=True)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  rows = (jax_rows if args.framework == "jax" else torch_rows)(args.batch_size, args.repeats)
  for row in rows:
    print(json.dumps({"framework": args.framework,
                      **{k: round(v, 2) if isinstance(v, float) else v
                         for k, v in row.items()}}))
  print(json.dumps({"framework": args.framework, "total_ms": round(sum(
      r["fwd_ms"] + r["dx_ms"] + r["dw_ms"] for r in rows), 1)}))


if __name__ == "__main__":
  main()
