"""Sweep jobs submitted to SLURM through submitit, as one array job.

`gax.sweep --launcher=slurm --slurm.partition=gpu --slurm.gpus_per_job=1` hands each job
of the sweep (a trial, or a population of trials) to submitit. Every `--slurm.KEY=VALUE`
is a submitit option: one of AutoExecutor's shared ones (timeout_min, mem_gb,
cpus_per_task, ...) or a SlurmExecutor one (partition, qos, constraint, account, ...);
`gpus_per_job` is gpus_per_node for these one-node jobs, and `cluster=local` runs the
same array through submitit's LocalExecutor on this machine.

A job runs its `python -m gax.main` command in a child process. When SLURM preempts it or
its time runs out, submitit's signal reaches `TrialJob.checkpoint`, which stops the child
with SIGTERM (gax.main saves a checkpoint after its current step) and asks for the job to
be requeued; the requeued job runs the same command, which resumes from that checkpoint.
"""

import ast
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from gax import errors
from gax.training import checkpoint

PREFIX = "--slurm."
# Without a time limit submitit asks SLURM for 5 minutes; GAN runs take hours.
DEFAULT_OPTIONS = {"timeout_min": 24 * 60}
INSTALL_HINT = "pip install 'gax[slurm]' (or pip install submitit)"


def split_options(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
  """(argv without the `--slurm.KEY=VALUE` flags, {KEY: VALUE}); values are Python
  literals where they parse as one (`--slurm.gpus_per_job=2` is the int 2)."""
  rest, options = [], {}
  for item in argv:
    if not item.startswith(PREFIX):
      rest.append(item)
      continue
    key, equals, value = item[len(PREFIX):].partition("=")
    if not key or not equals:
      raise errors.ConfigError(f"{item}: write SLURM options as {PREFIX}KEY=VALUE")
    try:
      options[key] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      options[key] = value
  return rest, options


def _submitit():
  try:
    import submitit  # noqa: PLC0415 (an optional dependency: only this launcher needs it)
  except ImportError:
    raise errors.ConfigError(
        f"--launcher=slurm needs submitit, which is not installed: {INSTALL_HINT}"
    ) from None
  return submitit


def executor_parameters(options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
  """(cluster, AutoExecutor parameters) of the `--slurm.*` options; an option submitit
  does not know raises ConfigError listing those it knows."""
  submitit = _submitit()
  shared = submitit.AutoExecutor._valid_parameters()
  specific = submitit.SlurmExecutor._valid_parameters()
  options = {**DEFAULT_OPTIONS, **options}
  cluster = options.pop("cluster", "slurm")
  if cluster not in ("slurm", "local"):
    raise errors.ConfigError(
        f"{PREFIX}cluster={cluster}: must be 'slurm' or 'local' (submitit's LocalExecutor)")
  parameters = {}
  for key, value in options.items():
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
      raise errors.ConfigError(f"{PREFIX}{key}={value}: must be >= 0")
    if key == "gpus_per_job":
      parameters["gpus_per_node"] = value
    elif key in shared:
      parameters[key] = value
    elif key in specific:
      parameters[f"slurm_{key}"] = value
    else:
      known = sorted({*shared, *specific, "gpus_per_job", "cluster"})
      raise errors.ConfigError(
          f"{PREFIX}{key}: submitit has no SLURM option {key!r}; it knows "
          f"{', '.join(known)}")
  return cluster, parameters


def create_executor(folder: Path, options: dict[str, Any]):
  """A submitit AutoExecutor writing its job files under `folder`."""
  submitit = _submitit()
  cluster, parameters = executor_parameters(options)
  try:
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
  except RuntimeError as e:  # submitit's "Could not detect srun"
    raise errors.ConfigError(
        f"--launcher=slurm: {e} (--slurm.cluster=local runs the same array of jobs on "
        "this machine)") from None
  try:
    executor.update_parameters(name="gax-sweep", **parameters)
  except (AssertionError, NameError, TypeError, ValueError) as e:  # submitit's own checks
    raise errors.ConfigError(
        f"{PREFIX}* options refused by submitit: {str(e).strip().splitlines()[0]}") from None
  return executor


def is_finished(workdir: Path, num_train_steps: int) -> bool:
  """Whether a trial's workdir holds a checkpoint of its last step."""
  steps = checkpoint.saved_steps(workdir / "checkpoints")
  return bool(steps) and steps[-1] >= num_train_steps


def _reaped(pid: int) -> bool:
  try:
    return os.waitpid(pid, os.WNOHANG)[0] != 0
  except ChildProcessError:  # reaped already
    return True


class TrialJob:
  """One sweep job as submitit runs it: its gax.main command in a child process, whose
  output goes to the job's log.txt. Finished means every trial of the job reached its
  last step; anything else raises, and the sweep reports that job as failed."""

  def __init__(self, command: list[str], log: Path, workdirs: list[Path],
               num_train_steps: dict[str, int]):
    self.command, self.log, self.workdirs = command, log, workdirs
    self.num_train_steps = num_train_steps
    self._process = None

  def __call__(self) -> str:
    self.log.parent.mkdir(parents=True, exist_ok=True)
    with self.log.open("a") as log:
      self._process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT,
                                       env=dict(os.environ))
      code = self._process.wait()
    if code != 0:
      raise RuntimeError(f"exit {code}, see {self.log}")
    unfinished = [str(w) for w in self.workdirs
                  if not is_finished(w, self.num_train_steps[w.name])]
    if unfinished:
      raise RuntimeError(f"stopped before num_train_steps in {', '.join(unfinished)} "
                         "(signalled from outside?); rerun the sweep to go on")
    return "finished"

  def checkpoint(self):
    """submitit calls this on preemption or timeout: the child checkpoints and stops,
    and the same job is requeued (it resumes from that checkpoint)."""
    if self._process is not None and self._process.poll() is None:
      self._process.send_signal(signal.SIGTERM)
      # Not Popen.wait: this runs in a signal handler that interrupted __call__'s
      # Popen.wait, which holds the lock that a second wait would block on.
      while not _reaped(self._process.pid):
        time.sleep(0.1)
    return _submitit().helpers.DelayedSubmission(
        TrialJob(self.command, self.log, self.workdirs, self.num_train_steps))

  def __getstate__(self):  # submitit pickles the job; the child process stays behind
    return {**self.__dict__, "_process": None}
