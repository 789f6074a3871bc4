"""GAN variants by name. A variant supplies its networks and losses to the update factory.

A variant provides `init(key, image_shape) -> (params, batch_stats)` (dicts keyed by the
optimised groups "generator" and "discriminator"), `discriminator_loss` and
`generator_loss` (each `(params, batch_stats, real, key) -> (loss, (stats, metrics))`),
`with_hparams(hparams)` (itself with the train state's continuous loss weights), and
`sample_inputs` / `sample` for the sample grids.
"""

import numpy as np

from gax import config_base
from gax import data as data_lib
from gax.variants import cyclegan, gan

VARIANTS = {
    "gan": gan.create,
    "cyclegan": cyclegan.create,
}
UNPAIRED = ("cyclegan",)  # variants that train on two domains {"a": ..., "b": ...}


def create_variant(config, image_shape, dtype, training_images=None):
  """Builds the variant named by `config.variant` for images of `image_shape`.

  Unpaired variants take their fixed sample-grid inputs from `training_images`.
  """
  if config.variant not in VARIANTS:
    raise config_base.ConfigError(f"unknown variant {config.variant!r}; choose one of "
                     f"{', '.join(sorted(VARIANTS))}")
  if config.variant in UNPAIRED:
    count = max(1, config.num_samples // 8)
    height, width = image_shape[:2]
    sample_images = {}
    for domain, images in training_images.items():
      chosen = np.random.default_rng(0).permutation(len(images))[:count]  # fixed, mixed
      top, left = (images.shape[1] - height) // 2, (images.shape[2] - width) // 2
      sample_images[domain] = data_lib.to_model_range(
          images[chosen, top:top + height, left:left + width])
    return VARIANTS[config.variant](config, image_shape, dtype, sample_images)
  return VARIANTS[config.variant](config, image_shape, dtype)
