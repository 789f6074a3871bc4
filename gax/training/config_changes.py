"""What a resumed run may change in its config, and the record of what it changed.

A workdir's config.json says what its checkpoints are. On a rerun the new config is
compared with it field by field:
- a field that fixes the train state's structure (variant, data, networks, the optimizer
  kind) cannot change: the run stops before anything is read or written;
- a field of the schedule or the bookkeeping (longer training, another eval schedule,
  devices) may change: it is accepted and logged;
- any other change alters the optimisation (loss, batch size, learning rate, seed): it
  needs `--config.resume=allow_changes`.
Every accepted change is appended to `config_history.jsonl` with the step it applies
from, so config.json (the config now in force) never hides what the run was trained with.
"""

import json
import time
from pathlib import Path
from typing import Any

import ml_collections

from gax import errors
from gax.storage import files

# Fields (or field groups, by prefix) that fix the train state's structure.
STATE_FIELDS = ("variant", "dataset", "dataset_b", "model", "data.image_size",
                "data.channels", "data.crop_size", "optimizer.name", "optimizer.momentum",
                "optimizer.d_max_column_norm", "loss.pool_size", "ema.decay",
                "augment.name")
# Fields that leave the optimisation as it is.
SAFE_FIELDS = ("num_train_steps", "log_every", "sample_every", "checkpoint_every",
               "keep_checkpoints", "eval_every", "eval", "num_samples",
               "steps_per_dispatch", "num_devices", "mesh", "population_step", "nan_policy",
               "inject_nan_at_step", "data.on_device", "data.max_device_bytes",
               "data.data_dir", "data.pipeline", "data.max_memory_bytes", "data.workers",
               "data.prefetch", "data.read_threads", "resume", "health")
HISTORY_FILE = "config_history.jsonl"


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _in(name: str, groups: tuple[str, ...]) -> bool:
  return any(name == g or name.startswith(g + ".") for g in groups)


def as_dict(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def changes(saved: dict, config: ml_collections.ConfigDict) -> dict[str, list[str]]:
  """The fields that differ, by kind: {"state": [...], "optimisation": [...],
  "safe": [...]}, each entry "field: old -> new". A field the saved config lacks (added
  to gax since) is no change."""
  old, new = _flatten(saved), _flatten(as_dict(config))
  found = {"state": [], "optimisation": [], "safe": []}
  for name in sorted(set(old) & set(new)):
    if old[name] == new[name]:
      continue
    kind = ("state" if _in(name, STATE_FIELDS) else
            "safe" if _in(name, SAFE_FIELDS) else "optimisation")
    found[kind].append(f"{name}: {old[name]!r} -> {new[name]!r}")
  for name in sorted(set(old) - set(new)):  # a field of another variant's or model's
    if _in(name, STATE_FIELDS):
      found["state"].append(f"{name}: {old[name]!r} -> (none)")
  return found


def check_resumable(workdir: Path, saved: dict, config: ml_collections.ConfigDict
                    ) -> dict[str, list[str]]:
  """Raises ConfigError for a change the run cannot take; returns the accepted ones."""
  found = changes(saved, config)
  if found["state"]:
    raise errors.ConfigError(
        f"{workdir} holds checkpoints of another kind of run ({'; '.join(found['state'])}); "
        "nothing was changed: give the config it was trained with, or choose a new "
        "--workdir")
  if found["optimisation"] and config.resume != "allow_changes":
    raise errors.ConfigError(
        f"{workdir} was trained with other optimisation settings "
        f"({'; '.join(found['optimisation'])}); nothing was changed: to go on with the "
        "new ones add --config.resume=allow_changes (recorded in config_history.jsonl), "
        "or drop the overrides")
  return found


def record(workdir: Path, step: int, found: dict[str, list[str]]) -> None:
  """Appends the changes a resumed run accepted, from `step` on, to the history."""
  accepted = found["optimisation"] + found["safe"]
  if not accepted:
    return
  entry = {"step": step, "time": time.strftime("%Y-%m-%d %H:%M:%S"), "changes": accepted}
  path = Path(workdir) / HISTORY_FILE
  previous = path.read_text() if path.exists() else ""
  files.write_atomically(path, previous + json.dumps(entry) + "\n")
