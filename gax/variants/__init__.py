"""GAN variants by name. A variant supplies its networks and losses to the update factory.

A variant provides `init(key, image_shape) -> (params, batch_stats)` (dicts keyed by the
optimised groups "generator" and "discriminator"), `discriminator_loss` and
`generator_loss` (each `(params, batch_stats, real, key) -> (loss, (stats, metrics))`),
and `sample_inputs` / `sample` for the sample grids.
"""

from gax import config_base
from gax.variants import gan

VARIANTS = {
    "gan": gan.create,
}


def create_variant(config, image_shape, dtype):
  """Builds the variant named by `config.variant` for images of `image_shape`."""
  if config.variant not in VARIANTS:
    raise config_base.ConfigError(f"unknown variant {config.variant!r}; choose one of "
                     f"{', '.join(sorted(VARIANTS))}")
  return VARIANTS[config.variant](config, image_shape, dtype)
