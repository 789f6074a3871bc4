"""Populations: models that differ only in seed and continuous hyperparameters, trained as
one compiled program.

Every per-model quantity of the compiled step comes from the train state (the keys and
`state["hparams"]`), so a population's state is the members' states stacked along a
leading axis and its step is the single-model step under `jax.vmap` (or unrolled). A
population wraps the single run: `PopulationExperiment` is the stacked experiment, and
`PopulationOutputs` hands each member's slice to that member's own `RunOutputs`, so each
member writes the workdir that a separate run of it would write, through the same loop.

A population file is JSON: {"members": [{"workdir": "...", "overrides": {...}}, ...]},
overrides keyed by dotted config paths, as in sweep files.
"""

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from gax import config_base, errors, variants
from gax.storage import files
from gax.training import health, optim, outputs, sharding, train


def population_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """What members may differ in; anything else would change the compiled program."""
  return ("seed", "optimizer.learning_rate", *optim.HPARAM_FIELDS,
          *variants.hparam_fields(config))


def member_configs(config: ml_collections.ConfigDict, overrides: list[dict[str, Any]]
                   ) -> list[ml_collections.ConfigDict]:
  """One config per member: `config` with that member's overrides.

  Raises ConfigError when an override is not one of `population_fields(config)`.
  """
  allowed = population_fields(config)
  configs = []
  for member_overrides in overrides:
    outside = sorted(set(member_overrides) - set(allowed))
    if outside:
      raise errors.ConfigError(
          f"population members may differ only in {', '.join(allowed)}; "
          f"not in {', '.join(outside)} (run those as separate trials)")
    member = copy.deepcopy(config)
    config_base.apply_overrides(member, member_overrides)
    configs.append(member)
  return configs


def read_population_file(path: str) -> list[tuple[Path, dict[str, Any]]]:
  """(workdir, overrides) of each member of a population file."""
  try:
    members = json.loads(Path(path).read_text())["members"]
    parsed = [(Path(m["workdir"]), dict(m.get("overrides", {}))) for m in members]
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise errors.ConfigError(
        f"--population={path}: {e}; expected JSON "
        '{"members": [{"workdir": "...", "overrides": {"seed": 1}}, ...]}') from None
  if not parsed:
    raise errors.ConfigError(f"--population={path} lists no members")
  check_member_workdirs(path, [w for w, _ in parsed])
  return parsed


def check_member_workdirs(path: str, workdirs: list[Path]) -> None:
  """Refuses member workdirs that are empty, leave --workdir, or share or nest in one
  another (relative ones are taken under --workdir)."""
  normal = [Path(os.path.normpath(w)) for w in workdirs]
  for given, workdir in zip(workdirs, normal):
    if str(given) in ("", ".") or workdir.is_absolute() or ".." in workdir.parts:
      raise errors.ConfigError(
          f"--population={path}: member workdir {str(given)!r} must be a relative path "
          "inside --workdir, e.g. \"seed0\"")
  for i, a in enumerate(normal):
    for b in normal[i + 1:]:
      if a == b or a in b.parents or b in a.parents:
        raise errors.ConfigError(f"--population={path}: members {str(a)!r} and {str(b)!r} "
                                 "share a workdir, or one holds the other")


def write_population_file(path: Path, members: list[tuple[Path, dict[str, Any]]]) -> None:
  files.write_json(path, {"members": [{"workdir": str(w), "overrides": o}
                                      for w, o in members]})


def vectorizes(config: ml_collections.ConfigDict) -> bool:
  """Whether the population's step is vmapped ("vmap") or unrolled member by member
  ("unroll"); "auto" unrolls on CPU, where XLA runs the grouped convolutions that vmap
  makes of per-member kernels several times slower than the members' own ones."""
  choice = config.population_step
  config_base.check_choice("population_step", choice, config_base.CHOICES["population_step"])
  if choice == "auto":
    return jax.default_backend() != "cpu"
  return choice == "vmap"


def batched(update: Callable, num_members: int, shared_data: bool, vectorize: bool,
            split: bool = False) -> Callable:
  """The single-model step `update(state, data)` over a population's state: stacked, or
  (`split`, unrolled only) a tuple of the members' own states.

  `shared_data`: every member reads the same `data` (a resident dataset); otherwise
  `data` carries one entry per member on its leading axis. Either way it is one compiled
  program: vmapped, or with the members' steps unrolled side by side. Metrics are
  stacked.
  """
  if vectorize:
    return jax.vmap(update, in_axes=(0, None if shared_data else 0))

  def unrolled(state, data):
    states = state if split else [member(state, index) for index in range(num_members)]
    results = [update(member_state, data if shared_data else member(data, index))
               for index, member_state in enumerate(states)]
    new_states = tuple(r[0] for r in results)
    return new_states if split else stack(new_states), stack([r[1] for r in results])

  return unrolled


def stack(trees: list[Any]) -> Any:
  """Members' pytrees stacked along a new leading axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, index: int) -> Any:
  """One member's slice of a stacked pytree."""
  return jax.tree.map(lambda leaf: leaf[index], tree)


@dataclasses.dataclass(frozen=True)
class PopulationLayout:
  """How a population's stacked state lies on the mesh and travels through the step
  (the methods of gax/training/sharding.py's SingleLayout): the keys, hparams and train
  state carry a leading member axis and the data is shared. On a mesh of several
  `member` rows the stacked state is split along it, and each row runs its own members'
  steps."""

  mesh: Mesh
  num_members: int
  vectorize: bool

  @property
  def replicated(self):
    return sharding.replicated(self.mesh)

  @property
  def mesh_rows(self) -> int:
    return self.mesh.shape["member"]

  def state_sharding(self):
    return sharding.member_sharding(self.mesh) if self.mesh_rows > 1 else self.replicated

  def metrics_sharding(self):  # [steps, member]
    return sharding.member_sharding(self.mesh, 1) if self.mesh_rows > 1 else self.replicated

  def data_sharding(self, on_device: bool):
    if on_device:
      return self.replicated
    # [step, member, d step, batch, ...]
    return sharding.batch_sharding(self.mesh, 3, 1 if self.mesh_rows > 1 else None)

  def splits_members(self) -> bool:
    """Whether the step carries each member's state as its own arrays: when unrolled on
    one mesh row. Stacked, the unrolled step slices every member out and stacks the
    results back, which copies the whole state each step."""
    return not self.vectorize and self.mesh_rows == 1

  def donates(self) -> bool:
    # Unrolled and stacked (on a member mesh), a donated step copies the whole state
    # twice: XLA keeps the input readable while the stack is written over it.
    return jax.default_backend() != "cpu" and (self.vectorize or self.splits_members())

  def batched(self, update: Callable, shared_data: bool) -> Callable:
    """The single-model step over the members: shared data is the resident dataset;
    host batches come one set per member."""
    rows = self.mesh_rows
    step = batched(update, self.num_members // rows, shared_data, self.vectorize,
                   self.splits_members())
    if rows == 1:
      return step
    # Each mesh row steps its own block of members: the program is local along
    # `member` by construction, and only a row's `data` devices work together.
    member_spec = jax.sharding.PartitionSpec("member")
    return jax.shard_map(
        step, mesh=self.mesh, axis_names={"member"},
        in_specs=(member_spec, jax.sharding.PartitionSpec() if shared_data else member_spec),
        out_specs=member_spec)

  def each(self, fn: Callable, *per_member) -> Any:
    """`fn` of each member's arguments, one after another, stacked."""
    return stack([fn(*member(per_member, index)) for index in range(self.num_members)])

  def vmap(self, fn: Callable) -> Callable:
    return jax.vmap(fn)

  def host_batches(self, batches, data_keys, step: int, count: int):
    """[count, member, ...]: each member's batches in its own order."""
    return jax.tree.map(lambda *members: np.stack(members, axis=1), *(
        batches.host_batches(key, step, count) for key in data_keys))

  def carry(self, state):
    if self.splits_members():
      return tuple(member(state, index) for index in range(self.num_members))
    return state

  def uncarry(self, carried):
    return stack(list(carried)) if self.splits_members() else carried

  def checkpoint_like(self, state):
    """One member's slice of the stacked state's shapes, replicated: what each member's
    own checkpoint restores into, on whatever mesh this run has."""
    return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype,
                                                          sharding=self.replicated), state)


def create_run(config: ml_collections.ConfigDict,
               members: list[ml_collections.ConfigDict]) -> train.Run:
  """The single run of `config`, stacked over the members' keys and hparams."""
  single = train.create_run(config, num_members=len(members), check=False)
  for member_config in members:
    variants.validate(member_config, single.mesh.shape["data"])
  logging.info("A population of %d models, one compiled program; %d per mesh row",
               len(members), len(members) // single.mesh.shape["member"])
  run = dataclasses.replace(
      single, keys=stack([train.stream_keys(m.seed) for m in members]),
      hparams=stack([train.hyperparameters(m) for m in members]),
      layout=PopulationLayout(single.mesh, len(members), vectorizes(config)), compiled={})
  train.check_memory(run)
  return run


class PopulationOutputs:
  """The members' own RunOutputs, each handed its slice of the stacked state and metrics."""

  def __init__(self, members: list[outputs.RunOutputs]):
    self.members = members

  def check_resumable(self) -> None:
    for run in self.members:
      run.check_resumable()

  def restore(self, one):
    """Every member's newest intact checkpoint of one common step, or None. `one` is
    one member's state (shapes and shardings)."""
    latest = [run.restore(one) for run in self.members]
    steps = [0 if state is None else int(state["step"]) for state in latest]
    if min(steps) == max(steps):
      return stack(latest) if steps[0] > 0 else None
    try:  # stopped between two members' saves of one step
      return stack([run.checkpointer.restore(min(steps), one) for run in self.members])
    except ValueError:
      logging.warning("The members' checkpoints have no step in common (%s): starting "
                      "again from step 0", steps)
      return None

  def open(self, start_step: int, records: dict) -> None:
    for run in self.members:
      run.open(start_step, records)

  def check_finite(self, metrics, first_step: int, saved_step: int) -> None:
    for index, run in enumerate(self.members):
      run.check_finite({k: v[:, index] for k, v in metrics.items()}, first_step,
                       saved_step)

  def log(self, steps, metrics, first_step: int, steps_per_s: float) -> None:
    for index, run in enumerate(self.members):
      run.log(steps, {k: v[:, index] for k, v in metrics.items()}, first_step, steps_per_s)

  def write_samples(self, step: int, images, scores) -> None:
    for index, run in enumerate(self.members):
      run.write_samples(step, images[index], None if scores is None else
                        {k: v[index] for k, v in scores.items()})

  def save_checkpoint(self, step: int, state) -> None:
    for index, run in enumerate(self.members):
      run.save_checkpoint(step, member(state, index))

  def evaluate(self, step: int, state) -> None:
    for index, run in enumerate(self.members):
      run.evaluate(step, member(state, index))

  def close(self) -> None:
    for run in self.members:
      run.close()

  def finish(self) -> None:
    for run in self.members:
      run.finish()


def train_population(config: ml_collections.ConfigDict,
                     members: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
  """Trains each (workdir, overrides) member as `train_and_evaluate` would, all of them in
  one compiled program; returns each member's last logged metrics."""
  for workdir, _ in members:
    outputs.check_workdir(workdir)
  configs = member_configs(config, [overrides for _, overrides in members])
  run = create_run(config, configs)
  is_writer = jax.process_index() == 0
  workdirs = [Path(w) for w, _ in members]
  reference = health.grid_reference(run)
  population_outputs = PopulationOutputs([
      outputs.RunOutputs(w, member_config, run.variant, is_writer, f"{w.name}: ",
                         health.create_monitor(member_config, run.variant, reference,
                                               f"{w.name}: "))
      for w, member_config in zip(workdirs, configs)])
  train.run_in_workdirs(run, population_outputs, workdirs)
  return [run.last_metrics for run in population_outputs.members]
