"""gax.sweep --launcher=slurm, run through submitit's LocalExecutor: real submitit, local
processes. A job preempted mid-run is requeued and resumes, and the summary is the one a
local sweep writes."""

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bad_input_cases
import pytest
from helpers import ROOT

SWEEP = """
TINY = {"batch_size": 8, "num_train_steps": 600, "log_every": 100, "sample_every": 600,
        "checkpoint_every": 50, "num_samples": 4, "optimizer.name": "sgd",
        "model.g_hidden": (32,), "model.d_hidden": (16,)}

def sweep(add):
  for seed in (0, 1):
    add(**TINY, **{"seed": seed, "optimizer.learning_rate": 0.01})
"""


def _processes_of(workdir: Path) -> list[tuple[int, int]]:
  """(pid, parent pid) of each gax.main process training in `workdir`."""
  found = []
  for entry in Path("/proc").iterdir():
    try:
      argv = (entry / "cmdline").read_bytes().split(b"\0")
      parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
      continue
    if b"gax.main" in argv and f"--workdir={workdir}".encode() in argv:
      found.append((int(entry.name), parent))
  return found


def _saved_steps(workdir: Path) -> list[int]:
  return sorted(int(p.name) for p in (workdir / "checkpoints").glob("*") if p.name.isdigit())


def _summary(workdir: Path) -> list[dict]:
  with (workdir / "summary.csv").open() as f:
    return list(csv.DictReader(f))


def _preempt_when_it_has_a_checkpoint(workdir: Path, sweep: subprocess.Popen) -> int:
  """Sends submitit's preemption signal (USR2) to the job running `workdir` once that
  run has saved a checkpoint; returns the newest saved step then."""
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline and sweep.poll() is None:
    steps = _saved_steps(workdir)
    running = _processes_of(workdir)
    if steps and running:
      assert steps[-1] < 600, "the trial ended before it could be preempted"
      os.kill(running[0][1], signal.SIGUSR2)  # the submitit task, gax.main's parent
      return steps[-1]
    time.sleep(0.05)
  raise AssertionError("the trial never saved a checkpoint while running")


def test_a_slurm_sweep_requeues_a_preempted_trial_and_summarizes_as_a_local_one(tmp_path):
  sweep_file = tmp_path / "sweep.py"
  sweep_file.write_text(SWEEP)
  command = [sys.executable, "-m", "gax.sweep", "--config=configs/gan_mnist.py",
             f"--sweep={sweep_file}"]
  on_slurm = tmp_path / "slurm"
  sweep = subprocess.Popen(
      [*command, f"--workdir={on_slurm}", "--launcher=slurm", "--slurm.cluster=local",
       "--slurm.timeout_min=20"], cwd=ROOT, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True)
  preempted = sorted(_wait_for_trials(on_slurm, sweep))[1]
  step = _preempt_when_it_has_a_checkpoint(preempted, sweep)
  output = sweep.communicate(timeout=600)[0]
  assert sweep.returncode == 0, output[-3000:]
  assert "Submitted 2 jobs through submitit" in output
  log = (preempted / "log.txt").read_text()
  resumed = int(log.split("Resumed from the checkpoint of step ")[1].split()[0])
  assert resumed >= step
  here = subprocess.run([*command, f"--workdir={tmp_path / 'here'}", "--parallel=2"],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert here.returncode == 0, here.stderr[-3000:]
  assert _summary(on_slurm) == _summary(tmp_path / "here")
  assert all(row["step"] == "600" for row in _summary(on_slurm))


def _wait_for_trials(workdir: Path, sweep: subprocess.Popen) -> list[Path]:
  """The sweep's trial workdirs, once both exist."""
  deadline = time.monotonic() + 120
  while time.monotonic() < deadline and sweep.poll() is None:
    trials = [p for p in workdir.glob("00*") if p.is_dir()]
    if len(trials) == 2:
      return trials
    time.sleep(0.05)
  raise AssertionError("the sweep did not start its two trials")


@pytest.mark.parametrize("what, argv, message",
                         bad_input_cases.sweep_cases(Path(tempfile.gettempdir())),
                         ids=[what for what, _, _ in bad_input_cases.sweep_cases(Path())])
def test_bad_launcher_options_are_one_line_and_exit_2(what, argv, message):
  result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
  errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
  assert result.returncode == 2, (what, result.stderr[-2000:])
  assert len(errors) == 1 and message in errors[0], (what, errors)
  assert "Traceback" not in result.stderr
