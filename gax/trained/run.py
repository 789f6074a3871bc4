"""A trained run read back from its workdir: its config, its variant and one checkpoint's
train state, without loading the training data (the run saved the data's shapes)."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax
import ml_collections
from absl import logging

from gax import errors, memory, variants
from gax.data import datasets as data_lib
from gax.storage import files
from gax.training import checkpoint as checkpoint_lib
from gax.training import optim, train
from gax.variants import ema as ema_lib

# What a run's config.json records beside the config: facts of the run, not settings.
RUN_RECORDS = ("devices_used", "data_info")


def read_run_config(path: Path) -> tuple[ml_collections.ConfigDict, dict]:
  """A run's saved config.json over today's defaults of its variant (fields added since
  keep their defaults), and the run's records (`RUN_RECORDS`)."""
  saved = json.loads(Path(path).read_text())
  records = {name: saved.pop(name) for name in RUN_RECORDS if name in saved}
  options = {}
  if "name" in saved.get("model", {}):
    options["model"] = saved["model"]["name"]
  config = variants.base_config(saved.get("variant", "gan"), **options)
  config.update(saved)
  return config, records


def read_run(workdir: Path) -> tuple[ml_collections.ConfigDict, dict[str, Any]]:
  """A workdir's config and records, with a clear error when it is not a gax workdir."""
  path = Path(workdir) / "config.json"
  if not path.exists():
    raise errors.ConfigError(f"{workdir} has no config.json: not a gax workdir")
  try:
    return read_run_config(path)
  except (ValueError, UnicodeDecodeError, TypeError, KeyError) as e:
    raise errors.ConfigError(
        f"{path} cannot be read as a gax config ({type(e).__name__}: {str(e)[:200]})"
    ) from None


@dataclasses.dataclass(frozen=True)
class TrainedRun:
  workdir: Path
  config: ml_collections.ConfigDict
  variant: Any
  step: int
  state: dict[str, Any]


def checkpoint_to_read(workdir: Path, step: str | None) -> tuple[Path, int]:
  """(checkpoint directory, step) for --step (a number, "best" or None for the latest),
  with a clear error when it is absent."""
  if step == "best":
    best_file = workdir / "best.json"
    if not best_file.exists():
      raise errors.ConfigError(
          f"{workdir} has no best.json: the run never evaluated (set config.eval_every)")
    best = files.read_json_or_set_aside(best_file, may_move=False)
    if not isinstance(best, dict) or not isinstance(best.get("step"), int):
      raise errors.ConfigError(f"{best_file} cannot be read; evaluate a step instead "
                                    "(--step=N)")
    if not (workdir / "best_checkpoint" / str(best["step"])).is_dir():
      raise errors.ConfigError(
          f"{best_file} names step {best['step']}, but {workdir / 'best_checkpoint'} has no "
          "such checkpoint; evaluate a step instead (--step=N)")
    return workdir / "best_checkpoint", best["step"]
  directory = workdir / "checkpoints"
  available = checkpoint_lib.saved_steps(directory)
  if not available:
    raise errors.ConfigError(f"no checkpoints in {directory}")
  if step is None:
    return directory, available[-1]
  if not step.isdigit() or int(step) not in available:
    raise errors.ConfigError(
        f"--step={step} is not a checkpoint of this run; choose 'best' or one of "
        f"{', '.join(map(str, available))}")
  return directory, int(step)


def data_info(config: ml_collections.ConfigDict, records: dict) -> data_lib.DataInfo:
  """The data's shapes as the run recorded them (older runs: read from the data)."""
  if "data_info" in records:
    return data_lib.DataInfo.from_json(records["data_info"])
  return train.load_batches(config).info


def create_variant(config: ml_collections.ConfigDict, info: data_lib.DataInfo, path: Path):
  """The run's variant from its saved config and recorded data shapes; a config.json
  that cannot describe this run (edited, or another run's) is one line naming it."""
  try:
    variants.validate(config)
    fields = set(variants.batch_spec(config))
  except (errors.ConfigError, errors.DataError) as e:
    raise errors.ConfigError(f"{path}: {e}") from None
  if fields != set(info.field_shapes):
    raise errors.ConfigError(
        f"{path} describes a {config.variant!r} run, whose batches hold "
        f"{', '.join(sorted(fields))}, but this run trained on "
        f"{', '.join(sorted(info.field_shapes))}: the file was edited, or is another run's")
  try:
    return variants.create(config, info)
  except (errors.ConfigError, errors.DataError) as e:
    raise errors.ConfigError(f"{path}: {e}") from None


def load(workdir: str | Path, step: str | None = None,
         config: ml_collections.ConfigDict | None = None) -> TrainedRun:
  """The run in `workdir` at checkpoint `step`; `config` replaces its saved one."""
  workdir = Path(workdir)
  saved, records = read_run(workdir)
  config = config or saved
  directory, step_number = checkpoint_to_read(workdir, step)
  variant = create_variant(config, data_info(config, records), workdir / "config.json")
  like = jax.jit(lambda: train.create_train_state(
      variant, optim.create_optimizers(config), train.stream_keys(config.seed),
      train.hyperparameters(config), ema_lib.enabled(config)))()
  checkpointer = checkpoint_lib.Checkpointer(directory, max_to_keep=None)
  try:
    step_number, state = _restore(checkpointer, step_number, like, latest=step is None)
  finally:
    checkpointer.close()
  return TrainedRun(workdir, config, variant, step_number, state)


def _restore(checkpointer: checkpoint_lib.Checkpointer, step: int, like, latest: bool):
  """(step, state) of checkpoint `step`; when it is the latest and damaged, of the newest
  older one that is intact (with a warning). Nothing is moved: reading never changes a
  workdir."""
  candidates = [s for s in reversed(checkpointer.all_steps()) if s <= step] if latest else [
      step]
  problems = []
  for candidate in candidates:
    if mismatch := checkpointer.mismatch(candidate, like):
      raise errors.ConfigError(
          f"the checkpoint of step {candidate} holds a train state of another structure "
          f"than this run's config.json describes ({mismatch})")
    try:
      state = checkpointer.restore(candidate, like)
    except ValueError as e:
      problems.append(f"step {candidate}: {e}")
      continue
    if problems:
      logging.warning("Skipped damaged checkpoints (%s); using step %d", "; ".join(problems),
                      candidate)
    return candidate, state
  raise errors.ConfigError(
      f"no intact checkpoint to evaluate in {checkpointer.directory} ({'; '.join(problems)})")


def evaluate_workdir(workdir: str | Path, step: str | None = None,
                     num_samples: int = 0) -> dict[str, Any]:
  """Evaluates a checkpoint of the run in `workdir` (the variant's evaluator) and writes
  the result to eval/step_N.json."""
  if num_samples < 0 or num_samples == 1:
    raise errors.ConfigError(f"--num_samples={num_samples} must be 0 (the run's "
                             "eval.num_samples) or >= 2")
  config, records = read_run(Path(workdir))
  if num_samples:
    config.eval.num_samples = num_samples
  memory.check_evaluation(config.eval.num_samples,
                          data_info(config, records).field_shapes,
                          "--num_samples" if num_samples else "eval.num_samples")
  run = load(workdir, step, config)
  evaluate = run.variant.create_evaluator(config)
  result = {"step": run.step, **evaluate(ema_lib.chosen(run.state, config))}
  if "ema" in run.state:  # both generators: the other one's results beside
    if config.eval.use_ema:
      result["without_ema"] = evaluate(ema_lib.without(run.state))
    else:
      result["with_ema"] = evaluate(run.state)
  try:
    files.write_json(run.workdir / "eval" / f"step_{run.step}.json", result)
  except OSError as e:
    logging.warning("Could not save eval/step_%d.json (%s); the result is printed only",
                    run.step, e.strerror or e)
  return result
