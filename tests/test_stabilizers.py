"""The stabilisers against values worked out by hand: hinge and Wasserstein losses, the
gradient penalties, spectral norm against NumPy's SVD, the EMA's closed form, DiffAugment
and ADA; and a run with them all on, stopped and resumed, bit for bit."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from flax import traverse_util
from helpers import load_config, read_metrics, straight_and_resumed, tiny

from gax import config_base, models
from gax.trained import run as trained_run
from gax.training import health, train
from gax.variants import augment, ema, losses, penalties


def test_hinge_at_logits_plus_minus_one_and_zero():
  ones, zeros = jnp.ones(4), jnp.zeros(4)
  # Real at +1 and fake at -1 meet both margins exactly: no loss.
  np.testing.assert_allclose(losses.hinge_discriminator_loss(ones, -ones), 0.0)
  np.testing.assert_allclose(losses.hinge_discriminator_loss(zeros, zeros), 2.0)
  np.testing.assert_allclose(losses.hinge_discriminator_loss(-ones, ones), 4.0)
  # Beyond the margins nothing more is gained.
  np.testing.assert_allclose(losses.hinge_discriminator_loss(3 * ones, -3 * ones), 0.0)
  np.testing.assert_allclose(losses.critic_generator_loss(jnp.array([1.0, -1.0, 0.0, 2.0])),
                             -0.5)
  loss = losses.get_adversarial_loss("hinge")
  assert (loss.threshold, loss.floor) == (0.0, 0.0)


def test_wasserstein_critic_loss():
  real, fake = jnp.array([2.0, 4.0]), jnp.array([-1.0, 0.0])
  np.testing.assert_allclose(losses.wasserstein_discriminator_loss(real, fake), -3.5)
  np.testing.assert_allclose(losses.get_adversarial_loss("wasserstein").generator(fake), 0.5)
  assert losses.get_adversarial_loss("wasserstein").floor is None
  assert losses.get_adversarial_loss("least_squares", a=-1.0, b=1.0).threshold == 0.0


def _linear_critic(w):
  return lambda x: jnp.sum(x.reshape(x.shape[0], -1) * w, axis=-1) + 0.7


def test_wgan_gp_on_a_linear_critic_whose_gradient_norm_is_known():
  # D(x) = <w, x> + b has input gradient w everywhere: ||w|| = 3.
  w = jnp.zeros(12).at[0].set(2.0).at[5].set(-2.0).at[7].set(1.0)
  real = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 2, 3))
  fake = jax.random.normal(jax.random.PRNGKey(1), (5, 2, 2, 3))
  key = jax.random.PRNGKey(2)
  critic = _linear_critic(w)
  np.testing.assert_allclose(penalties.wgan_gp(critic, real, fake, key), (3 - 1) ** 2,
                             rtol=1e-6)
  np.testing.assert_allclose(penalties.zero_gp(critic, real, fake, key), 9.0, rtol=1e-6)
  # The interpolates lie on the segments between real and fake, one eps per example.
  points = penalties.interpolates(real, fake, key)
  eps = (points - fake) / (real - fake)
  np.testing.assert_allclose(eps, jnp.broadcast_to(eps[:, :1, :1, :1], eps.shape),
                             rtol=1e-4)
  assert bool(jnp.all((eps >= 0) & (eps <= 1)))
  # A constant critic has zero input gradient: the penalty is 1 and its gradient finite.
  constant = lambda x, scale: scale * jnp.zeros(x.shape[0])
  grad = jax.grad(lambda s: penalties.wgan_gp(lambda x: constant(x, s), real, fake, key))(
      1.0)
  assert np.isfinite(grad)


def test_r1_on_a_quadratic_critic():
  # D(x) = a/2 ||x||^2 has input gradient a x: R1 = 1/2 E[a^2 ||x||^2].
  a = 1.5
  real = jnp.arange(12.0).reshape(2, 2, 3, 1) / 10
  critic = lambda x: 0.5 * a * jnp.sum(x.reshape(x.shape[0], -1) ** 2, axis=-1)
  squared = np.sum(np.asarray(real).reshape(2, -1) ** 2, axis=-1)
  expected = 0.5 * np.mean(a ** 2 * squared)
  np.testing.assert_allclose(penalties.r1(critic, real, real[::-1], None), expected,
                             rtol=1e-6)


@pytest.mark.parametrize("branches", [True, False])
def test_a_lazy_penalty_counts_n_times_on_every_nth_update(branches, monkeypatch):
  monkeypatch.setattr(penalties, "branches_on_schedule", lambda: branches)
  w = jnp.ones(4) * 2.0  # ||w|| = 4: R1 = 1/2 * 16 = 8
  real = jnp.ones((3, 2, 2, 1))
  penalty = penalties.Penalty("r1", weight=0.5, every=4)
  value_and_grad = jax.jit(jax.value_and_grad(
      lambda w, i: penalty(_linear_critic(w), real, real, None, i)))
  values, grads = zip(*[value_and_grad(w, i) for i in range(6)])
  assert [float(v) for v in values] == [16.0, 0.0, 0.0, 0.0, 16.0, 0.0]  # 4 * 0.5 * 8
  for i, grad in enumerate(grads):  # d/dw of 4 * 0.5 * 1/2 ||w||^2 on the counted updates
    np.testing.assert_array_equal(grad, 4 * 0.5 * w if i % 4 == 0 else jnp.zeros(4))
  assert float(penalties.Penalty("r1", 0.5)(_linear_critic(w), real, real, None, 3)) == 4.0


@pytest.mark.parametrize("forced_branch", [False, True])
def test_a_lazy_penalty_branches_only_off_cpu(forced_branch, monkeypatch):
  # Inside a conditional's branch XLA's CPU backend runs D's kernel gradients off its
  # fast convolution kernels: with the branch, the step was slower than the eager penalty.
  if forced_branch:
    monkeypatch.setattr(penalties, "branches_on_schedule", lambda: True)
  config = tiny(load_config("dcgan_mnist"))
  config.loss.penalty_every = 4
  run = train.create_run(config)
  state = train.initial_state(run)
  hlo = train.step_fn(run, 1).lower(state, train.step_data(run, 0, 1)).compile().as_text()
  assert (" conditional(" in hlo) == forced_branch


def _sigmas(stats) -> dict[tuple, float]:
  """(module path, layer name) -> sigma, from nn.SpectralNorm's batch_stats entries."""
  found = {}
  for path, value in traverse_util.flatten_dict(stats).items():
    if path[-1].endswith("/kernel/sigma"):
      parents = tuple(p for p in path[:-1] if not p.startswith("SpectralNorm_"))
      found[parents + (path[-1].split("/")[0],)] = float(value)
  return found


@pytest.mark.parametrize("name,shape", [("dcgan28", (28, 28, 1)), ("sndcgan", (32, 32, 3)),
                                        ("sngan_resnet", (32, 32, 3))])
def test_spectral_norm_brings_every_kernel_to_unit_norm(name, shape):
  config = models.default_config(name)
  config.d_spectral_norm = True
  _, discriminator = models.create_networks(config, shape)
  images = jax.random.normal(jax.random.PRNGKey(1), (4, *shape))
  variables = discriminator.init(jax.random.PRNGKey(0), images, train=False)
  iterate = jax.jit(lambda stats: discriminator.apply(
      {"params": variables["params"], "batch_stats": stats}, images, train=True,
      mutable=["batch_stats"], rngs={"dropout": jax.random.PRNGKey(2)})[1]["batch_stats"])
  stats = variables["batch_stats"]
  for _ in range(100):  # each training-mode call runs one power iteration
    stats = iterate(stats)
  sigmas = _sigmas(stats)
  kernels = {path[:-1]: np.asarray(w) for path, w in
             traverse_util.flatten_dict(variables["params"]).items() if path[-1] == "kernel"}
  assert set(kernels) == set(sigmas)  # every kernel of D is normalised
  for layer, kernel in kernels.items():
    largest = np.linalg.svd(kernel.reshape(-1, kernel.shape[-1]), compute_uv=False)[0]
    assert abs(largest / sigmas[layer] - 1) < 0.01, layer
  # In inference mode the vectors stay as they are.
  _, unchanged = discriminator.apply({"params": variables["params"], "batch_stats": stats},
                                     images, train=False, mutable=["batch_stats"])
  for a, b in zip(jax.tree.leaves(stats), jax.tree.leaves(unchanged["batch_stats"])):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rampup", [0.0, 0.25])
def test_ema_equals_its_closed_form(rampup):
  decay, start = 0.9, 2
  values = [float(v) for v in np.random.default_rng(0).normal(size=12)]
  tree = lambda v: ({"generator": {"w": jnp.full(3, v)}}, {"generator": {"m": jnp.full(2, -v)}})
  average = ema.initial(*tree(5.0))
  for step, value in enumerate(values):  # G's value after step `step` + 1
    average = ema.update(average, *tree(value), jnp.asarray(step), decay, start, rampup)
  # A copy of G up to step `start`, then averaged over the steps after it, with the
  # weight of the old average 0.5 ** (1 / half-life) and the half-life ln(1/2)/ln(decay)
  # = 6.58 steps capped at rampup times the steps averaged.
  expected = values[start - 1]
  for averaged, value in enumerate(values[start:], 1):
    half_life = np.log(0.5) / np.log(decay)
    weight = 0.5 ** (1 / min(half_life, rampup * averaged)) if rampup else decay
    expected = weight * expected + (1 - weight) * value
  np.testing.assert_allclose(average["params"]["w"], expected, rtol=1e-5)
  np.testing.assert_allclose(average["batch_stats"]["m"], -expected, rtol=1e-5)
  if rampup:  # after 40 averaged steps the cap (10 steps) no longer binds
    np.testing.assert_allclose(ema.beta(jnp.asarray(start + 39), decay, start, rampup),
                               decay, rtol=1e-6)


def test_diffaugment_is_a_function_of_its_key_and_passes_gradients():
  images = jax.random.uniform(jax.random.PRNGKey(0), (6, 16, 16, 3), minval=-1, maxval=1)
  ops = augment.OPS
  key = jax.random.PRNGKey(7)
  first = augment.augment(images, key, ops)
  np.testing.assert_array_equal(first, augment.augment(images, key, ops))
  assert not np.allclose(first, augment.augment(images, jax.random.PRNGKey(8), ops))
  assert not np.allclose(first, images)
  # p = 0 leaves the images as they are.
  np.testing.assert_array_equal(augment.augment(images, key, ops, jnp.float32(0.0)), images)
  # For a fixed key the augmentation is affine in the pixels: central differences
  # along a random direction give the directional derivative of the autodiff gradient.
  weights = jax.random.normal(jax.random.PRNGKey(1), images.shape)
  direction = jax.random.normal(jax.random.PRNGKey(2), images.shape)
  f = lambda x: jnp.sum(augment.augment(x, key, ops, jnp.float32(0.7)) * weights)
  gradient = jax.grad(f)(images)
  assert float(jnp.sum(jnp.abs(gradient))) > 0
  eps = 1e-2
  numeric = (f(images + eps * direction) - f(images - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(jnp.sum(gradient * direction), numeric, rtol=2e-3)


def test_translation_and_cutout_by_hand():
  image = jnp.arange(1.0, 17.0).reshape(1, 4, 4, 1)
  shifted = augment.translation(image, jax.random.PRNGKey(3), ratio=0.25)
  # A shift by at most one pixel along each axis, zeros shifted in.
  rows, columns = [np.nonzero(np.asarray(shifted[0, :, :, 0]) == 6.0)[i][0] for i in (0, 1)]
  dy, dx = int(rows) - 1, int(columns) - 1
  assert abs(dy) <= 1 and abs(dx) <= 1
  np.testing.assert_array_equal(
      shifted[0, :, :, 0], np.pad(np.asarray(image[0, :, :, 0]), 1)[1 - dy:5 - dy, 1 - dx:5 - dx])
  cut = augment.cutout(jnp.ones((50, 8, 8, 1)), jax.random.PRNGKey(4))
  zeros = np.asarray(jnp.sum(cut == 0, axis=(1, 2, 3)))
  assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border


def test_ada_moves_p_towards_the_target():
  ada = augment.Augmentation(augment.OPS, adaptive=True, target=0.6, speed=0.25)
  state = ada.initial_state()
  assert float(state["p"]) == 0.0
  sure = jnp.ones(8)  # r_t = 1 > 0.6: D is overfitting, more augmentation
  unsure = jnp.array([1.0, -1.0] * 4)  # r_t = 0 < 0.6: less
  for expected in (0.25, 0.5, 0.75, 1.0, 1.0):
    state = ada.adapt(state, sure)
    assert float(state["p"]) == expected
  state = ada.adapt(state, unsure)
  assert float(state["p"]) == 0.75


def _stabilised(steps: int):
  config = tiny(load_config("dcgan_mnist"), steps=steps)
  config.loss.name = "hinge"
  config.loss.penalty = "r1"
  config.loss.penalty_weight = 0.1
  config.loss.penalty_every = 2
  config.model.d_spectral_norm = True
  config.ema.decay = 0.9
  config.ema.start_step = 1
  config.augment.name = "ada"
  config.augment.ada_kimg = 1  # p moves 8/1000 per D update
  config.health.real_examples = 16
  return config


def test_a_run_with_every_stabiliser_resumes_bit_for_bit(tmp_path):
  straight, resumed = straight_and_resumed(_stabilised, tmp_path, 4, 2)
  assert read_metrics(resumed) == read_metrics(straight)
  metrics = [r for r in read_metrics(straight) if "d_loss" in r]
  assert [round(m["augment_p"], 6) for m in metrics] == [0.008, 0.016, 0.024, 0.032]
  assert [m["d_penalty"] != 0 for m in metrics] == [True, False, True, False]
  states = [trained_run.load(workdir).state for workdir in (straight, resumed)]
  assert "ema" in states[0] and "u" in str(traverse_util.flatten_dict(
      states[0]["batch_stats"]["discriminator"]))
  for a, b in zip(jax.tree.leaves(states[0]), jax.tree.leaves(states[1])):
    np.testing.assert_array_equal(a, b)
  # The average differs from G once it averages (start_step = 1).
  assert not np.allclose(jax.tree.leaves(states[0]["ema"]["params"])[0],
                         jax.tree.leaves(states[0]["params"]["generator"])[0])


def test_sngan_cifar10_trains_under_mock_data(tmp_path):
  config = load_config("sngan_cifar10")
  assert (config.model.name, config.loss.name, config.model.d_spectral_norm) == (
      "sngan_resnet", "hinge", True)
  assert (config.d_steps, config.optimizer.b1, config.optimizer.b2) == (5, 0.0, 0.9)
  assert load_config("sngan_cifar10", "model=sndcgan").model.name == "sndcgan"
  config = tiny(config, steps=2)
  config.d_steps = 1  # five unrolled critic steps only multiply the compile time here
  with tfds.testing.mock_data(num_examples=16):
    final = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(final["d_loss"]) and np.isfinite(final["g_loss"])


@pytest.mark.parametrize("name", ["sndcgan", "sngan_resnet"])
def test_sngan_networks_shapes(name):
  config = models.default_config(name)
  generator, discriminator = models.create_networks(config, (32, 32, 3))
  noise = jnp.zeros((2, config.noise_dim))
  key = jax.random.PRNGKey(0)
  g_vars = jax.eval_shape(lambda: generator.init(key, noise, train=False))
  images = jax.eval_shape(lambda v: generator.apply(v, noise, train=False), g_vars)
  assert images.shape == (2, 32, 32, 3)
  d_vars = jax.eval_shape(lambda: discriminator.init(key, jnp.zeros(images.shape),
                                                     train=False))
  out = jax.eval_shape(lambda v: discriminator.apply(v, jnp.zeros(images.shape),
                                                     train=False), d_vars)
  assert out["logit"].shape == (2,) and "batch_stats" in d_vars  # D's u vectors
  assert "batch_stats" in g_vars  # G's batch norm


def test_mean_pairwise_distance_by_hand():
  images = np.zeros((3, 2, 2, 1), np.float32)
  images[1] = 1.0  # distance 2 from image 0 (four pixels of 1)
  images[2, 0, 0] = 1.0  # distance 1 from image 0, sqrt(3) from image 1
  np.testing.assert_allclose(health.mean_pairwise_distance(images),
                             (2 + 1 + np.sqrt(3)) / 3, rtol=1e-9)
  np.testing.assert_allclose(health.mean_pairwise_distance((images * 255).astype(np.uint8)),
                             (2 + 1 + np.sqrt(3)) / 3, rtol=1e-9)


def _monitor(**health_fields):
  config = config_base.base_config().health
  config.update(health_fields)
  return health.Monitor(config, floor=0.0, chance=2 * np.log(2), reference_distance=1.0)


def test_a_discriminator_loss_at_its_floor_warns_once_per_episode(caplog):
  monitor = _monitor(patience=3)
  caplog.set_level(logging.WARNING)
  for step, d_loss in enumerate([0.01, 0.01, 0.5, 0.01, 0.01, 0.02, 0.01], 1):
    monitor.after_log(step, d_loss)
  warned = [r.getMessage() for r in caplog.records if "at its floor" in r.getMessage()]
  assert len(warned) == 1 and warned[0].startswith("step 6: D's loss (0.02)")
  for step in (8, 9, 10):  # still at the floor: no second line
    monitor.after_log(step, 0.0)
  monitor.after_log(11, 1.0)  # recovered; three more at the floor warn again
  for step in (12, 13, 14):
    monitor.after_log(step, 0.0)
  assert sum("at its floor" in r.getMessage() for r in caplog.records) == 2
  wasserstein = health.Monitor(_monitor().config)  # no floor: never warns
  for step in range(10):
    wasserstein.after_log(step, -100.0)
  assert health.loss_at_chance(losses.get_adversarial_loss("hinge")) == 2.0
  assert health.loss_at_chance(losses.get_adversarial_loss("least_squares")) == 0.25


def test_a_collapsed_grid_warns_and_a_varied_one_does_not(caplog):
  caplog.set_level(logging.WARNING)
  rng = np.random.default_rng(0)
  varied = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
  reference = rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
  monitor = _monitor()
  monitor.reference_distance = health.mean_pairwise_distance(reference)
  assert abs(monitor.grid_signals(1, varied)["health/grid_diversity"] - 1) < 0.05
  collapsed = np.repeat(varied[:1], 16, axis=0)
  assert monitor.grid_signals(0, collapsed)["health/grid_diversity"] == 0.0
  monitor.grid_signals(2, collapsed)  # step 0 does not count: one collapsed grid so far
  assert not [r for r in caplog.records if "collapsed" in r.getMessage()]
  monitor.grid_signals(3, collapsed)
  assert [r for r in caplog.records if "collapsed" in r.getMessage()]
  # Few classes also read as collapse, where a classifier counts them.
  classes = _monitor()
  classes.classify, classes.num_classes = (lambda images: np.zeros(len(images))), 10
  for step in (1, 2):
    assert classes.grid_signals(step, varied)["health/grid_modes"] == 1.0
  assert sum("1 of 10 classes" in r.getMessage() for r in caplog.records) == 1
