"""Sweeps (trials, summary, rerun skips), 1 versus 8 devices, and two processes."""

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from helpers import ONE_STEP_BOUND, ROOT, read_metrics, restore_params
from image_files import class_folder

from gax import errors
from gax.launch import sweeps

SWEEP = """
def sweep(add):
  for seed in (0, 1):
    add(**{"seed": seed, "optimizer.learning_rate": 1e-4})
"""
TINY = ("batch_size=8", "num_train_steps=2", "log_every=1", "sample_every=2",
        "checkpoint_every=2", "num_samples=4")


def test_a_two_trial_sweep_writes_a_summary_and_a_rerun_redoes_nothing(tmp_path):
  # Tiny sizes for the trials: the sweep file sets them like any other override.
  text = SWEEP.replace('"optimizer.learning_rate": 1e-4',
                       '"optimizer.learning_rate": 1e-4, ' + ", ".join(
                           f'"{k}": {v}' for k, v in (t.split("=") for t in TINY)))
  sweep_file = tmp_path / "two_seeds.py"
  sweep_file.write_text(text)
  command = [sys.executable, "-m", "gax.sweep", "--config=configs/dcgan_mnist.py",
             f"--sweep={sweep_file}", f"--workdir={tmp_path / 'sweep'}", "--parallel=2"]
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with (tmp_path / "sweep" / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert [row["seed"] for row in rows] == ["0", "1"]
  assert all(row["step"] == "2" and float(row["d_loss"]) > 0 for row in rows)
  assert rows[0]["g_loss"] != rows[1]["g_loss"]  # different seeds, different runs
  assert (tmp_path / "sweep" / "summary.md").read_text().count("\n") == 4
  trial = tmp_path / "sweep" / rows[0]["trial"]
  assert json.loads((trial / "config.json").read_text())["seed"] == 0
  before = (trial / "metrics.jsonl").stat().st_mtime_ns

  rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "2 finished already, 0 to run" in rerun.stderr
  assert (trial / "metrics.jsonl").stat().st_mtime_ns == before

  dry = subprocess.run(command + ["--dry_run"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
  lines = dry.stdout.strip().splitlines()
  assert len(lines) == 2 and all("-m gax.main --config=configs/dcgan_mnist.py" in line
                                 for line in lines)


def test_sweep_overrides_are_checked_before_anything_runs(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def sweep(add):\n  add(seed=1)\n  add(**{'optimizer.no_such': 1})\n")
  with pytest.raises(errors.ConfigError, match="optimizer.no_such"):
    sweeps.run_sweep("configs/dcgan_mnist.py", str(bad), str(tmp_path / "w"))
  assert not (tmp_path / "w").exists()


SAME_STEPS = textwrap.dedent("""
    import json, sys, jax
    sys.path.insert(0, "tests")
    from helpers import update_differences
    from helpers import load_config, tiny
    from gax.training import train
    assert jax.device_count() == 8

    def run_on(devices):
      config = tiny(load_config("dcgan_mnist"), steps=3)
      config.num_devices = devices
      # SGD: Adam divides by sqrt(v), which turns float-rounding differences in
      # near-zero gradients into full-size steps; SGD keeps them as small as they are.
      config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.01
      return train.create_run(config)

    one, eight = run_on(1), run_on(8)
    assert eight.mesh.devices.size == 8
    state, worst = train.initial_state(one), {}
    for step in range(3):  # each step from the same state, the 1-device run's
      after, _ = train.step_fn(one, 1)(state, train.step_data(one, step, 1))
      other, _ = train.step_fn(eight, 1)(jax.device_put(state, eight.layout.replicated),
                                         train.step_data(eight, step, 1))
      for group, value in update_differences(state, after, other).items():
        worst[group] = max(worst.get(group, 0.0), value)
      state = after
    print("worst relative difference", max(worst.values()), json.dumps(worst))
    config = tiny(load_config("dcgan_mnist"), steps=1)
    train.train_and_evaluate(config, sys.argv[1])  # every device: 8
    assert json.load(open(f"{sys.argv[1]}/config.json"))["devices_used"] == 8
""")


def test_one_and_eight_devices_compute_the_same_step(tmp_path):
  """Each step on 8 devices (the batch split over them) moves the state as the step on 1
  device does, to float32 rounding: global batch statistics, the same rows, the same
  keys. Checked by hand to fail: batch norm's statistics taken per device moved G by up
  to 23.7 of its update and D by 0.014 to 0.14; the 8-device run reading the next
  step's rows moved D by 0.29 to 0.36 and G by 0.036 to 0.078."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  result = subprocess.run([sys.executable, "-c", SAME_STEPS, str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  worst = float(result.stdout.split("worst relative difference")[1].split()[0])
  assert worst < ONE_STEP_BOUND, result.stdout


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.parametrize("data", ["on_device", "on_host", "streamed"])
def test_two_processes_train_what_one_process_with_two_devices_trains(tmp_path, data):
  # Goodfellow et al.'s MLPs, small: what crosses processes is the batch and the
  # gradients' sum (batch norm over devices: test_one_and_eight_devices_compute_the_same_step).
  flags = ["-m", "gax.main", "--config=configs/gan_mnist.py", "--config.model.g_hidden=(32,)",
           "--config.model.d_hidden=(16,)",
           *(f"--config.{t}" for t in TINY), "--config.optimizer.name=sgd",
           "--config.optimizer.learning_rate=0.05",
           f"--config.data.on_device={'yes' if data == 'on_device' else 'no'}"]
  if data == "streamed":  # each process decodes only its own rows of every batch
    folder = class_folder(tmp_path / "digits", 200)
    flags += [f"--config.dataset=folder:{folder}", "--config.data.pipeline=stream",
              "--config.data.workers=1"]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one CPU device each
  port = _free_port()
  processes = [subprocess.Popen(
      [sys.executable, *flags, f"--workdir={tmp_path / 'two'}", "--jax_distributed",
       f"--coordinator_address=localhost:{port}", "--num_processes=2",
       f"--process_id={index}"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True) for index in (1, 0)]
  logs = [p.communicate(timeout=300)[0] for p in processes]
  assert all(p.returncode == 0 for p in processes), logs[1][-3000:] + logs[0][-3000:]
  assert "Training on 2 cpu device(s)" in logs[1]
  if data == "streamed":
    assert "rows 4 to 7 of each batch of 8 in this process" in logs[0]  # process 1
  single = subprocess.run(
      [sys.executable, *flags, f"--workdir={tmp_path / 'one'}"], cwd=ROOT, timeout=300,
      env={**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
      capture_output=True, text=True)
  assert single.returncode == 0, single.stderr[-3000:]
  two, one = tmp_path / "two", tmp_path / "one"
  assert read_metrics(two) == read_metrics(one)  # written by process 0 only, once
  for a, b in zip(jax.tree.leaves(restore_params(two, 2)),
                  jax.tree.leaves(restore_params(one, 2))):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert json.loads((two / "config.json").read_text())["devices_used"] == 2
