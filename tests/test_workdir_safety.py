"""Workdirs that survive their users: a changed config never wipes a run, a failed save
exits, torn files never block a resume, and `gax.evaluate` reads without changing."""

import errno
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, load_config, read_metrics, tiny

from gax import errors
from gax.launch import sweeps
from gax.training import checkpoint, train

TINY = ["--config.batch_size=8", "--config.log_every=1", "--config.sample_every=2",
        "--config.checkpoint_every=2", "--config.num_samples=4"]


def _gax(module: str, *args: str, env=None) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def _snapshot(workdir: Path) -> dict[str, bytes]:
  return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*"))
          if p.is_file() and p.name != "lock"}


def _one_error_line(result: subprocess.CompletedProcess, code: int = 2) -> str:
  assert result.returncode == code, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error:")]
  assert len(errors) == 1, result.stderr[-3000:]
  return errors[0]


def test_another_config_file_on_a_workdir_is_refused_and_changes_nothing(tmp_path):
  trained = _gax("gax.main", "--config=configs/dcgan_mnist.py", f"--workdir={tmp_path}",
                 "--config.num_train_steps=2", *TINY)
  assert trained.returncode == 0, trained.stderr[-3000:]
  before = _snapshot(tmp_path)
  assert {"config.json", "metrics.jsonl", "checkpoints/2/state/manifest.ocdbt"} <= set(before)
  result = _gax("gax.main", "--config=configs/gan_mnist.py", f"--workdir={tmp_path}",
                "--config.num_train_steps=2", *TINY)
  line = _one_error_line(result)
  assert "holds checkpoints of another kind of run (" in line
  assert "model.name: 'dcgan28' -> 'mlp'" in line and "nothing was changed" in line
  assert _snapshot(tmp_path) == before  # byte for byte: nothing moved, rewritten, added
  again = _gax("gax.main", "--config=configs/dcgan_mnist.py", f"--workdir={tmp_path}",
               "--config.num_train_steps=3", *TINY)
  assert again.returncode == 0 and "Resumed from the checkpoint of step 2" in again.stderr


def test_optimisation_changes_need_allow_changes_and_are_recorded(tmp_path):
  train.train_and_evaluate(tiny(load_config("dcgan_mnist"), steps=2), str(tmp_path))
  before = _snapshot(tmp_path)
  changed = tiny(load_config("dcgan_mnist"), steps=4)
  changed.optimizer.learning_rate = 1e-5
  with pytest.raises(errors.ConfigError, match=r"other optimisation settings "
                     r"\(optimizer.learning_rate: 0.0007 -> 1e-05\).*--config.resume="
                     "allow_changes"):
    train.train_and_evaluate(changed, str(tmp_path))
  assert _snapshot(tmp_path) == before
  changed.resume = "allow_changes"
  train.train_and_evaluate(changed, str(tmp_path))
  history = [json.loads(line) for line in
             (tmp_path / "config_history.jsonl").read_text().splitlines()]
  assert [entry["step"] for entry in history] == [2]
  assert set(history[0]["changes"]) == {"optimizer.learning_rate: 0.0007 -> 1e-05",
                                        "num_train_steps: 2 -> 4",
                                        "resume: 'strict' -> 'allow_changes'"}
  assert json.loads((tmp_path / "config.json").read_text())["optimizer"][
      "learning_rate"] == 1e-5


def test_a_longer_run_and_a_new_schedule_are_accepted_and_logged(tmp_path):
  train.train_and_evaluate(tiny(load_config("dcgan_mnist"), steps=2), str(tmp_path))
  longer = tiny(load_config("dcgan_mnist"), steps=3)
  longer.log_every = 3
  train.train_and_evaluate(longer, str(tmp_path))
  history = [json.loads(line) for line in
             (tmp_path / "config_history.jsonl").read_text().splitlines()]
  assert history[0]["step"] == 2
  assert set(history[0]["changes"]) == {"num_train_steps: 2 -> 3", "log_every: 1 -> 3"}


def test_a_failed_save_ends_the_process_within_a_minute(tmp_path):
  process = subprocess.Popen(
      [sys.executable, "-m", "gax.main", "--config=configs/dcgan_mnist.py",
       f"--workdir={tmp_path}", "--config.num_train_steps=500", *TINY],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  while not (tmp_path / "checkpoints" / "2").is_dir():
    assert process.poll() is None
    time.sleep(0.05)
  # A rename, not a deletion: orbax may be writing the next checkpoint right now.
  (tmp_path / "checkpoints").rename(tmp_path / "checkpoints_moved")
  (tmp_path / "checkpoints").write_text("a file where the checkpoints were\n")
  start = time.monotonic()
  _, stderr = process.communicate(timeout=120)
  assert time.monotonic() - start < 60
  assert process.returncode == 2 and "Traceback" not in stderr, stderr[-3000:]
  # "Not a directory" for the next save; "No such file or directory" for one whose
  # temporary directory was moved away while it was being written.
  errors = [line for line in stderr.splitlines() if line.startswith("gax: error:")]
  assert len(errors) == 1 and errors[0].startswith("gax: error: saving a checkpoint failed: ")
  assert errors[0].endswith(f"({tmp_path / 'checkpoints'}); nothing already written was "
                            "changed"), errors[0]


def _write_torn(path: Path, text: str) -> None:
  with path.open("a") as f:
    f.write(text)


def test_torn_metrics_and_a_torn_best_json_never_block_a_resume(tmp_path):
  straight, torn = tmp_path / "straight", tmp_path / "torn"

  def config(steps):
    config = tiny(load_config("dcgan_mnist"), steps=steps)
    config.eval_every, config.eval.num_samples = 2, 64
    config.eval.features = "test_cyclegan:projected_features"
    config.eval.kid_subsets, config.eval.kid_subset_size, config.eval.parzen = 2, 16, False
    return config

  train.train_and_evaluate(config(4), str(straight))
  train.train_and_evaluate(config(2), str(torn))
  _write_torn(torn / "metrics.jsonl", '{"step": 3, "d_lo')  # a kill mid-line
  (torn / "best.json").write_text('{"step": 2, "metr')
  train.train_and_evaluate(config(4), str(torn))
  assert read_metrics(torn) == read_metrics(straight)
  assert (torn / "best.json.unreadable").read_text() == '{"step": 2, "metr'
  assert json.loads((torn / "best.json").read_text())["step"] in (2, 4)

  _write_torn(torn / "metrics.jsonl", "\x00garbage")
  rows = sweeps.summarize(tmp_path, [("torn", {}), ("straight", {}), ("missing", {})])
  assert rows[0]["step"] == rows[1]["step"] == 4 and "step" not in rows[2]


def test_sweep_options_are_checked(tmp_path):
  sweep_file = tmp_path / "s.py"
  sweep_file.write_text("def sweep(add):\n  add(seed=1)\n  add(**{'optimizer.b1': 1.5})\n")
  result = _gax("gax.sweep", "--config=configs/dcgan_mnist.py", f"--sweep={sweep_file}",
                f"--workdir={tmp_path / 'w'}", "--parallel=0")
  assert "--parallel=0 must be >= 1" in _one_error_line(result)
  result = _gax("gax.sweep", "--config=configs/dcgan_mnist.py", f"--sweep={sweep_file}",
                f"--workdir={tmp_path / 'w'}")
  assert "trial 1 (001_optimizer.b1=1.5): config.optimizer.b1 = 1.5 must be in [0, 1)" in (
      _one_error_line(result))
  assert not (tmp_path / "w").exists()


def test_gax_evaluate_falls_back_reports_and_never_changes_the_workdir(tmp_path):
  config = tiny(load_config("dcgan_mnist"), steps=4)
  config.eval.num_samples = 64
  config.eval.features = "test_cyclegan:projected_features"
  config.eval.kid_subsets, config.eval.kid_subset_size, config.eval.parzen = 2, 16, False
  train.train_and_evaluate(config, str(tmp_path))
  env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).parent)}
  biggest = max((p for p in (tmp_path / "checkpoints" / "4").rglob("*") if p.is_file()),
                key=lambda p: p.stat().st_size)
  data = bytearray(biggest.read_bytes())
  data[len(data) // 2] ^= 0xFF
  biggest.write_bytes(bytes(data))
  (tmp_path / "eval").write_text("a file where eval/ would go\n")  # its JSON cannot be saved
  before = _snapshot(tmp_path)
  result = _gax("gax.evaluate", f"--workdir={tmp_path}", env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == 2
  assert "Skipped damaged checkpoints (step 4:" in result.stderr
  assert "Could not save eval/step_2.json" in result.stderr
  assert _snapshot(tmp_path) == before

  line = _one_error_line(_gax("gax.evaluate", f"--workdir={tmp_path}", "--step=best"))
  assert "has no best.json" in line
  (tmp_path / "best.json").write_text(json.dumps({"step": 4, "metric": "fid", "value": 1}))
  line = _one_error_line(_gax("gax.evaluate", f"--workdir={tmp_path}", "--step=best"))
  assert "names step 4, but" in line and "has no such checkpoint" in line
  (tmp_path / "config.json").write_text('{"seed": 0, "varia')
  line = _one_error_line(_gax("gax.evaluate", f"--workdir={tmp_path}"))
  assert "config.json cannot be read as a gax config" in line


def test_an_oversized_request_fails_before_it_allocates(tmp_path):
  config = tiny(load_config("dcgan_mnist"), steps=1)
  config.num_samples = 10 ** 9
  start = time.monotonic()
  with pytest.raises(errors.ConfigError, match="the sample grid of num_samples = "
                     "1000000000 would need .* more than the device's"):
    train.create_run(config)
  assert time.monotonic() - start < 60
  config = tiny(load_config("dcgan_mnist"), steps=1)
  config.data.image_size = 40000
  with pytest.raises(errors.ConfigError, match="resized to data.image_size = 40000 "
                     "would need"):
    train.create_run(config)
  config = tiny(load_config("dcgan_mnist"), steps=1)
  config.model.noise_dim = 10 ** 7
  with pytest.raises(errors.ConfigError, match="the train state, its gradients"):
    train.create_run(config)


def test_sigterm_to_a_sweep_stops_its_trials_and_writes_the_summary(tmp_path):
  sweep_file = tmp_path / "s.py"
  sweep_file.write_text("def sweep(add):\n  add(seed=1)\n  add(seed=2)\n")
  process = subprocess.Popen(  # two trials of 2,000 steps, one at a time
      [sys.executable, "-m", "gax.sweep", "--config=configs/dcgan_mnist.py",
       f"--sweep={sweep_file}", f"--workdir={tmp_path / 'w'}"],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  metrics = tmp_path / "w" / "000_seed=1" / "metrics.jsonl"
  while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.1)
  process.send_signal(signal.SIGTERM)
  _, stderr = process.communicate(timeout=300)
  assert process.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  assert "Stopped by SIGTERM: the running trials checkpointed and stopped; 1 not started" in (
      stderr)
  assert stderr.strip().splitlines()[-1] == (
      "gax: error: stopped by SIGTERM: 2 of 2 trials unfinished; run the same command "
      "again to continue (finished trials are skipped)")
  log = (tmp_path / "w" / "000_seed=1" / "log.txt").read_text()
  assert "Stopped by SIGTERM after step" in log
  assert any(p.name.isdigit() for p in (tmp_path / "w" / "000_seed=1" / "checkpoints").iterdir())
  assert (tmp_path / "w" / "summary.csv").exists()


def test_a_checkpoint_of_another_structure_is_not_damaged_and_stays(tmp_path):
  """Without config.json to compare with, the checkpoint itself tells: it does not fit, so
  the run stops, and nothing is moved to checkpoints_damaged/."""
  train.train_and_evaluate(tiny(load_config("dcgan_mnist"), steps=2), str(tmp_path))
  (tmp_path / "config.json").unlink()
  before = _snapshot(tmp_path)
  other = tiny(load_config("dcgan_mnist"), steps=4)
  other.data.image_size = 32
  with pytest.raises(errors.StateMismatchError, match="the checkpoint of step 2 .* "
                     "holds a train state of another structure .*it is not damaged"):
    train.train_and_evaluate(other, str(tmp_path))
  assert _snapshot(tmp_path) == before and not (tmp_path / "checkpoints_damaged").exists()


def test_storage_failures_inside_orbax_become_one_storage_error(tmp_path):
  """tensorstore reports a full disk as a ValueError naming its status; gax's line must
  say what happened (checked by hand on a 80 MB tmpfs: one line, exit 2)."""
  unfinished = tmp_path / "200.orbax-checkpoint-tmp"
  (unfinished / "state").mkdir(parents=True)
  checkpointer = checkpoint.Checkpointer(tmp_path, None)
  full = checkpointer._save_error(ValueError(
      'RESOURCE_EXHAUSTED: Error writing "params.generator/0": Failed to write 13869056 '
      "bytes to file 9: No space left on device [os_error_code='28']"))
  assert isinstance(full, OSError) and full.errno == errno.ENOSPC
  assert str(full.strerror) == "saving a checkpoint failed: No space left on device"
  assert not unfinished.exists()
  assert checkpointer._save_error(RuntimeError("no status in it")).errno == errno.EIO
  try:
    raise ValueError("outer") from PermissionError(errno.EACCES, "Permission denied")
  except ValueError as e:
    assert checkpointer._save_error(e).errno == errno.EACCES
