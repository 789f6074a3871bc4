"""pix2pix (gax/variants/pix2pix.py) and its U-Net: losses against hand values, the
masked input of digit completion, the U-Net's reach, resume, and the evaluation CLI."""

import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ROOT, load_config, restore_params, straight_and_resumed, tiny

from gax.models.unet import UNetGenerator
from gax.variants import losses, pix2pix


class _Halve(nn.Module):
  @nn.compact
  def __call__(self, x, deterministic: bool = False):
    self.param("unused", nn.initializers.zeros, ())
    return 0.5 * x


class _ChannelMean(nn.Module):
  """One score per pixel: the mean over the pair's channels."""

  @nn.compact
  def __call__(self, x, train: bool = True):
    self.param("unused", nn.initializers.zeros, ())
    return jnp.mean(x, axis=-1)


def _variant(task="a_to_b", shape=(2, 2, 1)):
  return pix2pix.Pix2Pix(_Halve(), _ChannelMean(),
                         losses.get_adversarial_loss("least_squares"), shape, shape, task,
                         l1_weight=100.0)


X = jnp.array([[0.8, -0.4], [0.2, 0.6]])[None, :, :, None]
Y = jnp.array([[-1.0, 0.5], [0.3, -0.1]])[None, :, :, None]


def test_losses_against_hand_computed_values():
  variant = _variant()
  params, stats = variant.init(jax.random.PRNGKey(0))
  batch = {"input": X, "target": Y}
  g_loss, (_, g) = variant.generator_loss(params, stats, batch, jax.random.PRNGKey(1))
  d_loss, _ = variant.discriminator_loss(params, stats, batch, jax.random.PRNGKey(1))
  x, y = np.asarray(X), np.asarray(Y)
  # G(x) = x/2; D scores the channel mean of the pair: (x, x/2) -> 0.75 x, (x, y) -> (x+y)/2.
  l1 = np.mean(np.abs(x / 2 - y))
  adversarial = 0.5 * np.mean((0.75 * x - 1) ** 2)  # least squares, c = 1
  assert float(g["g_l1"]) == pytest.approx(l1)
  assert float(g_loss) == pytest.approx(adversarial + 100 * l1)
  d_expected = 0.5 * (0.5 * np.mean(((x + y) / 2 - 1) ** 2) + 0.5 * np.mean((0.75 * x) ** 2))
  assert float(d_loss) == pytest.approx(d_expected)


def test_completion_hides_the_bottom_half_and_targets_the_whole_image():
  variant = _variant("complete_top_half", (4, 2, 1))
  image = jnp.arange(8.0).reshape(1, 4, 2, 1) / 8
  hidden = np.asarray(variant.inputs({"target": image}))
  np.testing.assert_array_equal(hidden[0, :2], np.asarray(image)[0, :2])
  np.testing.assert_array_equal(hidden[0, 2:], -1.0)
  params, stats = variant.init(jax.random.PRNGKey(0))
  _, (_, g) = variant.generator_loss(params, stats, {"target": image}, jax.random.PRNGKey(1))
  assert float(g["g_l1"]) == pytest.approx(float(jnp.mean(jnp.abs(
      jnp.asarray(hidden) / 2 - image))))


def test_unet_keeps_the_size_reaches_across_the_image_and_drops_out():
  net = UNetGenerator(1, ngf=4, num_downs=5, num_dropout=3)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1), minval=-1)
  params = net.init(jax.random.PRNGKey(1), x, deterministic=True)
  out = net.apply(params, x, deterministic=True)
  assert out.shape == x.shape and float(jnp.max(jnp.abs(out))) <= 1.0
  # The bottom row depends on the top row: the completion sees the given half.
  grad = jax.grad(lambda x: net.apply(params, x, deterministic=True)[0, -1, 14, 0])(x)
  assert float(jnp.abs(grad[0, 0]).sum()) > 0
  noisy = [net.apply(params, x, rngs={"dropout": jax.random.PRNGKey(k)}) for k in (0, 1)]
  assert not np.allclose(noisy[0], noisy[1])
  np.testing.assert_array_equal(net.apply(params, x, rngs={"dropout": jax.random.PRNGKey(0)}),
                                noisy[0])


def test_psnr_of_a_known_error():
  outputs = np.zeros((1, 2, 2, 1), np.float32)
  targets = np.full((1, 2, 2, 1), 0.2, np.float32)  # 0.1 on the [0, 1] scale
  assert pix2pix.psnr(outputs, targets)[0] == pytest.approx(20.0)


def _inpaint(steps):
  config = tiny(load_config("pix2pix_inpaint_digits"), steps)
  config.eval.num_samples = 64
  config.eval_every = 0  # evaluated once, from the command line
  return config


def test_inpainting_resumes_bit_for_bit_and_evaluates_from_the_command_line(tmp_path):
  straight, resumed = straight_and_resumed(_inpaint, tmp_path, 2, 1)
  for a, b in zip(jax.tree.leaves(restore_params(straight, 2)),
                  jax.tree.leaves(restore_params(resumed, 2))):
    np.testing.assert_array_equal(a, b)
  result = subprocess.run([sys.executable, "-m", "gax.evaluate", f"--workdir={straight}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  printed = json.loads(result.stdout.strip().splitlines()[-1])
  for name in ("completion_accuracy", "top_half_accuracy", "l1", "l1_hidden_rows", "psnr",
               "fid", "classifier_accuracy"):
    assert np.isfinite(printed[name]), name
  assert 0 <= printed["completion_accuracy"] <= 1
