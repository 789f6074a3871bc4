"""Generator/discriminator pairs, found by name, each with its own config fields."""

import dataclasses
from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from gax import config_base, errors
from gax.models import conditioning
from gax.models.dcgan import (
  DCGAN28Discriminator,
  DCGAN28Generator,
  DCGAN64Discriminator,
  DCGAN64Generator,
)
from gax.models.mlp import MLPDiscriminator, MLPGenerator
from gax.models.sngan import (
  ResNetDiscriminator,
  ResNetGenerator,
  SNDCGANDiscriminator,
  SNDCGANGenerator,
)

ImageShape = tuple[int, int, int]
Networks = tuple[nn.Module, nn.Module]


@dataclasses.dataclass(frozen=True)
class Conditioning:
  """How G and D see the class label (gax/models/conditioning.py); 0 classes: they do not."""

  num_classes: int = 0
  generator: str = "none"  # conditioning.G_CONDITIONING
  discriminator: str = "none"  # conditioning.D_CONDITIONING
  aux_classes: int = 0  # an auxiliary class head on D (ACGAN)

  def generator_fields(self) -> dict:
    return dict(num_classes=self.num_classes, conditioning=self.generator)

  def discriminator_fields(self) -> dict:
    return dict(num_classes=self.num_classes, conditioning=self.discriminator,
                aux_classes=self.aux_classes)


UNCONDITIONAL = Conditioning()


def _mlp(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype, cond: Conditioning
         ) -> Networks:
  if cond.generator == "cbn":
    raise errors.ConfigError("model 'mlp' has no batch norm to condition; its "
                                  "generator takes the label by concatenation")
  return (
      MLPGenerator(shape, tuple(cfg.g_hidden), cfg.output_activation, cfg.g_init_range,
                   dtype=dtype, **cond.generator_fields()),
      MLPDiscriminator(tuple(cfg.d_hidden), cfg.d_pieces, cfg.d_input_dropout,
                       cfg.d_dropout, cfg.d_init_range, dtype=dtype,
                       **cond.discriminator_fields()),
  )


def _dcgan28(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype, cond: Conditioning
             ) -> Networks:
  height, width, _ = shape
  if height % 4 or width % 4:
    raise errors.ConfigError(f"model 'dcgan28' needs height and width divisible by 4 "
                                  f"(28x28 as in the tutorial); the data is {height}x{width}")
  return (DCGAN28Generator(shape, dtype=dtype, conv_transpose=cfg.conv_transpose,
                           spectral_norm=cfg.g_spectral_norm, **cond.generator_fields()),
          DCGAN28Discriminator(cfg.d_dropout, dtype=dtype, conv_transpose=cfg.conv_transpose,
                               spectral_norm=cfg.d_spectral_norm,
                               **cond.discriminator_fields()))


def _dcgan64(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype, cond: Conditioning
             ) -> Networks:
  height, width, _ = shape
  if height != width or height < 8 or height & (height - 1):
    raise errors.ConfigError(f"model 'dcgan64' needs square images whose side is a "
                                  f"power of two >= 8 (64x64 as in Radford et al.); the "
                                  f"data is {height}x{width}")
  return (DCGAN64Generator(shape, cfg.ngf, dtype=dtype, conv_transpose=cfg.conv_transpose,
                           spectral_norm=cfg.g_spectral_norm, **cond.generator_fields()),
          DCGAN64Discriminator(cfg.ndf, dtype=dtype, conv_transpose=cfg.conv_transpose,
                               spectral_norm=cfg.d_spectral_norm,
                               **cond.discriminator_fields()))


def _sngan(generator, discriminator):
  """A builder of one of Miyato et al.'s 32x32 pairs (gax/models/sngan.py)."""

  def build(cfg: ml_collections.ConfigDict, shape: ImageShape, dtype, cond: Conditioning
            ) -> Networks:
    height, width, _ = shape
    if height % 8 or width % 8:
      raise errors.ConfigError(f"model {cfg.name!r} needs height and width divisible "
                                    f"by 8 (32x32 as in Miyato et al.); the data is "
                                    f"{height}x{width}")
    if "concat" in (cond.generator, cond.discriminator):
      raise errors.ConfigError(
          f"model {cfg.name!r} takes a label by conditional batch norm in G and projection "
          "in D, not by concatenation (configs/cgan_mnist.py:disc=projection)")
    return (generator(shape, cfg.ngf, dtype=dtype, conv_transpose=cfg.conv_transpose,
                      spectral_norm=cfg.g_spectral_norm, **cond.generator_fields()),
            discriminator(cfg.ndf, dtype=dtype, conv_transpose=cfg.conv_transpose,
                          spectral_norm=cfg.d_spectral_norm, **cond.discriminator_fields()))

  return build


# Strided transposed convs, and strided convs' input gradients: "xla" (input-dilated
# convs), "subpixel" or "auto" (per-phase convs + depth-to-space where strided).
CONV_TRANSPOSE = ("auto", "subpixel", "xla")


def _noise_fields(noise: str = "normal", noise_dim: int = 100) -> dict:
  return dict(noise_dim=noise_dim, noise=noise)


def _conv_fields(d_spectral_norm: bool = False, **widths) -> dict:
  """The convolutional pairs' shared fields: how strided convolutions run, and which
  networks are spectrally normalised (gax/models/spectral.py)."""
  return dict(**widths, conv_transpose="auto", d_spectral_norm=d_spectral_norm,
              g_spectral_norm=False)


# name -> (builder, the model's own config fields at their defaults)
MODELS: dict[str, tuple[Callable[..., Networks], Callable[[], dict]]] = {
    # Goodfellow et al.'s MLP GAN, with the paper's pylearn2 initialisation.
    "mlp": (_mlp, lambda: dict(
        **_noise_fields("uniform"), g_hidden=(1200, 1200), output_activation="sigmoid",
        d_hidden=(240, 240), d_pieces=5, d_input_dropout=0.2, d_dropout=0.5,
        g_init_range=0.05, d_init_range=0.005)),
    # d_dropout: the tutorial's Dropout(0.3) after each of D's convolutions.
    "dcgan28": (_dcgan28, lambda: dict(**_noise_fields(), **_conv_fields(), d_dropout=0.3)),
    "dcgan64": (_dcgan64, lambda: dict(**_noise_fields(), **_conv_fields(ngf=64, ndf=64))),
    # Miyato et al.'s 32x32 networks: noise 128, D spectrally normalised.
    "sndcgan": (_sngan(SNDCGANGenerator, SNDCGANDiscriminator), lambda: dict(
        **_noise_fields(noise_dim=128), **_conv_fields(True, ngf=64, ndf=64))),
    "sngan_resnet": (_sngan(ResNetGenerator, ResNetDiscriminator), lambda: dict(
        **_noise_fields(noise_dim=128), **_conv_fields(True, ngf=256, ndf=128))),
}
NOISE = ("normal", "uniform")
# (field, test, what it must be) of the networks' fields, checked where a model has them.
FIELD_RULES = [
    *((name, config_base.at_least(1), "must be >= 1") for name in (
        "noise_dim", "ngf", "ndf", "d_pieces")),
    ("g_hidden", config_base.sizes, "must be a tuple of layer widths >= 1"),
    ("d_hidden", config_base.sizes, "must be a tuple of layer widths >= 1"),
    ("d_dropout", config_base.fraction, "must be in [0, 1)"),
    ("d_input_dropout", config_base.fraction, "must be in [0, 1)"),
    ("g_init_range", config_base.at_least(0), "must be >= 0 (0: Flax's default init)"),
    ("d_init_range", config_base.at_least(0), "must be >= 0 (0: Flax's default init)"),
    ("output_activation", lambda v: v in ("tanh", "sigmoid"), "must be 'tanh' or 'sigmoid'"),
    *((name, lambda v: isinstance(v, bool), "must be True or False") for name in (
        "d_spectral_norm", "g_spectral_norm")),
]


def default_config(name: str) -> ml_collections.ConfigDict:
  """`config.model` for the model `name`: its name and its own fields."""
  config_base.check_choice("model.name", name, MODELS)
  return ml_collections.ConfigDict({"name": name, **MODELS[name][1]()})


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks `config.model`: a registered name, its noise and its fields' values."""
  model_config = config.model
  default_config(model_config.name)
  config_base.check_choice("model.noise", model_config.noise, NOISE)
  if "conv_transpose" in model_config:
    config_base.check_choice("model.conv_transpose", model_config.conv_transpose,
                             CONV_TRANSPOSE)
  config_base.check_rules(config, [(f"model.{field}", test, why)
                                   for field, test, why in FIELD_RULES
                                   if field in model_config])


def tiny(config: ml_collections.ConfigDict) -> None:
  """Shrinks the named networks to a few CPU-milliseconds per step (tests)."""
  model_config = config.model
  if model_config.name == "mlp":
    model_config.g_hidden, model_config.d_hidden = (32,), (16,)
  elif "ngf" in model_config:
    model_config.ngf = model_config.ndf = 8
    if model_config.name == "dcgan64":
      config.data.image_size = 32


def create_networks(model_config: ml_collections.ConfigDict, image_shape: ImageShape,
                    dtype=jnp.float32, cond: Conditioning = UNCONDITIONAL) -> Networks:
  """Builds the (generator, discriminator) pair named by `model_config.name`."""
  name = model_config.name
  config_base.check_choice("model.name", name, MODELS)
  own = set(default_config(name))
  others = set().union(*(fields() for _, fields in MODELS.values())) - own
  if not own <= set(model_config) or others & set(model_config):
    raise errors.ConfigError(
        f"config.model.name = {name!r}, but config.model holds the fields of another model "
        f"({', '.join(sorted(model_config))}); start from a config of model {name!r} "
        "instead of overriding config.model.name")
  config_base.check_choice("model.noise", model_config.noise, NOISE)
  if "conv_transpose" in model_config:
    config_base.check_choice("model.conv_transpose", model_config.conv_transpose,
                             CONV_TRANSPOSE)
  config_base.check_choice("generator conditioning", cond.generator,
                           conditioning.G_CONDITIONING)
  config_base.check_choice("discriminator conditioning", cond.discriminator,
                           conditioning.D_CONDITIONING)
  return MODELS[name][0](model_config, tuple(image_shape), dtype, cond)
