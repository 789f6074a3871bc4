"""The one update-step factory every variant trains through.

A step is k discriminator updates, each on its own real batch, then one generator
update, on a fresh fake batch or on the last D step's (`g_step_fake`). The factory
compiles it once with the train state donated; several steps can run per dispatch under
`lax.scan`. Each step draws its randomness from fold_in(state["key"], state["step"]), so
the same step always sees the same numbers.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gax import data as data_lib

Array = jax.Array
# step, key, data_key, hparams, params, batch_stats, opt_state
TrainState = dict[str, Any]
StepFn = Callable[[TrainState, Array], tuple[TrainState, dict[str, Array]]]
OptimizersFn = Callable[[dict[str, Array]], dict[str, optax.GradientTransformation]]


def _merge(tree: dict, updates: dict) -> dict:
  """Replaces the top-level entries of `tree` that `updates` carries non-empty."""
  return {name: updates.get(name) or value for name, value in tree.items()}


def _apply_gradients(network, grads, optimizer, opt_state, params):
  updates, opt_state = optimizer.update(grads, opt_state, params[network])
  params = {**params, network: optax.apply_updates(params[network], updates)}
  return params, opt_state, {f"{network[0]}_grad_norm": optax.global_norm(grads)}


def _update_network(network, loss_fn, optimizer, opt_state, params, batch_stats, real,
                    key):
  """One optimizer step on one network's params; other networks' params stay fixed."""

  def objective(own_params):
    return loss_fn({**params, network: own_params}, batch_stats, real, key)

  grads, (new_stats, metrics) = jax.grad(objective, has_aux=True)(params[network])
  params, opt_state, norm = _apply_gradients(network, grads, optimizer, opt_state, params)
  return params, _merge(batch_stats, new_stats), opt_state, {**metrics, **norm}


def _generate_with_pullback(model, params, batch_stats, key, count):
  """A training fake batch, the pullback of its forward pass, and G's batch statistics."""

  def generate(g_params):
    return model.generate({**params, "generator": g_params}, batch_stats, key, count)

  return jax.vjp(generate, params["generator"], has_aux=True)


def _update_generator_through(fake_pullback, fake, model, optimizer, opt_state, params,
                              batch_stats, key):
  """The G step on a fake batch already generated: D's gradient at the fake, pulled back
  through the saved generator forward pass (`jax.vjp`) instead of a second one."""

  def loss_at(fake):
    return model.generator_loss_on_fake(params, batch_stats, fake, key)

  dfake, (new_stats, metrics) = jax.grad(loss_at, has_aux=True)(fake)
  grads, = fake_pullback(dfake)
  params, opt_state, norm = _apply_gradients("generator", grads, optimizer, opt_state,
                                             params)
  return params, _merge(batch_stats, new_stats), opt_state, {**metrics, **norm}


# Checked every step, in this order: the first non-finite one is the one reported.
GUARDED_METRICS = ("d_loss", "d_grad_norm", "g_loss", "g_grad_norm")
NAN_POLICIES = ("stop", "skip")


def supports_fake_reuse(variant) -> bool:
  return hasattr(variant, "generate") and hasattr(variant, "generator_loss_on_fake")


def all_finite(metrics: dict[str, Array]) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(metrics[name]))
                            for name in GUARDED_METRICS if name in metrics]))


def make_update_fn(variant, create_optimizers: OptimizersFn,
                   batches: data_lib.TrainBatches,
                   constrain_batch: Callable[[Array], Array] = lambda x: x,
                   nan_policy: str = "stop", inject_nan_at_step: int = 0,
                   g_step_fake: str = "fresh") -> StepFn:
  """Builds the (uncompiled) function that advances the state by one step.

  Everything that may differ between members of a population comes from the state:
  the keys, and the continuous hyperparameters `state["hparams"]` that
  `create_optimizers(hparams)` and `variant.with_hparams(hparams)` read.
  `batches.select(data, step)` gives the step's uint8 real images
  [d_steps, batch, H, W, C]; `constrain_batch` places a batch on the mesh. With
  `nan_policy="skip"` a step whose losses or gradient norms are not finite leaves
  params, batch statistics and optimizer state as they were ("stop" is the caller's
  job: it sees the metrics). `inject_nan_at_step` > 0 poisons that step's real batch,
  to test the guard. `g_step_fake` is "fresh" (the G step generates a fake batch of its
  own, as in Goodfellow et al.'s Algorithm 1) or "reuse" (it trains on the last D step's
  fake batch, through that forward pass; the variant needs `generate` and
  `generator_loss_on_fake`).
  """
  d_steps = batches.batches_per_step
  reuse_fake = g_step_fake == "reuse"

  def update(state: TrainState, data: Array) -> tuple[TrainState, dict[str, Array]]:
    step_key = jax.random.fold_in(state["key"], state["step"])
    optimizers = create_optimizers(state["hparams"])
    model = variant.with_hparams(state["hparams"])
    real = jax.tree.map(lambda x: constrain_batch(data_lib.to_model_range(x)),
                        batches.with_data_key(state["data_key"]).select(data, state["step"]))
    if inject_nan_at_step:
      real = jax.tree.map(
          lambda x: jnp.where(state["step"] + 1 == inject_nan_at_step, jnp.nan, x), real)
    params, batch_stats = state["params"], state["batch_stats"]
    opt_state = dict(state["opt_state"])
    batch = lambda i: jax.tree.map(lambda x: x[i], real)
    d_loss = model.discriminator_loss
    for i in range(d_steps):  # k is small: unrolled beats a loop on every backend
      if reuse_fake and i == d_steps - 1:  # G's forward pass is kept for the G step
        fake, fake_pullback, g_stats = _generate_with_pullback(
            model, params, batch_stats, jax.random.fold_in(step_key, d_steps + 1),
            batch(i).shape[0])
        batch_stats = _merge(batch_stats, {"generator": g_stats})
        d_loss = functools.partial(model.discriminator_loss, fake=fake)
      params, batch_stats, opt_state["discriminator"], d_metrics = _update_network(
          "discriminator", d_loss, optimizers["discriminator"],
          opt_state["discriminator"], params, batch_stats, batch(i),
          jax.random.fold_in(step_key, i))
    g_key = jax.random.fold_in(step_key, d_steps)
    if reuse_fake:
      params, batch_stats, opt_state["generator"], g_metrics = _update_generator_through(
          fake_pullback, fake, model, optimizers["generator"], opt_state["generator"],
          params, batch_stats, g_key)
    else:
      params, batch_stats, opt_state["generator"], g_metrics = _update_network(
          "generator", model.generator_loss, optimizers["generator"],
          opt_state["generator"], params, batch_stats, batch(-1), g_key)
    metrics = {**d_metrics, **g_metrics}
    learned = {"params": params, "batch_stats": batch_stats, "opt_state": opt_state}
    if nan_policy == "skip":
      finite = all_finite(metrics)
      learned = jax.tree.map(lambda new, old: jnp.where(finite, new, old), learned,
                             {name: state[name] for name in learned})
    return {**state, **learned, "step": state["step"] + 1}, metrics

  return update


def make_train_step(update: StepFn, steps_per_dispatch: int, on_device_data: bool,
                    state_sharding=None, data_sharding=None) -> StepFn:
  """Compiles `steps_per_dispatch` updates into one call; metrics gain a leading axis.

  With host data, `data` holds one entry per step along its leading axis.
  """

  def run(state, data):
    if steps_per_dispatch == 1:  # no loop: XLA's CPU backend is slow inside while loops
      state, metrics = update(state, data if on_device_data else data[0])
      return state, jax.tree.map(lambda m: m[None], metrics)
    if on_device_data:
      return jax.lax.scan(lambda s, _: update(s, data), state, length=steps_per_dispatch)
    return jax.lax.scan(update, state, data)

  shardings = {}
  if state_sharding is not None:
    shardings = dict(in_shardings=(state_sharding, data_sharding),
                     out_shardings=(state_sharding, state_sharding))
  return jax.jit(run, donate_argnums=(0,), **shardings)
