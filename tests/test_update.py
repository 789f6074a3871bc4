"""The shared update factory: k D-steps, scan equals single steps, host equals device data,
labels reach the update unchanged."""

import flops
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gax import variants
from gax.data import datasets as data
from gax.data import in_memory
from gax.training import optim, train, update

SHAPE = (8, 8, 1)
SPEC = {"image": data.Field(data.Source("toy"))}


def _config(**overrides):
  config = variants.base_config("gan", model="mlp")
  config.model.update(dict(noise_dim=4, g_hidden=(16,), output_activation="tanh",
                           d_hidden=(8,), d_pieces=2, g_init_range=0.0, d_init_range=0.0))
  config.batch_size = 4
  config.update(overrides)
  return config


def _variant(config):
  return variants.create(config, data.DataInfo({"image": SHAPE}))


def _setup(config, on_device=True):
  images = np.random.default_rng(0).integers(0, 256, (32, *SHAPE), dtype=np.uint8)
  keys = train.stream_keys(config.seed)
  batches = in_memory.TrainBatches(SPEC, {"image": images}, config.batch_size,
                                        config.d_steps, on_device)
  variant = _variant(config)
  state = train.create_train_state(variant, optim.create_optimizers(config), keys,
                                   train.hyperparameters(config))
  update_fn = update.make_update_fn(variant, lambda hparams: optim.create_optimizers(
      config, hparams), config.d_steps, g_step_fake=config.g_step_fake)
  step = train.with_batches(update_fn, batches, lambda x: x)
  return {"image": images}, batches, step, state


def _run(config, num_dispatches, steps_per_dispatch=1, on_device=True):
  arrays, batches, update_fn, state = _setup(config, on_device)
  step_fn = update.make_train_step(update_fn, steps_per_dispatch, on_device)
  history = []
  for i in range(num_dispatches):
    step_data = arrays if on_device else batches.host_batches(
        state["data_key"], i * steps_per_dispatch, steps_per_dispatch)
    state, metrics = step_fn(state, step_data)
    history.append(metrics)
  return state, jax.tree.map(lambda *m: np.concatenate(m), *history)


def _assert_same_params(a, b, **tolerance):
  for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
    np.testing.assert_allclose(x, y, **tolerance)


@pytest.mark.parametrize("d_steps", [1, 3])
def test_k_discriminator_steps_per_generator_step(d_steps):
  state, metrics = _run(_config(d_steps=d_steps), num_dispatches=2)
  assert int(state["step"]) == 2
  assert int(state["opt_state"]["discriminator"][0].count) == 2 * d_steps
  assert int(state["opt_state"]["generator"][0].count) == 2
  expected = {"d_loss", "g_loss", "d_real", "d_fake", "d_fake_for_g", "d_grad_norm",
              "g_grad_norm"}
  assert expected <= set(metrics) and metrics["d_loss"].shape == (2,)


def test_same_seed_same_numbers_other_seed_other_numbers():
  a, metrics_a = _run(_config(), 3)
  b, metrics_b = _run(_config(), 3)
  c, _ = _run(_config(seed=1), 3)
  _assert_same_params(a, b, rtol=0, atol=0)
  np.testing.assert_array_equal(metrics_a["g_loss"], metrics_b["g_loss"])
  assert not np.allclose(jax.tree.leaves(a["params"])[0], jax.tree.leaves(c["params"])[0])


def test_scan_over_steps_equals_one_step_per_dispatch():
  single, metrics_single = _run(_config(d_steps=2), num_dispatches=4)
  scanned, metrics_scanned = _run(_config(d_steps=2), num_dispatches=2,
                                  steps_per_dispatch=2)
  _assert_same_params(single, scanned, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics_single["d_loss"], metrics_scanned["d_loss"],
                             rtol=1e-5)


@pytest.mark.parametrize("steps_per_dispatch", [1, 2])
def test_host_batches_equal_device_batches(steps_per_dispatch):
  on_device, _ = _run(_config(), 2, steps_per_dispatch, on_device=True)
  on_host, _ = _run(_config(), 2, steps_per_dispatch, on_device=False)
  _assert_same_params(on_device, on_host, rtol=1e-6, atol=1e-7)


def test_train_state_is_donated():
  arrays, _, update_fn, state = _setup(_config())
  step_fn = update.make_train_step(update_fn, 1, True)
  leaf = jax.tree.leaves(state["params"])[0]
  step_fn(state, arrays)
  assert leaf.is_deleted()  # the old state's buffers were reused for the new one


@pytest.mark.parametrize("d_steps", [1, 2])
def test_reused_fake_gives_the_g_step_of_a_second_forward_pass(d_steps):
  """"reuse" pulls D's gradient back through the last D step's generator forward pass;
  differentiating a second forward pass on the same noise must give the same G step."""
  config = _config(d_steps=d_steps, g_step_fake="reuse")
  arrays, _, update_fn, state = _setup(config)
  new_state, metrics = jax.jit(update_fn)(state, arrays)
  variant = _variant(config)
  step_key = jax.random.fold_in(state["key"], state["step"])
  params = {**state["params"], "discriminator": new_state["params"]["discriminator"]}
  batch = {"image": jnp.zeros((config.batch_size, *SHAPE))}  # its size is what matters

  def g_loss(g_params):  # the keys are the ones the factory gives "reuse"
    fake, _ = variant.generate({**params, "generator": g_params}, state["batch_stats"],
                               batch, jax.random.fold_in(step_key, d_steps + 1))
    return variant.generator_loss_on_fake(params, new_state["batch_stats"], fake,
                                          jax.random.fold_in(step_key, d_steps))[0]

  grads = jax.grad(g_loss)(state["params"]["generator"])
  np.testing.assert_allclose(optax.global_norm(grads), metrics["g_grad_norm"], rtol=1e-5)
  optimizer = optim.create_optimizers(config)["generator"]
  updates, _ = optimizer.update(grads, state["opt_state"]["generator"],
                                state["params"]["generator"])
  expected = optax.apply_updates(state["params"]["generator"], updates)
  for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(new_state["params"]["generator"])):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7)
  assert int(new_state["opt_state"]["discriminator"][0].count) == d_steps


def test_reused_fake_saves_exactly_one_generator_forward_pass():
  fresh = _setup(_config())
  reuse = _setup(_config(g_step_fake="reuse"))
  variant = _variant(_config())
  state = fresh[3]
  batch = {"image": jnp.zeros((4, *SHAPE))}
  forward = flops.count(lambda p: variant.generate(p, state["batch_stats"], batch,
                                                   state["key"]), state["params"])
  saved = (flops.count(fresh[2], state, fresh[0]) - flops.count(reuse[2], state, reuse[0]))
  assert forward > 0 and saved == forward


@pytest.mark.parametrize("on_device", [True, False])
def test_labels_reach_the_update_as_integers_unchanged(on_device):
  """Each label is its example's index (beyond uint8's range); each image is filled with
  that index mod 256, so the update can check every pair it is handed."""
  count, batch_size, d_steps = 600, 8, 2
  labels = np.arange(count, dtype=np.int32)
  images = np.broadcast_to((labels % 256).astype(np.uint8)[:, None, None, None],
                           (count, *SHAPE)).copy()
  source = data.Source("toy")
  spec = {"image": data.Field(source), "label": data.Field(source, "label")}
  batches = in_memory.TrainBatches(spec, {"image": images, "label": labels},
                                        batch_size, d_steps, on_device)

  def update_fn(state, batch):
    return state, {"label": batch["label"], "label_dtype": jnp.zeros((), batch["label"].dtype),
                   "pixel": batch["image"][..., 0, 0, 0]}

  step = update.make_train_step(train.with_batches(update_fn, batches, lambda x: x), 1,
                                on_device)
  data_key = jax.random.PRNGKey(3)
  step_data = ({"image": images, "label": labels} if on_device
               else batches.host_batches(data_key, 7, 1))
  _, seen = step({"step": jnp.int32(7), "data_key": jnp.copy(data_key)}, step_data)
  assert seen["label_dtype"].dtype == np.int32
  seen_labels = np.asarray(seen["label"][0])
  expected = labels[np.stack([in_memory.batch_indices(
      data_key, 7 * d_steps + i, count, batch_size) for i in range(d_steps)])]
  np.testing.assert_array_equal(seen_labels, expected)  # the seeded order, untouched
  assert seen_labels.max() > 255  # values no uint8 image could carry
  pixel_index = np.round((np.asarray(seen["pixel"][0]) + 1.0) * 127.5).astype(int)
  np.testing.assert_array_equal(pixel_index, seen_labels % 256)  # the right image with it
