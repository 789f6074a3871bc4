"""Generator/discriminator pairs, found by name."""

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gax import config_base
from gax.models.dcgan import (
  DCGAN28Discriminator,
  DCGAN28Generator,
  DCGAN64Discriminator,
  DCGAN64Generator,
)
from gax.models.mlp import MLPDiscriminator, MLPGenerator

ImageShape = tuple[int, int, int]
Networks = tuple[nn.Module, nn.Module]


def _mlp(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype) -> Networks:
  return (
      MLPGenerator(shape, tuple(cfg.g_hidden), cfg.output_activation,
                   cfg.get("g_init_range", 0.0), dtype=dtype),
      MLPDiscriminator(tuple(cfg.d_hidden), cfg.d_pieces, cfg.d_input_dropout,
                       cfg.d_dropout, cfg.get("d_init_range", 0.0), dtype=dtype),
  )


def _dcgan28(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype) -> Networks:
  height, width, _ = shape
  if height % 4 or width % 4:
    raise config_base.ConfigError(f"model 'dcgan28' needs height and width divisible by 4 "
                     f"(28x28 as in the tutorial); the data is {height}x{width}")
  impl = cfg.get("conv_transpose", "auto")
  return (DCGAN28Generator(shape, dtype=dtype, conv_transpose=impl),
          DCGAN28Discriminator(dtype=dtype, conv_transpose=impl))


def _dcgan64(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype) -> Networks:
  height, width, _ = shape
  if height != width or height < 8 or height & (height - 1):
    raise config_base.ConfigError(f"model 'dcgan64' needs square images whose side is a power of "
                     f"two >= 8 (64x64 as in Radford et al.); the data is "
                     f"{height}x{width}")
  impl = cfg.get("conv_transpose", "auto")
  return (DCGAN64Generator(shape, cfg.ngf, dtype=dtype, conv_transpose=impl),
          DCGAN64Discriminator(cfg.ndf, dtype=dtype, conv_transpose=impl))


MODELS: dict[str, Callable[..., Networks]] = {
    "mlp": _mlp,
    "dcgan28": _dcgan28,
    "dcgan64": _dcgan64,
}


def create_networks(model_config: ml_collections.ConfigDict, image_shape: ImageShape,
                    dtype=jnp.float32) -> Networks:
  """Builds the (generator, discriminator) pair named by `model_config.name`."""
  if model_config.name not in MODELS:
    raise config_base.ConfigError(f"unknown model {model_config.name!r}; choose one of "
                     f"{', '.join(sorted(MODELS))}")
  return MODELS[model_config.name](model_config, tuple(image_shape), dtype)
