"""A variant defined here, outside gax, trains through the factory, the loop, checkpoints
and `gax.evaluate` with no change to any gax module: this file is the whole variant.

It is named by its module path (`config.variant = "test_variant_interface"`), and
follows gax/variants/base.py: `HPARAMS`, `add_defaults`, `validate`, `tiny`, `batch_spec`,
`create`.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from helpers import ROOT, read_metrics, restore_params, straight_and_resumed

from gax import config_base, errors, variants
from gax.data import datasets as data_lib
from gax.variants import base

HPARAMS = {"loss.weight": "weight"}


def add_defaults(config: ml_collections.ConfigDict) -> None:
  config.model = ml_collections.ConfigDict(dict(width=16, noise_dim=4))
  config.loss = ml_collections.ConfigDict(dict(weight=1.0))


def validate(config: ml_collections.ConfigDict) -> None:
  config_base.check_rules(config, [
      ("model.width", config_base.at_least(1), "must be >= 1"),
      ("loss.weight", config_base.at_least(0), "must be >= 0")])


def tiny(config: ml_collections.ConfigDict) -> None:
  config.model.width = 8


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  return {"image": data_lib.Field(data_lib.Source(config.dataset))}


class _Generator(nn.Module):
  shape: tuple
  width: int

  @nn.compact
  def __call__(self, z):
    x = nn.relu(nn.Dense(self.width)(z))
    return jnp.tanh(nn.Dense(int(np.prod(self.shape)))(x)).reshape((-1, *self.shape))


class _Discriminator(nn.Module):
  width: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(nn.relu(nn.Dense(self.width)(x.reshape((x.shape[0], -1)))))[:, 0]


@dataclasses.dataclass(frozen=True)
class ToyGAN:
  """A least-squares GAN of two small MLPs; its evaluation is the mean pixel gap."""

  shape: tuple
  width: int
  noise_dim: int
  weight: float | jax.Array = 1.0

  name = "toy"
  best_metric = base.BestMetric("pixel_gap")
  reuses_fake = False
  sampler = None
  scorer = None

  def with_hparams(self, hparams):
    return dataclasses.replace(self, weight=hparams["weight"])

  def init(self, key):
    g_key, d_key = jax.random.split(key)
    g = _Generator(self.shape, self.width).init(g_key, jnp.zeros((1, self.noise_dim)))
    d = _Discriminator(self.width).init(d_key, jnp.zeros((1, *self.shape)))
    return ({"generator": g["params"], "discriminator": d["params"]},
            {"generator": {}, "discriminator": {}})

  def _fake(self, params, key, count):
    z = jax.random.normal(key, (count, self.noise_dim))
    return _Generator(self.shape, self.width).apply({"params": params["generator"]}, z)

  def _d(self, params, images):
    return _Discriminator(self.width).apply({"params": params["discriminator"]}, images)

  def discriminator_loss(self, params, batch_stats, batch, key, fake=None, iteration=0):
    del iteration  # no penalty taken every N D updates
    fake = jax.lax.stop_gradient(self._fake(params, key, batch["image"].shape[0]))
    loss = self.weight * (jnp.mean((self._d(params, batch["image"]) - 1) ** 2)
                          + jnp.mean(self._d(params, fake) ** 2))
    return loss, ({}, {"d_loss": loss})

  def generator_loss(self, params, batch_stats, batch, key):
    fake = self._fake(params, key, batch["image"].shape[0])
    loss = jnp.mean((self._d(params, fake) - 1) ** 2)
    return loss, ({}, {"g_loss": loss})

  def sample_inputs(self, key, count, examples):
    return jax.random.normal(key, (count, self.noise_dim))

  def sample(self, params, batch_stats, inputs):
    return _Generator(self.shape, self.width).apply({"params": params["generator"]}, inputs)

  def grid_columns(self, count):
    return 4

  def create_evaluator(self, config):
    held_out = data_lib.load_source(config.data, data_lib.Source(config.dataset, "test"))
    real_mean = data_lib.to_model_range(held_out.images).mean()

    def evaluate(state):
      fake = self._fake(state["params"], jax.random.PRNGKey(0), 256)
      return {"pixel_gap": float(jnp.abs(fake.mean() - real_mean))}

    return evaluate


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> ToyGAN:
  return ToyGAN(info.field_shapes["image"], config.model.width, config.model.noise_dim,
                config.loss.weight)


def _config(steps: int):
  config = variants.base_config(__name__)
  config.dataset = "digits"
  config.batch_size, config.num_train_steps = 16, steps
  config.log_every, config.sample_every, config.checkpoint_every = 1, 2, 2
  config.eval_every, config.num_samples = 2, 8
  return config


def test_a_variant_from_outside_gax_trains_resumes_and_evaluates(tmp_path):
  straight, resumed = straight_and_resumed(_config, tmp_path, 4, 2)
  assert [r["step"] for r in read_metrics(straight) if "d_loss" in r] == [1, 2, 3, 4]
  assert read_metrics(resumed) == read_metrics(straight)
  for a, b in zip(jax.tree.leaves(restore_params(straight, 4)),
                  jax.tree.leaves(restore_params(resumed, 4))):
    np.testing.assert_array_equal(a, b)
  best = json.loads((straight / "best.json").read_text())
  assert best["metric"] == "pixel_gap" and best["step"] in (2, 4)
  assert (straight / "samples" / "step_000004.png").exists()
  saved = json.loads((straight / "config.json").read_text())
  assert saved["variant"] == __name__ and saved["data_info"]["field_shapes"] == {
      "image": [8, 8, 1]}

  env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
  result = subprocess.run([sys.executable, "-m", "gax.evaluate", f"--workdir={straight}",
                           "--step=4"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  evaluated = json.loads(result.stdout.strip().splitlines()[-1])
  logged = json.loads((straight / "eval" / "step_4.json").read_text())
  assert evaluated == logged and evaluated["step"] == 4


def test_its_loss_weight_is_a_population_field():
  from gax.training import population
  assert "loss.weight" in population.population_fields(_config(1))


def test_it_validates_its_own_fields():
  config = _config(1)
  config.model.width = 0
  with pytest.raises(errors.ConfigError, match="config.model.width = 0 must be >= 1"):
    variants.validate(config)
