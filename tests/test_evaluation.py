"""The digit feature network, evaluation during training, and `python -m gax.evaluate`."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import ROOT, load_config, read_metrics, tiny

from gax import config_base, errors
from gax.data import datasets as data_lib
from gax.evaluation import classifier
from gax.training import train

REQUIRED_KEYS = ("fid", "kid", "precision", "recall", "inception_score", "parzen_ll",
                 "classifier_accuracy", "fid_real_floor")


def _splits(name: str):
  data_config = config_base.base_config().data
  return (data_lib.load_dataset(data_config, name, "train"),
          data_lib.load_dataset(data_config, name, "test"))


def test_digit_classifier_reaches_95_percent_on_held_out_mnist5k():
  train_split, test_split = _splits("mnist5k")
  network = classifier.load_or_train(train_split, test_split)
  assert network.accuracy >= 0.95
  assert np.mean(network.predict(test_split.images) == test_split.labels) == network.accuracy
  features, probs = network(test_split.images[:10])
  assert features.shape == (10, 128) and probs.shape == (10, 10)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_classifier_training_is_deterministic_and_cached(tmp_path):
  train_split, test_split = _splits("digits")
  first = classifier.load_or_train(train_split, test_split, cache_dir=tmp_path / "a")
  second = classifier.load_or_train(train_split, test_split, cache_dir=tmp_path / "b")
  for a, b in zip(jax.tree.leaves(first.params), jax.tree.leaves(second.params)):
    np.testing.assert_array_equal(a, b)
  (cached,) = (tmp_path / "a" / "classifiers").glob("*.msgpack")
  cached.write_bytes(b"\x00" * 10)  # damaged: rebuilt, not trusted
  rebuilt = classifier.load_or_train(train_split, test_split, cache_dir=tmp_path / "a")
  assert cached.stat().st_size > 10
  assert first.accuracy == second.accuracy == rebuilt.accuracy >= 0.9


def _tiny_evaluated(config):
  config = tiny(config, steps=4)
  config.eval_every = 2
  config.eval.num_samples = 300
  config.eval.kid_subsets, config.eval.kid_subset_size = 10, 100
  return config


def _gax_evaluate(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "gax.evaluate", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_evaluation_during_training_and_from_the_command_line(tmp_path):
  config = _tiny_evaluated(load_config("dcgan_mnist"))
  config.ema.decay = 0.5  # evaluations draw from the average of G; gax.evaluate adds G's
  train.train_and_evaluate(config, str(tmp_path))
  evaluated = [r for r in read_metrics(tmp_path) if "eval/fid" in r]
  assert [r["step"] for r in evaluated] == [2, 4]
  # Evaluating during training loads the digit classifier: the grid's classes are logged.
  modes = [r["health/grid_modes"] for r in read_metrics(tmp_path) if "health/grid_modes" in r]
  assert len(modes) == 3 and all(1 <= m <= 10 for m in modes)
  saved = {s: json.loads((tmp_path / "eval" / f"step_{s}.json").read_text()) for s in (2, 4)}
  for result in saved.values():
    assert all(np.isfinite(result[key]) for key in REQUIRED_KEYS)
  best = json.loads((tmp_path / "best.json").read_text())
  assert best["metric"] == "fid" and best["value"] == min(r["fid"] for r in saved.values())
  assert (tmp_path / "best_checkpoint" / str(best["step"])).is_dir()

  result = _gax_evaluate(f"--workdir={tmp_path}", "--step=2")
  assert result.returncode == 0, result.stderr[-3000:]
  printed = json.loads(result.stdout.strip().splitlines()[-1])
  live = printed.pop("without_ema")
  assert printed == saved[2]  # the same checkpoint evaluates to the same numbers
  assert set(REQUIRED_KEYS) <= set(live) and live["fid"] != printed["fid"]
  result = _gax_evaluate(f"--workdir={tmp_path}", "--step=best", "--num_samples=200")
  assert json.loads(result.stdout.strip().splitlines()[-1])["step"] == best["step"]

  result = _gax_evaluate(f"--workdir={tmp_path}", "--step=3")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert "--step=3 is not a checkpoint of this run; choose 'best' or one of 2, 4" in (
      result.stderr)


def pixel_features(eval_config, train_split, held_out):
  """A user-supplied extractor: raw pixels as features, and no class probabilities."""
  return lambda images: (images.reshape(len(images), -1).astype(np.float32) / 255.0, None)


def test_any_feature_function_plugs_in(tmp_path):
  config = _tiny_evaluated(load_config("gan_mnist", "dataset=digits"))
  config.eval.features = "test_evaluation:pixel_features"
  run = train.create_run(config)
  variant = run.variant
  result = variant.create_evaluator(config)(train.initial_state(run))
  assert result["classifier_accuracy"] is None and "inception_score" not in result
  assert result["fid"] > result["fid_real_floor"] > 0
  config.eval.features = "no_such_module:f"
  with pytest.raises(errors.ConfigError, match="cannot be imported"):
    variant.create_evaluator(config)
