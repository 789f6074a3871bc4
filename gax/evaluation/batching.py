"""Running a function over a large set in batches: every evaluation loop goes through here."""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def in_batches(fn: Callable[[slice], Any], count: int, batch_size: int) -> Any:
  """`fn(rows)` for consecutive slices of `count` rows, `batch_size` at a time; its outputs
  (an array, or a tuple or dict of arrays) brought to the host and concatenated."""
  parts = [jax.device_get(fn(slice(start, min(start + batch_size, count))))
           for start in range(0, count, batch_size)]
  return jax.tree.map(lambda *arrays: np.concatenate([np.asarray(a) for a in arrays]),
                      *parts)
