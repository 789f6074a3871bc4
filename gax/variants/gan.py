"""The single generator/discriminator GAN: vanilla GAN, DCGAN and LSGAN.

What distinguishes the three is data only: which networks (`config.model.name`) and
which adversarial loss (`config.loss.name`).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gax import losses, models

Array = jax.Array
Pytree = Any


@dataclasses.dataclass(frozen=True)
class GAN:
  """Networks and losses of a generator G(z) against a discriminator D(x)."""

  generator: nn.Module
  discriminator: nn.Module
  loss: losses.AdversarialLoss
  noise_dim: int
  noise: str = "normal"

  def with_hparams(self, hparams: dict[str, Array]) -> "GAN":
    del hparams  # the GAN's losses have no continuous weights
    return self

  def sample_noise(self, key: Array, count: int) -> Array:
    if self.noise == "uniform":
      # Unit variance, as in the paper's pylearn2 code.
      return jax.random.uniform(key, (count, self.noise_dim), minval=-3 ** 0.5,
                                maxval=3 ** 0.5)
    return jax.random.normal(key, (count, self.noise_dim))

  def init(self, key: Array, image_shape: tuple[int, ...]) -> tuple[Pytree, Pytree]:
    """Returns (params, batch_stats), each a dict over "generator", "discriminator"."""
    g_key, d_key = jax.random.split(key)
    g_vars = self.generator.init(g_key, self.sample_noise(g_key, 2), train=False)
    d_vars = self.discriminator.init(d_key, jnp.zeros((2, *image_shape)), train=False)
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"]}
    batch_stats = {"generator": g_vars.get("batch_stats", {}),
                   "discriminator": d_vars.get("batch_stats", {})}
    return params, batch_stats

  def _generate(self, params, batch_stats, z, train: bool):
    variables = {"params": params["generator"],
                 "batch_stats": batch_stats["generator"]}
    if not train:
      return self.generator.apply(variables, z, train=False), {}
    fake, updates = self.generator.apply(variables, z, train=True,
                                         mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  def _discriminate(self, params, d_stats, images, key):
    out, updates = self.discriminator.apply(
        {"params": params["discriminator"], "batch_stats": d_stats}, images,
        train=True, mutable=["batch_stats"], rngs={"dropout": key})
    return out, updates["batch_stats"]

  def generate(self, params, batch_stats, key, count: int):
    """A training fake batch from fresh noise; returns (fake, G's batch statistics)."""
    return self._generate(params, batch_stats, self.sample_noise(key, count), True)

  def discriminator_loss(self, params, batch_stats, real, key, fake=None):
    """D's loss on a real batch and a fake one, fresh unless given; returns
    (loss, (stats, metrics))."""
    noise_key, real_key, fake_key = jax.random.split(key, 3)
    g_stats = {}
    if fake is None:
      fake, g_stats = self.generate(params, batch_stats, noise_key, real.shape[0])
    fake = jax.lax.stop_gradient(fake)
    real_out, d_stats = self._discriminate(params, batch_stats["discriminator"], real,
                                           real_key)
    fake_out, d_stats = self._discriminate(params, d_stats, fake, fake_key)
    loss = self.loss.discriminator(real_out.astype(jnp.float32),
                                   fake_out.astype(jnp.float32))
    metrics = {"d_loss": loss,
               "d_real": jnp.mean(self.loss.output_to_score(real_out)),
               "d_fake": jnp.mean(self.loss.output_to_score(fake_out))}
    return loss, ({"generator": g_stats, "discriminator": d_stats}, metrics)

  def generator_loss(self, params, batch_stats, real, key):
    """G's loss on a fresh fake batch; returns (loss, (stats, metrics))."""
    noise_key, fake_key = jax.random.split(key)
    fake, g_stats = self.generate(params, batch_stats, noise_key, real.shape[0])
    loss, (stats, metrics) = self.generator_loss_on_fake(params, batch_stats, fake, fake_key)
    return loss, ({**stats, "generator": g_stats}, metrics)

  def generator_loss_on_fake(self, params, batch_stats, fake, key):
    """G's loss as a function of a fake batch (D fixed); returns (loss, (stats, metrics))."""
    fake_out, d_stats = self._discriminate(params, batch_stats["discriminator"], fake, key)
    loss = self.loss.generator(fake_out.astype(jnp.float32))
    metrics = {"g_loss": loss,
               "d_fake_for_g": jnp.mean(self.loss.output_to_score(fake_out))}
    return loss, ({"discriminator": d_stats}, metrics)

  def sample_inputs(self, key: Array, count: int) -> Array:
    """The fixed inputs of the sample grids: noise vectors."""
    return self.sample_noise(key, count)

  def sample(self, params, batch_stats, inputs: Array) -> Array:
    """Images for the sample grids, G in inference mode (running BN statistics)."""
    return self._generate(params, batch_stats, inputs, train=False)[0]


def create(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
           dtype=jnp.float32) -> GAN:
  generator, discriminator = models.create_networks(config.model, image_shape, dtype)
  loss = losses.get_adversarial_loss(config.loss.name, config.loss.a, config.loss.b,
                                     config.loss.c)
  return GAN(generator, discriminator, loss, config.model.noise_dim,
             config.model.get("noise", "normal"))
