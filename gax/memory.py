"""What a run would allocate, checked against the machine before it allocates it: a size
typed one digit too long fails in one line instead of swapping for minutes."""

import math
import os
from collections.abc import Callable

import jax

from gax import errors


def host_bytes() -> int:
  """The machine's physical memory."""
  return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def device_bytes() -> int:
  """What one device may hold: its memory limit where the backend says, else the host's
  (a CPU device allocates from host memory)."""
  stats = jax.local_devices()[0].memory_stats() or {}
  return int(stats.get("bytes_limit") or host_bytes())


def _format(nbytes: float) -> str:
  for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
    if nbytes < 1024 or unit == "PB":
      return f"{nbytes:.3g} {unit}"
    nbytes /= 1024
  return ""


def check(nbytes: float, what: str, available: int, where: str = "this machine") -> None:
  """Raises ConfigError when `what` (naming the fields that size it) needs more than
  `available` bytes."""
  if nbytes > available:
    raise errors.ConfigError(f"{what} would need {_format(nbytes)}, more than "
                                  f"{where}'s {_format(available)}")


def check_training(state, states_alive: int, resident_bytes: int,
                   field_shapes: dict[str, tuple[int, ...]]) -> None:
  """Refuses a train state (`state`: its shapes and shardings) that one device cannot
  hold `states_alive` times over (the state, its gradients and, undonated, the old state
  through the step) beside the resident data."""
  check(states_alive * tree_bytes_per_device(state) + resident_bytes,
        "the train state, its gradients and the resident data (model.*, data.image_size, "
        f"batch fields {field_shapes})", device_bytes(), "the device")


def check_evaluation(num_samples: int, field_shapes: dict[str, tuple[int, ...]],
                     what: str = "eval.num_samples") -> None:
  """Refuses an evaluation whose images (float32, the largest batch field's shape) the
  host cannot hold."""
  image = max(math.prod(shape) for shape in field_shapes.values())
  check(4 * image * num_samples, f"evaluating {what} = {num_samples} images",
        host_bytes())


def tree_bytes(tree) -> int:
  """Bytes of the arrays (or shape-dtype structs) of a pytree."""
  return sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def tree_bytes_per_device(tree) -> int:
  """Bytes of one device's shards of a pytree's arrays (or shape-dtype structs; one
  without a sharding counts whole)."""
  shard = lambda x: x.shape if x.sharding is None else x.sharding.shard_shape(x.shape)
  return sum(math.prod(shard(x)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def intermediate_bytes(fn: Callable, *args) -> int:
  """Bytes of every value `fn(*args)` computes, from its jaxpr (nothing is run): an upper
  bound on what a forward pass holds at once, since XLA frees and fuses."""

  def total(jaxpr) -> int:
    count = 0
    for eqn in jaxpr.eqns:
      count += sum(math.prod(v.aval.shape) * v.aval.dtype.itemsize for v in eqn.outvars
                   if hasattr(v.aval, "shape"))
      for value in eqn.params.values():
        for sub in value if isinstance(value, (tuple, list)) else (value,):
          sub = getattr(sub, "jaxpr", sub)
          if hasattr(sub, "eqns"):
            count += total(sub)
    return count

  return total(jax.make_jaxpr(fn)(*args).jaxpr)
