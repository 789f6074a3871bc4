"""Optimizers and learning-rate schedules from the config, one per network."""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gax import config_base

OPTIMIZER_NAMES = config_base.CHOICES["optimizer.name"]

# The optimizers' continuous hyperparameters, by config path and by their name in the
# train state's "hparams": values the compiled step reads from the state instead of
# baking them in, so a population of models that differ in them trains as one vmapped
# program. Variants add their own (their loss weights) in their module's HPARAMS.
HPARAM_FIELDS = {
    "optimizer.g_learning_rate": "g_learning_rate",
    "optimizer.d_learning_rate": "d_learning_rate",
    "optimizer.b1": "b1",
    "optimizer.b2": "b2",
}


def network_learning_rate(opt_config: ml_collections.ConfigDict, network: str) -> float:
  """`opt_config.learning_rate`, unless `g_learning_rate` / `d_learning_rate` is set."""
  override = opt_config.get("g_learning_rate" if network == "generator"
                            else "d_learning_rate")
  return override if override is not None else opt_config.learning_rate


def hyperparameters(config: ml_collections.ConfigDict, variant_fields: dict[str, str]
                    ) -> dict[str, jax.Array]:
  """The train state's "hparams": float32 scalars, one per name in HPARAM_FIELDS and in
  `variant_fields` (config path -> name)."""
  values = {"g_learning_rate": network_learning_rate(config.optimizer, "generator"),
            "d_learning_rate": network_learning_rate(config.optimizer, "discriminator"),
            "b1": config.optimizer.b1, "b2": config.optimizer.b2}
  values.update({name: config_base.get_field(config, path)
                 for path, name in variant_fields.items()})
  return {name: jnp.asarray(value, jnp.float32) for name, value in values.items()}


def learning_rate_schedule(opt_config: ml_collections.ConfigDict, learning_rate: float,
                           num_train_steps: int) -> optax.Schedule:
  """Constant, then (if `decay_steps` > 0) linear decay to zero over the last steps."""
  decay_steps = opt_config.decay_steps
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
                     num_train_steps: int, hparams: dict | None = None
                     ) -> optax.GradientTransformation:
  """The optimizer of `network` ("generator" or "discriminator").

  `hparams` (see `hyperparameters`), possibly traced, replace the config's learning rate
  and Adam betas; the optimizer state's structure does not depend on them.
  """
  if hparams is None:
    learning_rate = network_learning_rate(opt_config, network)
    b1, b2 = opt_config.b1, opt_config.b2
  else:
    learning_rate = hparams[f"{network[0]}_learning_rate"]
    b1, b2 = hparams["b1"], hparams["b2"]
  schedule = learning_rate_schedule(opt_config, learning_rate, num_train_steps)
  config_base.check_choice("optimizer.name", opt_config.name, OPTIMIZER_NAMES)
  if opt_config.name == "adam":
    optimizer = optax.adam(schedule, b1=b1, b2=b2, eps=opt_config.eps)
  else:
    optimizer = optax.sgd(schedule, momentum=opt_config.momentum or None)
  limit = opt_config.d_max_column_norm if network == "discriminator" else 0.0
  return optax.chain(optimizer, max_column_norm(limit)) if limit else optimizer


def create_optimizers(config: ml_collections.ConfigDict, hparams: dict | None = None
                      ) -> dict[str, optax.GradientTransformation]:
  """{"generator": ..., "discriminator": ...}, see `create_optimizer`."""
  return {network: create_optimizer(config.optimizer, network, config.num_train_steps,
                                    hparams)
          for network in ("generator", "discriminator")}
