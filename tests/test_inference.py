"""The inference network E: x -> z, trained after G: its loss, its evaluation, its files,
and `gax.sample --reconstruct`."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT, load_config, tiny

from gax.trained import inference
from gax.trained import run as trained_run
from gax.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("run")
  train.train_and_evaluate(tiny(load_config("dcgan_mnist"), steps=2), str(workdir))
  return workdir


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_reconstruct_without_an_inference_network_says_how_to_train_one(trained):
  result = _run("gax.sample", f"--workdir={trained}", "--reconstruct")
  assert result.returncode == 2 and "Traceback" not in result.stderr
  assert (f"{trained} has no inference network; train one first with "
          f"`python -m gax.infer --workdir={trained}`") in result.stderr


def test_the_encoder_loss_is_latent_regression_plus_feature_reconstruction(trained):
  run = trained_run.load(trained)
  model = inference.Inference(run, inference.Encoder(run.variant.sampler.noise_dim))
  params = model.encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))["params"]
  real = jax.random.uniform(jax.random.PRNGKey(1), (4, 28, 28, 1), minval=-1, maxval=1)
  key = jax.random.PRNGKey(2)
  features = lambda x: x.reshape(x.shape[0], -1)  # pixels as the feature space
  loss, parts = inference.encoder_loss(model, features, 0.5, params, real, None, key)
  g_params, g_stats = model.generator_state()
  noise = run.variant.sampler.sample_noise(key, 4)
  fake = run.variant.sampler.draw(g_params, g_stats, noise, None)
  latent = np.mean((np.asarray(model.encode(params, fake)) - np.asarray(noise)) ** 2)
  rebuilt = model.reconstruct(params, real, None)
  pixels = np.mean((np.asarray(rebuilt) - np.asarray(real)) ** 2)
  np.testing.assert_allclose(float(parts["latent_loss"]), latent, rtol=1e-5)
  np.testing.assert_allclose(float(parts["feature_loss"]), pixels, rtol=1e-5)
  np.testing.assert_allclose(float(loss), latent + 0.5 * pixels, rtol=1e-5)


def test_train_evaluate_and_reconstruct_through_the_command_line(trained):
  result = _run("gax.infer", f"--workdir={trained}", "--steps=4", "--batch_size=8")
  assert result.returncode == 0, result.stderr[-3000:]
  saved = json.loads((trained / "inference" / "result.json").read_text())
  assert saved["run_step"] == 2 and saved["recipe"]["steps"] == 4
  evaluation = saved["evaluation"]
  assert 0.0 <= evaluation["inference_label_agreement"] <= 1.0
  assert 0.0 < evaluation["inference_l1"] < 1.0
  assert evaluation["num_examples"] == 1000

  out = trained / "reconstructed"
  result = _run("gax.sample", f"--workdir={trained}", "--reconstruct", "--num_images=6",
                "--walks=2", "--walk_steps=3", f"--out={out}")
  assert result.returncode == 0, result.stderr[-3000:]
  from PIL import Image
  pairs = np.asarray(Image.open(out / "reconstruction.png"))
  walks = np.asarray(Image.open(out / "reconstruction_walks.png"))
  assert pairs.shape[0] >= 28 and pairs.shape[1] >= 12 * 28  # 6 (x, G(E(x))) pairs
  assert walks.shape[0] >= 2 * 28 and walks.shape[1] >= 5 * 28  # x_a, 3 points, x_b

  # The encoder read back reconstructs as the one that was evaluated.
  run = trained_run.load(trained)
  model, params = inference.load(run)
  first = inference.held_out_examples(run).images[:3]
  assert np.isfinite(np.asarray(model.reconstruct(
      params, jnp.asarray(first, jnp.float32) / 127.5 - 1, None))).all()


def test_bad_recipe_values_are_one_clear_line(trained):
  result = _run("gax.infer", f"--workdir={trained}", "--steps=0")
  assert result.returncode == 2 and "--steps=0 must be >= 1" in result.stderr
  assert "Traceback" not in result.stderr
