"""Optimizers and learning-rate schedules from the config, one per network."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gax import config_base

OPTIMIZER_NAMES = ("adam", "sgd")


def learning_rate_schedule(opt_config: ml_collections.ConfigDict, learning_rate: float,
                           num_train_steps: int) -> optax.Schedule:
  """Constant, then (if `decay_steps` > 0) linear decay to zero over the last steps."""
  decay_steps = opt_config.get("decay_steps", 0)
  if not decay_steps:
    return optax.constant_schedule(learning_rate)
  constant_steps = max(num_train_steps - decay_steps, 0)
  return optax.join_schedules(
      [optax.constant_schedule(learning_rate),
       optax.linear_schedule(learning_rate, 0.0, decay_steps)],
      [constant_steps])


def max_column_norm(limit: float) -> optax.GradientTransformation:
  """Rescales updates so each weight matrix column ends with L2 norm <= `limit`.

  pylearn2's `max_col_norm`, which the paper's maxout discriminator trains with: it is
  what keeps plain SGD at learning rate 0.1 from diverging. Applies to 2-D kernels.
  """

  def update(updates, state, params):
    def project(update, param):
      if param.ndim != 2:
        return update
      new = param + update
      norms = jnp.sqrt(jnp.sum(new * new, axis=0, keepdims=True))
      return new * jnp.minimum(1.0, limit / jnp.maximum(norms, 1e-12)) - param

    return jax.tree.map(project, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def create_optimizer(opt_config: ml_collections.ConfigDict, network: str,
                     num_train_steps: int) -> optax.GradientTransformation:
  """The optimizer of `network` ("generator" or "discriminator").

  `opt_config.learning_rate` serves both networks unless `g_learning_rate` or
  `d_learning_rate` is set.
  """
  override = opt_config.get("g_learning_rate" if network == "generator"
                            else "d_learning_rate")
  learning_rate = override if override is not None else opt_config.learning_rate
  schedule = learning_rate_schedule(opt_config, learning_rate, num_train_steps)
  if opt_config.name == "adam":
    optimizer = optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps)
  elif opt_config.name == "sgd":
    optimizer = optax.sgd(schedule, momentum=opt_config.momentum or None)
  else:
    raise config_base.ConfigError(f"unknown optimizer {opt_config.name!r}; choose one of "
                   f"{', '.join(OPTIMIZER_NAMES)}")
  limit = opt_config.get("d_max_column_norm", 0.0) if network == "discriminator" else 0.0
  return optax.chain(optimizer, max_column_norm(limit)) if limit else optimizer
