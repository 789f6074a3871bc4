"""Class-conditional GANs: cGAN (Mirza & Osindero, 2014) and the projection
discriminator (Miyato & Koyama, 2018).

`model.conditioning` says how the label reaches the networks:
- "concat": the one-hot label joins z in G, and the image (as one map per class) in D;
- "projection": conditional batch norm in G, and D's logit plus the inner product of a
  class embedding with its last features.
The losses are the unconditional GAN's, on (image, label) pairs; fakes are drawn for
uniformly drawn labels. Grids have one row per class; evaluation adds the conditional
accuracy and intra-class FID (see gax/variants/gan.py).
"""

import jax.numpy as jnp
import ml_collections

from gax import config_base, models
from gax.data import datasets as data_lib
from gax.variants import gan

HPARAMS = gan.HPARAMS
CONDITIONING = {"concat": ("concat", "concat"), "projection": ("cbn", "projection")}


def add_defaults(config: ml_collections.ConfigDict, model: str = "dcgan28",
                 conditioning: str = "concat") -> None:
  gan.add_defaults(config, model)
  config.model.conditioning = conditioning


def validate(config: ml_collections.ConfigDict) -> None:
  gan.validate(config)
  config_base.check_choice("model.conditioning", config.model.conditioning, CONDITIONING)


tiny = gan.tiny


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  source = data_lib.Source(config.dataset)
  return {"image": data_lib.Field(source, "image"), "label": data_lib.Field(source, "label")}


class CGAN(gan.GAN):
  name = "cgan"


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> CGAN:
  g_conditioning, d_conditioning = CONDITIONING[config.model.conditioning]
  conditioning = models.Conditioning(info.num_classes, g_conditioning, d_conditioning)
  generator, discriminator = models.create_networks(
      config.model, info.field_shapes["image"], jnp.dtype(config.dtype), conditioning)
  return CGAN(generator, discriminator, num_classes=info.num_classes,
              **gan.family_fields(config))

