"""Preemption, SIGKILL chaos, damaged checkpoints, the NaN guard and the workdir lock."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import ROOT, load_config, read_metrics, restore_params, tiny

from gax.storage import files
from gax.training import train

TINY_FLAGS = ("--config.batch_size=8", "--config.log_every=1", "--config.sample_every=2",
              "--config.checkpoint_every=2", "--config.num_samples=4")


def _command(workdir: Path, steps: int, *extra: str) -> list[str]:
  return [sys.executable, "-m", "gax.main", "--config=configs/dcgan_mnist.py",
          f"--workdir={workdir}", f"--config.num_train_steps={steps}", *TINY_FLAGS, *extra]


def _run(workdir: Path, steps: int, *extra: str) -> subprocess.CompletedProcess:
  return subprocess.run(_command(workdir, steps, *extra), cwd=ROOT, capture_output=True,
                        text=True, timeout=600)


def _logged_steps(workdir: Path) -> int:
  """Training records in metrics.jsonl (health records come with sample grids)."""
  path = workdir / "metrics.jsonl"
  return sum('"d_loss"' in line for line in path.read_text().splitlines()) if path.exists() else 0


def _train_in_process(workdir: Path, steps: int) -> Path:
  """The command line's run, with its health records (D's r_t on real images), in-process."""
  config = tiny(load_config("dcgan_mnist"), steps=steps)
  config.health.real_examples = load_config("dcgan_mnist").health.real_examples
  train.train_and_evaluate(config, str(workdir))
  return workdir


def _assert_same_run(a: Path, b: Path, step: int) -> None:
  assert read_metrics(a) == read_metrics(b)
  for x, y in zip(jax.tree.leaves(restore_params(a, step)),
                  jax.tree.leaves(restore_params(b, step))):
    np.testing.assert_array_equal(x, y)


def test_sigterm_saves_a_checkpoint_and_the_rerun_ends_like_a_straight_run(tmp_path):
  steps, preempted = 30, tmp_path / "preempted"
  process = subprocess.Popen(_command(preempted, steps), cwd=ROOT, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  while _logged_steps(preempted) < 3:
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 0, stderr[-3000:]
  assert "Stopped by SIGTERM after step" in stderr
  stopped_at = int(stderr.split("Stopped by SIGTERM after step ")[1].split(";")[0])
  assert 3 <= stopped_at < steps
  assert stopped_at in [int(p.name) for p in (preempted / "checkpoints").iterdir()]

  result = _run(preempted, steps)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resumed from the checkpoint of step {stopped_at}" in result.stderr
  _assert_same_run(preempted, _train_in_process(tmp_path / "straight", steps), steps)


# gax.main with a metrics writer that writes half of each line, pauses, then the rest:
# kills at random moments then often land in the middle of a line.
SLOW_METRICS_MAIN = """
import runpy, sys, time
from gax.storage import metric_log

class HalfLines:
  def __init__(self, file):
    self.file = file
  def write(self, text):
    self.file.write(text[:len(text) // 2])
    self.file.flush()
    time.sleep(0.2)
    self.file.write(text[len(text) // 2:])
  def flush(self):
    self.file.flush()
  def close(self):
    self.file.close()

opened = metric_log.MetricWriter.__init__
def slow_init(self, *args, **kwargs):
  opened(self, *args, **kwargs)
  if self.enabled:
    self._file = HalfLines(self._file)
metric_log.MetricWriter.__init__ = slow_init
sys.argv = ["gax.main", *sys.argv[1:]]
runpy.run_module("gax.main", run_name="__main__")
"""


def test_sigkill_at_random_moments_loses_nothing(tmp_path):
  """The chaos test: SIGKILLs at random moments (mid-step, mid-checkpoint, mid-sample,
  and, with a slowed metrics writer, mid-line), then the run must equal a straight one."""
  steps, chaotic, rng = 24, tmp_path / "chaotic", random.Random(0)
  kills, torn_lines = 0, 0
  while True:
    process = subprocess.Popen([sys.executable, "-c", SLOW_METRICS_MAIN,
                                *_command(chaotic, steps)[3:]], cwd=ROOT, text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kills < 3 or (not torn_lines and kills < 8):
      before = _logged_steps(chaotic)
      # Once this launch has made progress, kill it at a random moment.
      while _logged_steps(chaotic) <= before + 1 and process.poll() is None:
        time.sleep(0.02)
      time.sleep(rng.uniform(0.0, 0.6))
      if process.poll() is None:
        process.kill()
        process.wait()
        kills += 1
        text = (chaotic / "metrics.jsonl").read_text()
        torn_lines += bool(text) and not text.endswith("\n")
        continue
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    break
  assert kills >= 3 and torn_lines >= 1
  _assert_same_run(chaotic, _train_in_process(tmp_path / "straight", steps), steps)


def test_a_damaged_latest_checkpoint_is_skipped_with_a_warning(tmp_path):
  damaged = tmp_path / "damaged"
  _train_in_process(damaged, 4)
  biggest = max((p for p in (damaged / "checkpoints" / "4").rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size)
  data = bytearray(biggest.read_bytes())
  data[len(data) // 2] ^= 0xFF  # one flipped byte in the largest file
  biggest.write_bytes(bytes(data))

  result = _run(damaged, 6)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Skipped the checkpoint of step 4" in result.stderr
  assert "Resumed from the checkpoint of step 2" in result.stderr
  assert (damaged / "checkpoints_damaged" / "4").is_dir()  # kept for inspection
  _assert_same_run(damaged, _train_in_process(tmp_path / "straight", 6), 6)


def test_nan_stops_the_run_naming_step_network_and_quantity(tmp_path):
  result = _run(tmp_path, 10, "--config.inject_nan_at_step=5")
  assert result.returncode == 3 and "Traceback" not in result.stderr
  assert ("gax: error: non-finite value at step 5: the discriminator's d_loss is nan; "
          "stopped without saving, the last good checkpoint (step 4) is untouched"
          ) in result.stderr
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [2, 4]
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(restore_params(tmp_path, 4)))


def test_nan_policy_skip_leaves_the_state_as_it_was(tmp_path):
  config = tiny(load_config("dcgan_mnist"), steps=4)
  config.nan_policy, config.inject_nan_at_step = "skip", 3
  config.checkpoint_every = 1  # the states before and after the skipped step
  train.train_and_evaluate(config, str(tmp_path / "skip"))
  records = [r for r in read_metrics(tmp_path / "skip") if "d_loss" in r]
  assert np.isnan(records[2]["d_loss"]) and np.isfinite(records[3]["d_loss"])
  before, skipped, after = (restore_params(tmp_path / "skip", step) for step in (2, 3, 4))
  for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(skipped), strict=True):
    np.testing.assert_array_equal(a, b)
  assert not all(np.array_equal(a, b)  # the next step trains again
                 for a, b in zip(jax.tree.leaves(skipped), jax.tree.leaves(after)))


def test_one_run_per_workdir_and_stale_locks_are_taken_over(tmp_path):
  with files.WorkdirLock(tmp_path):
    result = _run(tmp_path, 2)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"workdir {tmp_path} is in use by a live gax run (pid " in result.stderr
  # The lock file of a dead run stays behind; the next run takes it over.
  (tmp_path / "lock").write_text("pid 999999 on elsewhere since long ago\n")
  assert _run(tmp_path, 2).returncode == 0


@pytest.mark.parametrize("override,message", [
    ("--config.data.image_size=30", "model 'dcgan28' needs height and width divisible by 4"),
    ("--config.nan_policy=retry", "config.nan_policy = 'retry' must be 'stop' or 'skip'"),
    ("--config.optimizer.name=lion", "unknown optimizer 'lion'; choose one of adam, sgd"),
    ("--config.loss.name=softplus", "unknown loss 'softplus'"),
    ("--config.optimizer.learning_rate=0", "config.optimizer.learning_rate = 0.0 must be > 0"),
    ("--config.d_steps=0", "config.d_steps = 0 must be >= 1"),
])
def test_more_bad_input_gets_one_clear_line(override, message, tmp_path):
  result = _run(tmp_path, 2, override)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert message in result.stderr


def test_an_unusable_workdir_is_reported_in_one_line(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("precious\n")
  result = _run(blocker / "run", 2)
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert f"{blocker} is a file, not a directory" in result.stderr
  assert blocker.read_text() == "precious\n"
