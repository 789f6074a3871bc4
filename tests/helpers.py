"""What many tests share: configs at tiny sizes, reading a workdir back, and comparing two
computations of one training step."""

import jax
import numpy as np

# float32's unit roundoff, 2**-24: the relative error of one rounded operation.
FLOAT32_ROUNDOFF = 2.0 ** -24


def update_differences(before, after, other) -> dict[str, float]:
  """How far `other` lies from `after`, both one step from the train state `before`: per
  group of the state (each network's params, batch statistics, G's average), the L2 norm
  of their difference over the L2 norm of `after`'s update of the group.

  One step from the same state keeps the measure at the step's own rounding: over
  several steps, training amplifies float32 rounding by a factor that depends on which
  CPU kernels XLA picks, and two layouts of one computation drift apart.
  """
  before, after, other = jax.device_get((before, after, other))
  found = {}
  for part in ("params", "batch_stats", "ema"):
    for group in after.get(part, {}):
      moved = [np.asarray(a, np.float64) - np.asarray(b, np.float64) for a, b in
               zip(jax.tree.leaves(after[part][group]), jax.tree.leaves(before[part][group]))]
      apart = [np.asarray(a, np.float64) - np.asarray(b, np.float64) for a, b in
               zip(jax.tree.leaves(after[part][group]), jax.tree.leaves(other[part][group]),
                   strict=True)]
      if not moved:
        continue
      update = np.sqrt(sum(np.sum(m * m) for m in moved))
      distance = np.sqrt(sum(np.sum(d * d) for d in apart))
      found[f"{part}/{group}"] = (0.0 if distance == 0 else
                                  float(distance / update) if update else np.inf)
  return found
