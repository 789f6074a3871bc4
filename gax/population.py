"""Populations: models that differ only in seed and continuous hyperparameters, trained as
one vmapped program.

Every per-model quantity of the compiled step comes from the train state (the keys and
`state["hparams"]`), so a population's state is the members' states stacked along a
leading axis and its step is the single-model step under `jax.vmap`. Each member writes
the workdir that a separate run of it would write.

A population file is JSON: {"members": [{"workdir": "...", "overrides": {...}}, ...]},
overrides keyed by dotted config paths, as in sweep files.
"""

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from gax import config_base, files, optim

# What members may differ in; anything else would change the compiled program.
POPULATION_FIELDS = ("seed", "optimizer.learning_rate", *optim.HPARAM_FIELDS)


def member_configs(config: ml_collections.ConfigDict, overrides: list[dict[str, Any]]
                   ) -> list[ml_collections.ConfigDict]:
  """One config per member: `config` with that member's overrides.

  Raises ConfigError when an override is not one of POPULATION_FIELDS.
  """
  configs = []
  for member_overrides in overrides:
    outside = sorted(set(member_overrides) - set(POPULATION_FIELDS))
    if outside:
      raise config_base.ConfigError(
          f"population members may differ only in {', '.join(POPULATION_FIELDS)}; "
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
    raise config_base.ConfigError(
        f"--population={path}: {e}; expected JSON "
        '{"members": [{"workdir": "...", "overrides": {"seed": 1}}, ...]}') from None
  if not parsed:
    raise config_base.ConfigError(f"--population={path} lists no members")
  if len({w.absolute() for w, _ in parsed}) < len(parsed):
    raise config_base.ConfigError(f"--population={path}: two members share a workdir")
  return parsed


def write_population_file(path: Path, members: list[tuple[Path, dict[str, Any]]]) -> None:
  files.write_json(path, {"members": [{"workdir": str(w), "overrides": o}
                                      for w, o in members]})


def vectorizes(config: ml_collections.ConfigDict) -> bool:
  """Whether the population's step is vmapped ("vmap") or unrolled member by member
  ("unroll"); "auto" unrolls on CPU, where XLA runs the grouped convolutions that vmap
  makes of per-member kernels several times slower than the members' own ones."""
  choice = config.population_step
  if choice not in ("auto", "vmap", "unroll"):
    raise config_base.ConfigError(
        f"config.population_step = {choice!r} must be 'auto', 'vmap' or 'unroll'")
  if choice == "auto":
    return jax.default_backend() != "cpu"
  return choice == "vmap"


def batched(update: Callable, num_members: int, shared_data: bool, vectorize: bool
            ) -> Callable:
  """The single-model step `update(state, data)` over a stacked population state.

  `shared_data`: every member reads the same `data` (a resident dataset); otherwise
  `data` carries one entry per member on its leading axis. Either way it is one compiled
  program: vmapped, or with the members' steps unrolled side by side.
  """
  if vectorize:
    return jax.vmap(update, in_axes=(0, None if shared_data else 0))

  def unrolled(state, data):
    results = [update(member(state, index), data if shared_data else member(data, index))
               for index in range(num_members)]
    return stack([r[0] for r in results]), stack([r[1] for r in results])

  return unrolled


def stack(trees: list[Any]) -> Any:
  """Members' pytrees stacked along a new leading axis."""
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree: Any, index: int) -> Any:
  """One member's slice of a stacked pytree."""
  return jax.tree.map(lambda leaf: leaf[index], tree)
