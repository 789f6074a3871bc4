"""gax: GAN experiments in JAX on one compiled alternating update."""

from gax import xla_flags as _xla_flags

_xla_flags.set_defaults()
