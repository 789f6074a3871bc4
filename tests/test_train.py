"""End to end: every config trains a few steps on tiny sizes; resume; the command line."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import ROOT, load_config, read_metrics, restore_params, straight_and_resumed, tiny

from gax.training import train


@pytest.mark.parametrize("name", ["gan_mnist", "dcgan_mnist", "lsgan_mnist", "dcgan64"])
def test_config_trains_and_fills_the_workdir(name, tmp_path):
  config = tiny(load_config(name))
  config.health.real_examples = 16
  final = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(final["d_loss"]) and np.isfinite(final["g_loss"])
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["model"]["name"] == config.model.name and saved["num_train_steps"] == 3
  records = read_metrics(tmp_path)
  trained = [r for r in records if "d_loss" in r]
  assert [r["step"] for r in trained] == [1, 2, 3]
  for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "r_t"):
    assert np.isfinite(trained[-1][key]), key
  # The health signals come with the scheduled sample grids (steps 0 and 2).
  health = [r for r in records if "health/grid_diversity" in r]
  assert [r["step"] for r in health] == [0, 2]
  for key in ("health/r_t_train", "health/r_t_held_out"):
    assert -1 <= health[-1][key] <= 1, key
  assert list(tmp_path.glob("events.out.tfevents.*"))
  pngs = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
  assert pngs == ["step_000000.png", "step_000002.png", "step_000003.png"]
  assert (tmp_path / "samples.gif").stat().st_size > 0
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()) == [2, 3]


def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path):
  straight, resumed = straight_and_resumed(
      lambda steps: tiny(load_config("dcgan_mnist"), steps=steps), tmp_path, 6, 3)
  assert [r["step"] for r in read_metrics(resumed) if "d_loss" in r] == [1, 2, 3, 4, 5, 6]
  assert read_metrics(resumed) == read_metrics(straight)
  for a, b in zip(jax.tree.leaves(restore_params(straight, 6)),
                  jax.tree.leaves(restore_params(resumed, 6))):
    np.testing.assert_array_equal(a, b)


def test_tfds_dataset_under_mock_data(tmp_path):
  config = tiny(load_config("dcgan_mnist", "dataset=mnist"), steps=2)
  assert config.dataset == "mnist"
  with tfds.testing.mock_data(num_examples=16):
    final = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(final["g_loss"])


def test_config_arguments_are_typed_and_checked():
  tutorial = load_config("dcgan_mnist", "recipe=tutorial,dataset=fashion_mnist")
  assert (tutorial.batch_size, tutorial.optimizer.learning_rate) == (256, 1e-4)
  assert tutorial.dataset == "fashion_mnist"
  radford, stabilised = load_config("dcgan_mnist", "recipe=radford"), load_config("dcgan_mnist")
  assert (radford.loss.name, radford.loss.penalty, radford.ema.decay,
          radford.optimizer.learning_rate, radford.model.d_dropout) == (
              "non_saturating", "none", 0.0, 2e-4, 0.3)
  assert (stabilised.loss.name, stabilised.loss.penalty, stabilised.ema.decay,
          stabilised.optimizer.learning_rate, stabilised.model.d_dropout,
          stabilised.g_step_fake, stabilised.batch_size, stabilised.num_train_steps) == (
              "least_squares", "r1", 0.99875, 7e-4, 0.0, "reuse", 16, 6980)
  assert (radford.sample_every, stabilised.sample_every) == (100, 400)
  assert load_config("dcgan64", "channels=3").data.channels == 3
  with pytest.raises(ValueError, match="dataset, recipe"):
    load_config("dcgan_mnist", "learning_rate=3")
  with pytest.raises(ValueError, match="'stabilised', 'radford' or 'tutorial'"):
    load_config("dcgan_mnist", "recipe=fast")


def _gax_main(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "gax.main", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_command_line_overrides_and_config_argument(tmp_path):
  result = _gax_main("--config=configs/gan_mnist.py:dataset=digits,optimizer=adam",
                     f"--workdir={tmp_path}", "--config.num_train_steps=2",
                     "--config.batch_size=16", "--config.model.g_hidden=(16,)",
                     "--config.model.d_hidden=(8,)", "--config.optimizer.b1=0.6",
                     "--config.log_every=1")
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["dataset"] == "digits" and saved["optimizer"]["name"] == "adam"
  assert saved["optimizer"]["b1"] == 0.6 and saved["model"]["g_hidden"] == [16]
  assert [r["step"] for r in read_metrics(tmp_path) if "d_loss" in r] == [1, 2]
  assert "step 2/2" in result.stderr and "steps/s" in result.stderr


@pytest.mark.parametrize("override,message", [
    ("--config.num_train_steps=-3", "config.num_train_steps = -3 must be > 0"),
    ("--config.batch_size=0", "config.batch_size = 0 must be > 0"),
    ("--config.dataset=no_such_dataset", "unknown dataset 'no_such_dataset'"),
    ("--config.model.name=resnet9000", "unknown model 'resnet9000'"),
    ("--config=configs/dcgan_mnist.py:recipe=fast",
     "recipe must be 'stabilised', 'radford' or 'tutorial'"),
    ("--config.no_such_field=1", "no_such_field"),
    ("--config.g_step_fake=later", "config.g_step_fake = 'later' must be 'fresh' or 'reuse'"),
])
def test_bad_input_gets_one_clear_line(override, message, tmp_path):
  result = _gax_main("--config=configs/dcgan_mnist.py", f"--workdir={tmp_path}",
                     override)
  assert result.returncode == 2
  assert message in result.stderr and "Traceback" not in result.stderr
