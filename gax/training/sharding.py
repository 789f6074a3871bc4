"""The device mesh, and how the train state and batches are laid out on it.

Training runs `jax.jit` over a two-axis mesh of every process's devices, `member` ×
`data`. Each model's batch is sharded along `data`. A single run (and a population on
one mesh row, `config.mesh.members = 1`) keeps its train state replicated; a population
on several rows has its stacked state split along `member`, so each row of devices
trains its own members, and no collective crosses rows (`cross_member_collectives`
reads that off the compiled program).
"""

import dataclasses
import re

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gax import errors

AXES = ("member", "data")


def mesh_shape(num_devices: int, members: int, data: int) -> tuple[int, int]:
  """The (member, data) shape of a mesh of `num_devices`; `data` = 0: the rest."""
  if data == 0:
    if num_devices % members:
      raise errors.ConfigError(
          f"config.mesh.members = {members} does not divide the {num_devices} devices "
          f"in use; allowed: {', '.join(map(str, divisors(num_devices)))}")
    data = num_devices // members
  if members * data != num_devices:
    shapes = ", ".join(f"({m}, {num_devices // m})" for m in divisors(num_devices))
    raise errors.ConfigError(
        f"config.mesh = ({members}, {data}) (members, data) holds {members * data} "
        f"devices but {num_devices} are in use (config.num_devices; 0: all visible); "
        f"choose members × data = {num_devices}: {shapes}")
  return members, data


def divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def create_mesh(num_devices: int = 0, members: int = 1, data: int = 0) -> Mesh:
  """A (member, data) mesh over the first `num_devices` devices (0: all).

  With several processes (`jax.distributed.initialize()`), the mesh spans every
  process's devices and `num_devices` must be 0; devices are in process order, so a
  member's `data` row stays within a host whenever `data` divides a host's devices.
  """
  devices = jax.devices()
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    raise errors.ConfigError(
        f"config.num_devices = {num_devices}: with {jax.process_count()} processes the "
        f"mesh uses all {len(devices)} devices (set 0)")
  if num_devices > len(devices):
    raise errors.ConfigError(
        f"config.num_devices = {num_devices} but only {len(devices)} devices are visible")
  used = devices[:num_devices or len(devices)]
  return Mesh(np.array(used).reshape(mesh_shape(len(used), members, data)), AXES)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def member_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
  """Arrays whose member axis follows `leading_axes` others, split along `member`."""
  return NamedSharding(mesh, PartitionSpec(*(None,) * leading_axes, "member"))


def batch_sharding(mesh: Mesh, leading_axes: int, member_axis: int | None = None
                   ) -> NamedSharding:
  """Arrays whose batch axis follows `leading_axes` others, split along `data`; the
  leading axis `member_axis`, if given, holds a population's members and is split along
  `member`."""
  spec = [None] * leading_axes + ["data"]
  if member_axis is not None:
    spec[member_axis] = "member"
  return NamedSharding(mesh, PartitionSpec(*spec))


def constrain_batch(mesh: Mesh, x: jax.Array, leading_axes: int) -> jax.Array:
  """One model's batch, its batch axis after `leading_axes` others split along `data`.
  Inside the population step's shard_map over `member`, the constraint names the traced
  (abstract) mesh, whose `member` axis is manual there."""
  abstract = jax.sharding.get_abstract_mesh()
  target = abstract if abstract.manual_axes else mesh
  spec = PartitionSpec(*(None,) * leading_axes, "data")
  return jax.lax.with_sharding_constraint(x, NamedSharding(target, spec))


def global_array(host_tree, sharding: NamedSharding):
  """Host arrays, identical in every process, as global arrays laid out by `sharding`.

  Each process copies only the pieces its own devices hold (its shard of a batch).
  """
  return jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda index: np.asarray(x)[index]), host_tree)


@dataclasses.dataclass(frozen=True)
class SingleLayout:
  """How one model's state lies on the mesh and travels through the training step
  (gax/training/train.py): replicated, its batch split along `data`, carried as it is.
  A population's layout (gax/training/population.py) has the same methods over stacked
  members."""

  mesh: Mesh

  @property
  def replicated(self):
    return replicated(self.mesh)

  def state_sharding(self):
    return self.replicated

  def metrics_sharding(self):
    return self.replicated

  def data_sharding(self, on_device: bool):
    return self.replicated if on_device else batch_sharding(self.mesh, 2)

  def donates(self) -> bool:
    """Whether each step's new state takes over the old one's buffers: on accelerators,
    where memory is short. XLA's CPU backend runs the step faster with fresh buffers
    (the aliased outputs cost it copies), and host memory is plentiful."""
    return jax.default_backend() != "cpu"

  def batched(self, update, shared_data: bool):
    return update

  def each(self, fn, *per_member):
    """`fn` of the model's own arguments (a population: of each member's, stacked)."""
    return fn(*per_member)

  def vmap(self, fn):
    return fn

  def host_batches(self, batches, data_key, step: int, count: int):
    return batches.host_batches(data_key, step, count)

  def carry(self, state):
    return state

  def uncarry(self, carried):
    return carried

  def checkpoint_like(self, state):
    """What a checkpoint restores into: the state itself."""
    return state


_COLLECTIVE = re.compile(
    r"=\s*\S+\s+(all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute|"
    r"collective-broadcast)(?:-start)?\(")


def _iota(text: str) -> np.ndarray:
  """XLA's iota device list, `[4,2]<=[2,4]T(1,0)` or `[2,4]T(1,0)`: arange over the
  (last) bracketed shape, transposed, as the first shape."""
  shapes = [[int(v) for v in dims.split(",")] for dims in re.findall(r"\[([\d,]+)\]", text)]
  ids = np.arange(int(np.prod(shapes[-1]))).reshape(shapes[-1])
  if transpose := re.search(r"T\(([\d,]+)\)", text):
    ids = ids.transpose([int(v) for v in transpose.group(1).split(",")])
  return ids.reshape(shapes[0])


def _replica_groups(line: str) -> list[list[int]]:
  """The device groups of one collective of an HLO text. XLA writes them as lists
  (`{{0,1},{2,3}}`), as iota (`[2,4]<=[8]`), over named mesh axes
  (`mesh['axis_0'=2,'axis_1'=4] {'axis_0'}`, optionally with `device_ids=(...)`), or, for
  a collective-permute, as `source_target_pairs`. [] where none are given: one group of
  every device."""
  if match := re.search(r"source_target_pairs=\{((?:\{\d+,\d+\},?)*)\}", line):
    return [[int(v) for v in pair.split(",")]
            for pair in re.findall(r"\{(\d+,\d+)\}", match.group(1))]
  if match := re.search(r"replica_groups=mesh\[([^\]]*)\](?:,\s*device_ids=\(([^)]*\)?)\))?"
                        r"\s*\{([^}]*)\}", line):
    axes = [(name, int(size)) for name, size in re.findall(r"'([^']+)'=(\d+)", match.group(1))]
    sizes = [size for _, size in axes]
    ids = (_iota(match.group(2)) if match.group(2) else np.arange(int(np.prod(sizes))))
    ids = ids.reshape(sizes)
    grouped = [i for i, (name, _) in enumerate(axes) if f"'{name}'" in match.group(3)]
    kept = [i for i in range(len(axes)) if i not in grouped]
    group_size = int(np.prod([sizes[i] for i in grouped]))
    return ids.transpose(kept + grouped).reshape(-1, group_size).tolist()
  if match := re.search(r"replica_groups=(\[[\d,]+\]<=\[[\d,]+\](?:T\([\d,]+\))?)", line):
    iota = _iota(match.group(1))
    return iota.reshape(iota.shape[0], -1).tolist()
  if match := re.search(r"replica_groups=\{((?:\{[\d,]*\},?)*)\}", line):
    groups = [[int(v) for v in g.split(",") if v]
              for g in re.findall(r"\{([\d,]*)\}", match.group(1))]
    if any(groups):
      return groups
  elif "replica_groups=" in line:
    raise ValueError(f"replica groups in a form not read here: {line.strip()[:300]}")
  return []  # no groups given: one group of every device


def cross_member_collectives(hlo_text: str, mesh: Mesh) -> list[str]:
  """The collectives of a compiled program (`jitted.lower(...).compile().as_text()`)
  whose device groups span more than one row of `mesh` along `member`.

  A group's entries are positions in the program's device assignment, which is the
  mesh's devices in row-major order, so position n lies on row n // mesh.shape["data"].
  """
  row_length = mesh.shape["data"]
  crossing = []
  for line in hlo_text.splitlines():
    if not _COLLECTIVE.search(line):
      continue
    groups = _replica_groups(line) or [list(range(mesh.devices.size))]
    if any(len({n // row_length for n in group}) > 1 for group in groups):
      crossing.append(line.strip()[:240])
  return crossing
