"""An exponential moving average of the generator, kept in the train state.

state["ema"] holds an average of G's parameters and of its batch statistics (batch
norm's running mean and variance; a spectrally normalised G's power-iteration vectors),
updated after every G step as ema = beta * ema + (1 - beta) * G (Yazıcı et al. 2019;
BigGAN, StyleGAN). Averaging the statistics with the same beta as the weights, as timm's
ModelEma averages a model's buffers, keeps them those of the averaged network's recent
past rather than of the live one's last hundred steps.

beta ramps up as StyleGAN2-ADA's does: the average's half-life is `decay`'s, but never
more than `rampup` times the steps it has averaged so far, so it never reaches back into
the untrained G of the first steps (without it, decay 0.995 after 300 steps still holds
22% of the random initial G). Until `start_step` the average is a copy of G. Sample grids
and evaluations draw from it when `eval.use_ema`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

Array = jax.Array
Pytree = Any


def enabled(config: ml_collections.ConfigDict) -> bool:
  return config.ema.decay > 0


def initial(params: Pytree, batch_stats: Pytree) -> dict[str, Pytree]:
  """The average at step 0: G itself (copies, the state may be donated)."""
  return jax.tree.map(jnp.copy, {"params": params["generator"],
                                 "batch_stats": batch_stats["generator"]})


def beta(step: Array, decay: float, start_step: int, rampup: float) -> Array:
  """The weight of the old average after G step number `step` + 1: 0 until `start_step`,
  then `decay`, its half-life capped at `rampup` times the steps averaged (0: no cap)."""
  averaged = (step + 1 - start_step).astype(jnp.float32)
  if not rampup:
    return jnp.where(averaged > 0, decay, 0.0)
  half_life = jnp.minimum(math.log(0.5) / math.log(decay), rampup * averaged)
  return jnp.where(half_life > 0, 0.5 ** (1.0 / jnp.maximum(half_life, 1e-8)), 0.0)


def update(ema: dict[str, Pytree], params: Pytree, batch_stats: Pytree, step: Array,
           decay: float, start_step: int, rampup: float) -> dict[str, Pytree]:
  """The average after G step number `step` + 1 (see `beta`)."""
  rate = beta(step, decay, start_step, rampup)
  live = {"params": params["generator"], "batch_stats": batch_stats["generator"]}
  return jax.tree.map(lambda average, new: (rate * average + (1 - rate) * new
                                            ).astype(new.dtype), ema, live)


def generator_state(state: dict[str, Any]) -> tuple[Pytree, Pytree]:
  """(params, batch_stats) to draw from: with G replaced by its average when the state
  holds one (callers that want the live G hand over `without(state)`)."""
  if "ema" not in state:
    return state["params"], state["batch_stats"]
  return ({**state["params"], "generator": state["ema"]["params"]},
          {**state["batch_stats"], "generator": state["ema"]["batch_stats"]})


def without(state: dict[str, Any]) -> dict[str, Any]:
  """The state as it would be without an average: what draws from the live G."""
  return {name: value for name, value in state.items() if name != "ema"}


def chosen(state: dict[str, Any], config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The state that sample grids and evaluations draw from: with the average when
  `eval.use_ema`, without it otherwise."""
  return state if config.eval.use_ema else without(state)
