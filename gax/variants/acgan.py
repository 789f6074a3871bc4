"""ACGAN (Odena et al., 2017): D judges real/fake and also classifies, with an auxiliary
class head on its features; G draws for a given label.

`model.conditioning` says how G takes the label: "concat" (the paper's: the one-hot label
joins z) or "cbn" (conditional batch norm, as PyTorch-StudioGAN's ACGAN does).

Both networks add the class log-likelihood L_C to their objectives: D minimises
d_class_weight * (CE on real + CE on fake) beside its adversarial loss, G minimises
g_class_weight * CE on its fakes beside its own.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gax import config_base, models
from gax.data import datasets as data_lib
from gax.variants import cgan, gan

HPARAMS = {**gan.HPARAMS, "loss.d_class_weight": "d_class_weight",
           "loss.g_class_weight": "g_class_weight"}
G_CONDITIONING = ("concat", "cbn")


def add_defaults(config: ml_collections.ConfigDict, model: str = "dcgan28",
                 conditioning: str = "concat") -> None:
  gan.add_defaults(config, model)
  config.model.conditioning = conditioning
  config.loss.d_class_weight = 1.0
  config.loss.g_class_weight = 1.0


def validate(config: ml_collections.ConfigDict) -> None:
  gan.validate(config)
  config_base.check_choice("model.conditioning", config.model.conditioning, G_CONDITIONING)
  config_base.check_rules(config, [(f"loss.{name}", config_base.at_least(0), "must be >= 0")
                                   for name in ("d_class_weight", "g_class_weight")])


tiny = gan.tiny
batch_spec = cgan.batch_spec


def _class_loss(outputs, labels) -> jax.Array:
  logits = outputs["class_logits"].astype(jnp.float32)
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


@dataclasses.dataclass(frozen=True)
class ACGAN(gan.GAN):
  d_class_weight: jax.Array | float = 1.0
  g_class_weight: jax.Array | float = 1.0

  name = "acgan"

  def with_hparams(self, hparams):
    return dataclasses.replace(super().with_hparams(hparams),
                               d_class_weight=hparams["d_class_weight"],
                               g_class_weight=hparams["g_class_weight"])

  def discriminator_terms(self, real_out, fake_out, batch, fake):
    real_loss = _class_loss(real_out, batch["label"])
    fake_loss = _class_loss(fake_out, fake["label"])
    accuracy = jnp.mean(real_out["class_logits"].argmax(-1) == batch["label"])
    return self.d_class_weight * (real_loss + fake_loss), {
        "d_class_loss_real": real_loss, "d_class_loss_fake": fake_loss,
        "d_class_accuracy_real": accuracy}

  def generator_terms(self, fake_out, fake):
    loss = _class_loss(fake_out, fake["label"])
    return self.g_class_weight * loss, {"g_class_loss": loss}


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> ACGAN:
  conditioning = models.Conditioning(info.num_classes, config.model.conditioning, "none",
                                     info.num_classes)
  generator, discriminator = models.create_networks(
      config.model, info.field_shapes["image"], jnp.dtype(config.dtype), conditioning)
  return ACGAN(generator, discriminator, num_classes=info.num_classes,
               d_class_weight=config.loss.d_class_weight,
               g_class_weight=config.loss.g_class_weight, **gan.family_fields(config))
