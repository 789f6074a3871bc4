"""Optimizers and learning-rate schedules from the config, one per network."""

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
    return optax.adam(schedule, b1=opt_config.b1, b2=opt_config.b2, eps=opt_config.eps)
  if opt_config.name == "sgd":
    return optax.sgd(schedule, momentum=opt_config.momentum or None)
  raise config_base.ConfigError(f"unknown optimizer {opt_config.name!r}; choose one of "
                   f"{', '.join(OPTIMIZER_NAMES)}")
