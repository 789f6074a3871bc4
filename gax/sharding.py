"""The device mesh, and how the train state and batches are laid out on it.

Training runs `jax.jit` over a one-axis ("data") mesh of every process's devices: the
batch is sharded along its batch axis, the train state is replicated.
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gax import config_base


def create_mesh(num_devices: int = 0) -> Mesh:
  """A one-axis ("data") mesh over the first `num_devices` devices (0: all).

  With several processes (`jax.distributed.initialize()`), the mesh spans every
  process's devices and `num_devices` must be 0.
  """
  devices = jax.devices()
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    raise config_base.ConfigError(
        f"config.num_devices = {num_devices}: with {jax.process_count()} processes the "
        f"mesh uses all {len(devices)} devices (set 0)")
  if num_devices > len(devices):
    raise config_base.ConfigError(
        f"config.num_devices = {num_devices} but only {len(devices)} devices are visible")
  return Mesh(np.array(devices[:num_devices or len(devices)]), ("data",))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, leading_axes: int) -> NamedSharding:
  """Arrays whose batch axis follows `leading_axes` others, split along it."""
  return NamedSharding(mesh, PartitionSpec(*(None,) * leading_axes, "data"))


def global_array(host_tree, sharding: NamedSharding):
  """Host arrays, identical in every process, as global arrays laid out by `sharding`.

  Each process copies only the pieces its own devices hold (its shard of a batch).
  """
  return jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda index: np.asarray(x)[index]), host_tree)
