"""Command line: python -m gax.evaluate --workdir=DIR [--step=N|best] [--num_samples=N].

Evaluates one checkpoint of a run (default: the latest), prints the result as one JSON
object on the last line of stdout and writes it to DIR/eval/step_N.json.
"""

import json
from pathlib import Path
from typing import Any

from absl import app, flags

from gax import checkpoint as checkpoint_lib
from gax import cli, config_base, evaluation, files, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A run's workdir (holds config.json and checkpoints/).")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best'; default: the latest.")
flags.DEFINE_integer("num_samples", 0, "Generated images (0: the run's eval.num_samples).")
flags.mark_flags_as_required(["workdir"])


def _checkpoint_to_evaluate(workdir: Path, step: str | None) -> tuple[Path, int]:
  """(checkpoint directory, step) for --step, with a clear error when it is absent."""
  if step == "best":
    best_file = workdir / "best.json"
    if not best_file.exists():
      raise config_base.ConfigError(
          f"{workdir} has no best.json: the run never evaluated (set config.eval_every)")
    return workdir / "best_checkpoint", json.loads(best_file.read_text())["step"]
  directory = workdir / "checkpoints"
  available = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
  if not available:
    raise config_base.ConfigError(f"no checkpoints in {directory}")
  if step is None:
    return directory, available[-1]
  if not step.isdigit() or int(step) not in available:
    raise config_base.ConfigError(
        f"--step={step} is not a checkpoint of this run; choose 'best' or one of "
        f"{', '.join(map(str, available))}")
  return directory, int(step)


def evaluate_workdir(workdir: str, step: str | None = None,
                     num_samples: int = 0) -> dict[str, Any]:
  """Restores a checkpoint of the run in `workdir`, evaluates it and writes the JSON."""
  workdir = Path(workdir)
  if not (workdir / "config.json").exists():
    raise config_base.ConfigError(f"{workdir} has no config.json: not a gax workdir")
  config = config_base.load_json(workdir / "config.json")
  if num_samples:
    config.eval.num_samples = num_samples
  directory, step_number = _checkpoint_to_evaluate(workdir, step)
  experiment = train.create_experiment(config)
  checkpointer = checkpoint_lib.Checkpointer(directory, max_to_keep=None)
  state = checkpointer.restore(step_number, experiment.initial_state())
  checkpointer.close()
  result = {"step": step_number,
            **evaluation.create_evaluation(config, experiment.variant)(state)}
  files.write_json(workdir / "eval" / f"step_{step_number}.json", result)
  return result


def run(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.run_command(lambda: print(json.dumps(
      evaluate_workdir(FLAGS.workdir, FLAGS.step, FLAGS.num_samples), sort_keys=True)))


if __name__ == "__main__":
  app.run(run, flags_parser=cli.parse_flags)
