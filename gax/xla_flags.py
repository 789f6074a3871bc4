"""XLA flags that gax sets for speed, before JAX starts its backends.

jaxlib 0.10's CPU backend hands convolutions to YNNPACK. On this project's DCGAN steps
XLA's own (Eigen) convolutions ran faster (benchmarks/README.md, "DCGAN-64 against
pytorch/examples on this CPU"), while YNNPACK stays faster at reductions and matrix
products, so only convolutions go back. A value the user gives a flag in XLA_FLAGS wins
over gax's.
"""

import os

from absl import logging

DEFAULTS = {"xla_cpu_experimental_ynn_fusion_type": "-individual_convolution"}


def set_defaults(environ=os.environ) -> list[str]:
  """Appends to XLA_FLAGS each default flag it does not name; returns those added."""
  current = environ.get("XLA_FLAGS", "")
  added = [f"--{name}={value}" for name, value in DEFAULTS.items()
           if f"--{name}=" not in current]
  if added:
    environ["XLA_FLAGS"] = " ".join([current, *added]).strip()
    if _backends_started():
      logging.warning("JAX started before gax was imported, so XLA ignores %s; import "
                      "gax first for its faster CPU convolutions", " ".join(added))
  return added


def _backends_started() -> bool:
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # a JAX without this private helper
    return False
