"""FLOPs of a JAX function, counted from its jaxpr.

Convolutions and matrix products only, 2 per multiply-add: they are nearly all of a
GAN step's arithmetic. Counting the jaxpr gives the same figure on every backend, where
XLA's cost analysis on a GPU counts cuDNN's convolutions as free.
"""

import math
from collections.abc import Callable

import jax


def count(fn: Callable, *args) -> float:
  """FLOPs of one call `fn(*args)` (arrays or shape-dtype structs)."""
  return jaxpr_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def jaxpr_flops(jaxpr) -> float:
  """FLOPs of a jaxpr's convolutions and matrix products, nested jaxprs included.

  Multiplications by the zeros an input dilation inserts (transposed convolutions,
  input gradients of strided ones) are not counted; border taps that fall on padding
  are. A scan's body counts `length` times, a cond's first branch once.
  """
  total = 0.0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    out_size = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape
      taps_and_features = math.prod(kernel) / kernel[eqn.params["dimension_numbers"].rhs_spec[0]]
      total += 2 * out_size * taps_and_features / math.prod(eqn.params["lhs_dilation"])
    elif name == "dot_general":
      (lhs_contracting, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += 2 * out_size * math.prod(lhs[d] for d in lhs_contracting)
    repeats = eqn.params.get("length", 1) if name == "scan" else 1
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        sub = getattr(sub, "jaxpr", sub)
        if hasattr(sub, "eqns"):
          total += repeats * jaxpr_flops(sub)
          if name == "cond":
            break
  return total
