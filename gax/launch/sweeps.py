"""Sweeps: a sweep file's trials, each run as its own `gax.main` process (or as one
population program per group of trials), here or on SLURM, and one summary of them.

A sweep file defines `sweep(add)` and calls `add(**overrides)` once per trial, with
dotted config paths as keys: `add(**{"optimizer.learning_rate": 1e-4, "seed": 2})`.
Each trial runs in `DIR/<trial>/`, so a rerun skips finished trials and resumes
unfinished ones. With populations, trials that differ only in seed and continuous
hyperparameters run as one `gax.main --population` process each
(`DIR/population_NNN/` holds its member list and log), still writing one workdir per
trial. DIR/summary.csv and DIR/summary.md hold one row per trial: its overrides, final
losses and the latest evaluation when there is one.
"""

import csv
import itertools
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from absl import logging

from gax import config_base, errors, variants
from gax.launch import slurm
from gax.storage import files, metric_log
from gax.training import population, signals

SUMMARY_METRICS = ("d_loss", "g_loss")


def load_trials(sweep_file: str) -> list[dict[str, Any]]:
  """The overrides of each trial, in the order `sweep(add)` adds them; a file that cannot
  give them is a ConfigError naming it (and the line, where one is at fault)."""
  where = f"--sweep={sweep_file}"
  sweep = vars(config_base.load_module(sweep_file, where)).get("sweep")
  if not callable(sweep):
    raise errors.ConfigError(f"{where}: the file defines no sweep(add) function")
  trials = []

  def add(*positional, **overrides):
    if positional:
      raise errors.ConfigError(
          f"{where}: add() takes dotted config paths as keywords, e.g. "
          'add(**{"optimizer.learning_rate": 1e-4}); it was given '
          f"{len(positional)} positional argument(s)")
    trials.append(overrides)

  try:
    sweep(add)
  except errors.ConfigError:
    raise
  except Exception as e:  # whatever the file's own code raises, or sweep() without add
    raise errors.ConfigError(f"{where}: sweep(add) raised {type(e).__name__}: {e}"
                             f"{config_base.line_in(Path(sweep_file), e)}") from None
  if not trials:
    raise errors.ConfigError(f"{where}: sweep(add) added no trials")
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


def summarize(workdir: Path, trials: list[tuple[str, dict[str, Any]]]) -> list[dict]:
  """One row per trial: name, overrides, final losses, latest evaluation scalars."""
  rows = []
  for name, overrides in trials:
    row = {"trial": name, **{k: v for k, v in overrides.items()}}
    metrics_file = workdir / name / "metrics.jsonl"
    records = metric_log.read_records(metrics_file) if metrics_file.exists() else []
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
  with files.partial_file(workdir / "summary.csv") as partial, partial.open(
      "w", newline="") as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows(rows)
  cell = lambda v: f"{v:.5g}" if isinstance(v, float) else ("" if v is None else str(v))
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
  files.write_atomically(workdir / "summary.md", "\n".join(lines) + "\n")


def population_jobs(config_arg: str, workdir: Path, trials: list[tuple[str, dict, int]],
                    fields: tuple[str, ...]) -> list[tuple[str, list[str], list[str]]]:
  """Groups the trials that differ only in population `fields` into one population job
  each (one compiled program, see gax/training/population.py).

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
              dry_run: bool = False, as_populations: bool = False, launcher: str = "local",
              slurm_options: dict[str, Any] | None = None) -> list[dict]:
  """Runs every trial of the sweep file (skipping finished ones) and writes the summary.

  `as_populations`: trials that differ only in seed and continuous hyperparameters
  (population.population_fields) train together as one compiled program. `launcher`:
  "local" runs `parallel` jobs at a time as processes here; "slurm" submits them all
  through submitit with `slurm_options` and waits for them.
  """
  if parallel < 1:
    raise errors.ConfigError(f"--parallel={parallel} must be >= 1 (trials at once)")
  slurm_options = slurm_options or {}
  if launcher == "slurm":  # a bad option, or no SLURM here, is refused before any job
    with tempfile.TemporaryDirectory() as scratch:
      slurm.create_executor(Path(scratch), slurm_options)
  elif slurm_options:
    raise errors.ConfigError(
        f"{slurm.PREFIX}{next(iter(slurm_options))}: SLURM options need --launcher=slurm")
  path, _, arg = config_arg.partition(":")
  workdir = Path(workdir)
  files.check_directory(workdir, "--workdir")
  trials = []
  for index, overrides in enumerate(load_trials(sweep_file)):
    config = config_base.load_config_file(path, arg or None)
    try:  # every trial is checked, names and values, before any runs
      config_base.apply_overrides(config, overrides)
      variants.validate(config)
    except errors.ConfigError as e:
      raise errors.ConfigError(f"trial {index} ({trial_name(index, overrides)}): {e}"
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
  pending = [(job, command, names) for job, command, names in jobs
             if not all(slurm.is_finished(workdir / n, steps[n]) for n in names)]
  logging.info("Sweep of %d trials in %d jobs: %d finished already, %d to run, %s",
               len(trials), len(jobs), len(jobs) - len(pending), len(pending),
               "on SLURM" if launcher == "slurm" else f"{parallel} at a time")
  workdir.mkdir(parents=True, exist_ok=True)
  with signals.StopSignals() as stop:
    if launcher == "slurm":
      failed = _run_on_slurm(pending, workdir, slurm_options, steps, stop)
    else:
      failed = _run_here(pending, workdir, parallel, stop)
  rows = summarize(workdir, [(name, overrides) for name, overrides, _ in trials])
  write_summary(workdir, rows)
  if stop.received:
    left = [name for name in steps if not slurm.is_finished(workdir / name, steps[name])]
    raise errors.Stopped(stop.received, f"stopped by {stop.received}: {len(left)} of "
                         f"{len(trials)} trials unfinished; run the same command again to "
                         "continue (finished trials are skipped)")
  if failed:
    raise errors.TrialsFailed(
        f"{len(failed)} of {len(jobs)} jobs failed, the others finished (summary.csv): "
        + "; ".join(f"{w.name}: {why}" for w, why in failed))
  return rows


def _run_here(pending: list, workdir: Path, parallel: int, stop: signals.StopSignals
              ) -> list[tuple[Path, str]]:
  """Runs the pending jobs as processes, `parallel` at a time; returns the failed ones.
  A stop signal passes on to the running ones, which checkpoint and exit."""
  pending = [(job, command) for job, command, _ in pending]
  running, failed = {}, []
  while pending or running:
    if stop.received:
      _stop_trials(running, stop.received)
      logging.warning("Stopped by %s: the running trials checkpointed and stopped; %d not "
                      "started. Run the same command again to continue.", stop.received,
                      len(pending))
      break
    _start_trials(pending, running, parallel, workdir)
    time.sleep(0.2)
    for process in [p for p in running if p.poll() is not None]:
      _, name, log = running.pop(process)
      log.close()
      if process.returncode != 0:
        failed.append((workdir / name, f"exit {process.returncode}, log "
                                       f"{workdir / name / 'log.txt'}"))
  return failed


def _run_on_slurm(pending: list, workdir: Path, options: dict[str, Any],
                  steps: dict[str, int], stop: signals.StopSignals) -> list[tuple[Path, str]]:
  """Submits the pending jobs as one array job and waits for them; returns the failed
  ones. A stop signal ends the wait only: the jobs go on on the cluster."""
  if not pending:
    return []
  executor = slurm.create_executor(workdir / "slurm", options)
  with executor.batch():
    submitted = [(job, executor.submit(slurm.TrialJob(
        command, workdir / job / "log.txt", [workdir / n for n in names],
        {n: steps[n] for n in names}))) for job, command, names in pending]
  logging.info("Submitted %d jobs through submitit: %s", len(submitted),
               ", ".join(f"{job} as {handle.job_id}" for job, handle in submitted))
  while not all(handle.done() for _, handle in submitted):
    if stop.received:
      logging.warning("Stopped by %s: the jobs go on (%s); cancel them with scancel, or "
                      "run the same command again when they end for the summary.",
                      stop.received, " ".join(handle.job_id for _, handle in submitted))
      return []
    time.sleep(1.0)
  failed = []
  for job, handle in submitted:
    try:
      handle.result()
    except Exception as e:  # noqa: BLE001 (submitit re-raises the job's own error)
      failed.append((workdir / job, _reason(e)))
  return failed


def _reason(error: Exception) -> str:
  """The line of a failed job's error that says why: submitit wraps the job's own error
  in its traceback, between rules of dashes."""
  lines = [line.strip() for line in str(error).splitlines()
           if line.strip() and set(line.strip()) - set("-=")]
  said = [line.split(": ", 1)[1] for line in lines if "Error: " in line]
  return (said or lines or [type(error).__name__])[-1][:300]


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
