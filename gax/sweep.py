"""Command line: python -m gax.sweep --config=configs/NAME.py[:arg] --sweep=FILE --workdir=DIR.

A sweep file defines `sweep(add)` and calls `add(**overrides)` once per trial, with
dotted config paths as keys: `add(**{"optimizer.learning_rate": 1e-4, "seed": 2})`.
Each trial runs as its own `python -m gax.main` process in `DIR/<trial>/`, so a rerun
skips finished trials and resumes unfinished ones; `--dry_run` prints those commands for
a cluster scheduler instead. With `--population`, trials that differ only in seed and
continuous hyperparameters run as one vmapped `gax.main --population` process each
(`DIR/population_NNN/` holds its member list and log), still writing one workdir per
trial. At the end, DIR/summary.csv and DIR/summary.md hold one row per trial: its
overrides, final losses and the latest evaluation when there is one.
"""

import csv
import importlib.util
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from gax import cli, config_base, files, population, train, variants, writers

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file, optionally with :arg.")
flags.DEFINE_string("sweep", None, "Python file defining sweep(add).")
flags.DEFINE_string("workdir", None, "Directory that holds one workdir per trial.")
flags.DEFINE_integer("parallel", 1, "Trials run at once (on GPUs: one GPU each).")
flags.DEFINE_bool("dry_run", False, "Print one command per job and run nothing.")
flags.DEFINE_bool("population", False, "Train trials that differ only in seed and "
                  "continuous hyperparameters as one vmapped program.")
flags.mark_flags_as_required(["config", "sweep", "workdir"])

SUMMARY_METRICS = ("d_loss", "g_loss")


def load_trials(sweep_file: str) -> list[dict[str, Any]]:
  """The overrides of each trial, in the order `sweep(add)` adds them."""
  path = Path(sweep_file)
  if not path.is_file():
    raise config_base.ConfigError(f"--sweep={sweep_file}: no such file")
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not callable(getattr(module, "sweep", None)):
    raise config_base.ConfigError(f"{sweep_file} must define sweep(add)")
  trials = []
  module.sweep(lambda **overrides: trials.append(overrides))
  if not trials:
    raise config_base.ConfigError(f"{sweep_file}: sweep(add) added no trials")
  return trials


def trial_name(index: int, overrides: dict[str, Any]) -> str:
  described = ",".join(f"{k}={v}" for k, v in overrides.items())
  return f"{index:03d}_" + re.sub(r"[^A-Za-z0-9_.,=+-]", "", described)[:120]


def _flag_value(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    return repr(tuple(value))
  return str(value)


def trial_command(config_arg: str, workdir: Path, overrides: dict[str, Any]) -> list[str]:
  return [sys.executable, "-m", "gax.main", f"--config={config_arg}",
          f"--workdir={workdir}",
          *(f"--config.{k}={_flag_value(v)}" for k, v in overrides.items())]


def is_finished(workdir: Path, num_train_steps: int) -> bool:
  steps = [int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit()]
  return bool(steps) and max(steps) >= num_train_steps


def summarize(workdir: Path, trials: list[tuple[str, dict[str, Any]]]) -> list[dict]:
  """One row per trial: name, overrides, final losses, latest evaluation scalars."""
  rows = []
  for name, overrides in trials:
    row = {"trial": name, **{k: v for k, v in overrides.items()}}
    metrics_file = workdir / name / "metrics.jsonl"
    records = writers.read_records(metrics_file) if metrics_file.exists() else []
    train_records = [r for r in records if "d_loss" in r]
    if train_records:
      row["step"] = train_records[-1]["step"]
      row.update({k: train_records[-1][k] for k in SUMMARY_METRICS})
    evaluated = [r for r in records if any(k.startswith("eval/") for k in r)]
    if evaluated:
      row.update({k: v for k, v in evaluated[-1].items() if k.startswith("eval/")})
    rows.append(row)
  return rows


def write_summary(workdir: Path, rows: list[dict]) -> None:
  columns = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
  partial = workdir / f"summary.csv.partial{os.getpid()}"
  with partial.open("w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  partial.replace(workdir / "summary.csv")
  cell = lambda v: f"{v:.5g}" if isinstance(v, float) else ("" if v is None else str(v))
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
  files.write_atomically(workdir / "summary.md", "\n".join(lines) + "\n")


def population_jobs(config_arg: str, workdir: Path, trials: list[tuple[str, dict, int]],
                    fields: tuple[str, ...]) -> list[tuple[str, list[str], list[str]]]:
  """Groups the trials that differ only in population `fields` into one population job
  each (one compiled program, see gax/population.py).

  Returns (job name, command, trial names); a trial alone in its group runs by itself.
  """
  groups = {}
  for name, overrides, _ in trials:
    shared = {k: v for k, v in overrides.items() if k not in fields}
    groups.setdefault(repr(sorted(shared.items())), (shared, []))[1].append((name, overrides))
  jobs = []
  for index, (shared, members) in enumerate(groups.values()):
    if len(members) == 1:
      name, overrides = members[0]
      jobs.append((name, trial_command(config_arg, workdir / name, overrides), [name]))
      continue
    job = f"population_{index:03d}"
    members_file = workdir / job / "population.json"
    population.write_population_file(members_file, [
        (Path(name), {k: v for k, v in overrides.items() if k not in shared})
        for name, overrides in members])
    command = trial_command(config_arg, workdir, shared) + [f"--population={members_file}"]
    jobs.append((job, command, [name for name, _ in members]))
  return jobs


def run_sweep(config_arg: str, sweep_file: str, workdir: str, parallel: int = 1,
              dry_run: bool = False, as_populations: bool = False) -> list[dict]:
  """Runs every trial of the sweep file (skipping finished ones) and writes the summary.

  `as_populations`: trials that differ only in seed and continuous hyperparameters
  (population.population_fields) train together as one compiled program.
  """
  if parallel < 1:
    raise config_base.ConfigError(f"--parallel={parallel} must be >= 1 (trials at once)")
  path, _, arg = config_arg.partition(":")
  workdir = Path(workdir)
  trials = []
  for index, overrides in enumerate(load_trials(sweep_file)):
    config = config_base.load_config_file(path, arg or None)
    try:  # every trial is checked, names and values, before any runs
      config_base.apply_overrides(config, overrides)
      variants.validate(config)
    except config_base.ConfigError as e:
      raise config_base.ConfigError(f"trial {index} ({trial_name(index, overrides)}): {e}"
                                    ) from None
    trials.append((trial_name(index, overrides), overrides, config.num_train_steps))
  steps = {name: num_steps for name, _, num_steps in trials}
  if as_populations:
    jobs = population_jobs(config_arg, workdir, trials, population.population_fields(config))
  else:
    jobs = [(name, trial_command(config_arg, workdir / name, overrides), [name])
            for name, overrides, _ in trials]
  if dry_run:
    for _, command, _ in jobs:
      print(shlex.join(command))
    return []
  pending = [(job, command) for job, command, names in jobs
             if not all(is_finished(workdir / n, steps[n]) for n in names)]
  logging.info("Sweep of %d trials in %d jobs: %d finished already, %d to run, %d at a "
               "time", len(trials), len(jobs), len(jobs) - len(pending), len(pending),
               parallel)
  workdir.mkdir(parents=True, exist_ok=True)
  running, failed = {}, []
  with train.StopSignals() as stop:
    while pending or running:
      if stop.received:
        _stop_trials(running, stop.received)
        break
      _start_trials(pending, running, parallel, workdir)
      time.sleep(0.2)
      for process in [p for p in running if p.poll() is not None]:
        _, name, log = running.pop(process)
        log.close()
        if process.returncode != 0:
          failed.append((workdir / name, process.returncode))
  rows = summarize(workdir, [(name, overrides) for name, overrides, _ in trials])
  write_summary(workdir, rows)
  if stop.received:
    logging.warning("Stopped by %s: the running trials checkpointed and stopped; %d not "
                    "started. Run the same command again to continue.", stop.received,
                    len(pending))
  elif failed:
    raise TrialsFailed("jobs failed: " + ", ".join(
        f"{w} (exit {rc}, see its log.txt)" for w, rc in failed))
  return rows


def _start_trials(pending: list, running: dict, parallel: int, workdir: Path) -> None:
  """Starts pending jobs until `parallel` run at once; each gets its own GPU slot."""
  while pending and len(running) < parallel:
    name, command = pending.pop(0)
    slot = next(i for i in range(parallel)
                if i not in {slot for slot, _, _ in running.values()})
    env = dict(os.environ)
    if parallel > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
      env["CUDA_VISIBLE_DEVICES"] = str(slot)  # one GPU per job, where there are GPUs
    (workdir / name).mkdir(parents=True, exist_ok=True)
    log = (workdir / name / "log.txt").open("a")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    running[process] = (slot, name, log)
    logging.info("Started %s", name)


def _stop_trials(running: dict, signal_name: str) -> None:
  """Passes SIGTERM to every running trial and waits: each checkpoints and exits."""
  logging.warning("%s: stopping %d running trial(s) after their current step",
                  signal_name, len(running))
  for process in running:
    process.send_signal(signal.SIGTERM)
  for process, (_, name, log) in list(running.items()):
    process.wait()
    log.close()
    logging.info("%s stopped (exit %d)", name, process.returncode)
  running.clear()


class TrialsFailed(RuntimeError):
  """Some trials exited non-zero; the others' results are in the summary."""


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  try:
    cli.run_command(lambda: run_sweep(FLAGS.config, FLAGS.sweep, FLAGS.workdir,
                                      FLAGS.parallel, FLAGS.dry_run, FLAGS.population))
  except TrialsFailed as e:
    cli.fail(str(e), exit_code=1)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
