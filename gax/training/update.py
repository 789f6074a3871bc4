"""The one update-step factory every variant trains through.

A step is k discriminator updates, each on its own real batch, then one generator
update, on a fresh fake batch or on the last D step's (`g_step_fake`). The factory
compiles it once (the train state donated on accelerators); several steps can run per
dispatch under `lax.scan`. Each step draws its randomness from
fold_in(state["key"], state["step"]), so the same step always sees the same numbers. The
update is handed a finished batch (a dict of arrays in model range, with a leading axis
of k); it knows nothing of datasets. When the state holds an average of G
(`state["ema"]`, gax/variants/ema.py), the step updates it too.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from gax.variants import ema as ema_lib

Array = jax.Array
# step, key, data_key, hparams, params, batch_stats, opt_state[, ema]
TrainState = dict[str, Any]
Batch = dict[str, Array]
StepFn = Callable[[TrainState, Any], tuple[TrainState, dict[str, Array]]]
OptimizersFn = Callable[[dict[str, Array]], dict[str, optax.GradientTransformation]]


def _merge(tree: dict, updates: dict) -> dict:
  """Replaces the top-level entries of `tree` that `updates` carries non-empty."""
  return {name: updates.get(name) or value for name, value in tree.items()}


def _apply_gradients(network, grads, optimizer, opt_state, params):
  updates, opt_state = optimizer.update(grads, opt_state, params[network])
  params = {**params, network: optax.apply_updates(params[network], updates)}
  return params, opt_state, {f"{network[0]}_grad_norm": optax.global_norm(grads)}


def _update_network(network, loss_fn, optimizer, opt_state, params, batch_stats, real,
                    key, **loss_options):
  """One optimizer step on one network's params; other networks' params stay fixed."""

  def objective(own_params):
    return loss_fn({**params, network: own_params}, batch_stats, real, key, **loss_options)

  grads, (new_stats, metrics) = jax.grad(objective, has_aux=True)(params[network])
  params, opt_state, norm = _apply_gradients(network, grads, optimizer, opt_state, params)
  return params, _merge(batch_stats, new_stats), opt_state, {**metrics, **norm}


def _generate_with_pullback(model, params, batch_stats, batch, key):
  """A training fake batch, the pullback of its images' forward pass, and G's batch
  statistics."""

  def generate(g_params):
    fake, g_stats = model.generate({**params, "generator": g_params}, batch_stats, batch,
                                   key)
    return fake["image"], (fake, g_stats)

  _, pullback, (fake, g_stats) = jax.vjp(generate, params["generator"], has_aux=True)
  return fake, pullback, g_stats


def _update_generator_through(fake_pullback, fake, model, optimizer, opt_state, params,
                              batch_stats, key):
  """The G step on a fake batch already generated: D's gradient at the fake images,
  pulled back through the saved generator forward pass (`jax.vjp`) instead of a second."""

  def loss_at(images):
    return model.generator_loss_on_fake(params, batch_stats, {**fake, "image": images}, key)

  dfake, (new_stats, metrics) = jax.grad(loss_at, has_aux=True)(fake["image"])
  grads, = fake_pullback(dfake)
  params, opt_state, norm = _apply_gradients("generator", grads, optimizer, opt_state,
                                             params)
  return params, _merge(batch_stats, new_stats), opt_state, {**metrics, **norm}


# Checked every step, in this order: the first non-finite one is the one reported.
GUARDED_METRICS = ("d_loss", "d_grad_norm", "g_loss", "g_grad_norm")


def _poisoned(batch: Batch, poison: Array) -> Batch:
  """The batch with its floating-point arrays set to NaN where `poison` (labels stay)."""
  return {name: jnp.where(poison, jnp.nan, value)
          if jnp.issubdtype(value.dtype, jnp.floating) else value
          for name, value in batch.items()}


def all_finite(metrics: dict[str, Array]) -> Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(metrics[name]))
                            for name in GUARDED_METRICS if name in metrics]))


def make_update_fn(variant, create_optimizers: OptimizersFn, d_steps: int,
                   nan_policy: str = "stop", inject_nan_at_step: int = 0,
                   g_step_fake: str = "fresh", ema_decay: float = 0.0,
                   ema_start_step: int = 0, ema_rampup: float = 0.0
                   ) -> Callable[[TrainState, Batch], Any]:
  """Builds the (uncompiled) function (state, batch) -> (state, metrics) of one step.

  `batch` holds `d_steps` real batches along its leading axis, already in model range.
  Everything that may differ between members of a population comes from the state:
  the keys, and the continuous hyperparameters `state["hparams"]` that
  `create_optimizers(hparams)` and `variant.with_hparams(hparams)` read. With
  `nan_policy="skip"` a step whose losses or gradient norms are not finite leaves
  params, batch statistics and optimizer state as they were ("stop" is the caller's
  job: it sees the metrics). `inject_nan_at_step` > 0 poisons that step's real batch,
  to test the guard. `g_step_fake` is "fresh" (the G step generates a fake batch of its
  own, as in Goodfellow et al.'s Algorithm 1) or "reuse" (it trains on the last D step's
  fake batch, through that forward pass; the variant must have `reuses_fake`). D's loss
  is told how many D updates came before (`iteration`), for penalties taken every N.
  `ema_decay` > 0 updates the state's average of G after each G step (gax/variants/ema.py).
  """
  reuse_fake = g_step_fake == "reuse"
  if reuse_fake and not variant.reuses_fake:
    raise ValueError(f"the {variant.name!r} variant cannot reuse the D step's fake batch")

  def update(state: TrainState, real: Batch) -> tuple[TrainState, dict[str, Array]]:
    step_key = jax.random.fold_in(state["key"], state["step"])
    optimizers = create_optimizers(state["hparams"])
    model = variant.with_hparams(state["hparams"])
    if inject_nan_at_step:
      real = _poisoned(real, state["step"] + 1 == inject_nan_at_step)
    params, batch_stats = state["params"], state["batch_stats"]
    opt_state = dict(state["opt_state"])
    batch = lambda i: jax.tree.map(lambda x: x[i], real)
    d_loss = model.discriminator_loss
    for i in range(d_steps):  # k is small: unrolled beats a loop on every backend
      if reuse_fake and i == d_steps - 1:  # G's forward pass is kept for the G step
        fake, fake_pullback, g_stats = _generate_with_pullback(
            model, params, batch_stats, batch(i), jax.random.fold_in(step_key, d_steps + 1))
        batch_stats = _merge(batch_stats, {"generator": g_stats})
        d_loss = functools.partial(model.discriminator_loss, fake=fake)
      params, batch_stats, opt_state["discriminator"], d_metrics = _update_network(
          "discriminator", d_loss, optimizers["discriminator"],
          opt_state["discriminator"], params, batch_stats, batch(i),
          jax.random.fold_in(step_key, i), iteration=state["step"] * d_steps + i)
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
    if ema_decay:
      learned["ema"] = ema_lib.update(state["ema"], params, batch_stats, state["step"],
                                      ema_decay, ema_start_step, ema_rampup)
    if nan_policy == "skip":
      finite = all_finite(metrics)
      learned = jax.tree.map(lambda new, old: jnp.where(finite, new, old), learned,
                             {name: state[name] for name in learned})
    return {**state, **learned, "step": state["step"] + 1}, metrics

  return update


def make_train_step(update: StepFn, steps_per_dispatch: int, on_device_data: bool,
                    state_sharding=None, data_sharding=None, metrics_sharding=None,
                    donate_state: bool = True) -> StepFn:
  """Compiles `steps_per_dispatch` calls of `update(state, data)` into one; metrics gain
  a leading axis. `donate_state`: the new state may reuse the old one's buffers.

  `data` is what the step reads its batches from: the same resident data for every step
  (`on_device_data`), or host batches with one entry per step along the leading axis.
  """

  def run(state, data):
    if steps_per_dispatch == 1:  # no loop: XLA's CPU backend is slow inside while loops
      state, metrics = update(state, data if on_device_data
                              else jax.tree.map(lambda x: x[0], data))
      return state, jax.tree.map(lambda m: m[None], metrics)
    if on_device_data:
      return jax.lax.scan(lambda s, _: update(s, data), state, length=steps_per_dispatch)
    return jax.lax.scan(update, state, data)

  shardings = {}
  if state_sharding is not None:
    shardings = dict(in_shardings=(state_sharding, data_sharding),
                     out_shardings=(state_sharding, metrics_sharding or state_sharding))
  return jax.jit(run, donate_argnums=(0,) if donate_state else (), **shardings)
