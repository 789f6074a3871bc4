"""CycleGAN (Zhu et al., 2017): unpaired translation between domains A and B.

Trained by the shared update factory like every variant: the "generator" group holds
G_AB and G_BA, the "discriminator" group D_A and D_B. Real batches are dicts
{"a": ..., "b": ...}. The history pool of generated images is part of the train state
(under `batch_stats["pool"]`, beside any normalisation statistics), updated inside the
compiled step from the step's key, and checkpointed with everything else.

One difference from the official code's order: the factory updates D before G within a
step, so D sees the fakes of the generators before this step's G update (the official
code updates G first, then D on the fakes G made before its update: the same fakes).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gax.models import cyclegan as networks

Array = jax.Array
Pytree = Any
DOMAINS = ("a", "b")


def empty_pool(size: int, image_shape: tuple[int, ...]) -> dict[str, Array]:
  return {"images": jnp.zeros((size, *image_shape), jnp.float32),
          "count": jnp.zeros((), jnp.int32)}


def query_pool(pool: dict[str, Array], images: Array, key: Array
               ) -> tuple[dict[str, Array], Array]:
  """The official ImagePool.query, image by image: returns (new pool, images for D).

  While the pool is filling, each image is stored and returned. Once it is full, each
  image is, with probability 1/2, swapped with a random stored one (the stored one is
  returned), and otherwise returned as it is.
  """
  size = pool["images"].shape[0]

  def one(pool, inputs):
    image, image_key = inputs
    swap_key, index_key = jax.random.split(image_key)
    filling = pool["count"] < size
    swap = jnp.logical_and(~filling, jax.random.uniform(swap_key) < 0.5)
    index = jnp.where(filling, jnp.minimum(pool["count"], size - 1),
                      jax.random.randint(index_key, (), 0, size))
    stored = pool["images"][index]
    returned = jnp.where(swap, stored, image)
    write = jnp.logical_or(filling, swap)
    new_images = pool["images"].at[index].set(jnp.where(write, image, stored))
    return {"images": new_images, "count": pool["count"] + filling}, returned

  keys = jax.random.split(key, images.shape[0])
  return jax.lax.scan(one, pool, (images, keys))


def least_squares(outputs: Array, target: float) -> Array:
  return jnp.mean((outputs - target) ** 2)


def mean_abs(x: Array, y: Array) -> Array:
  return jnp.mean(jnp.abs(x - y))


@dataclasses.dataclass(frozen=True)
class CycleGAN:
  generator: nn.Module  # one architecture, two parameter sets: G_AB and G_BA
  discriminator: nn.Module  # D_A and D_B
  cycle_weight: float = 10.0  # lambda, per direction
  identity_weight: float = 0.5  # times lambda
  pool_size: int = 50
  sample_images: dict[str, Array] | None = None  # fixed inputs of the sample grids

  def with_hparams(self, hparams: dict[str, Array]) -> "CycleGAN":
    """This CycleGAN with the (possibly traced) loss weights of the train state."""
    return dataclasses.replace(self, cycle_weight=hparams["cycle_weight"],
                               identity_weight=hparams["identity_weight"])

  def init(self, key: Array, image_shape: tuple[int, ...]) -> tuple[Pytree, Pytree]:
    keys = jax.random.split(key, 4)
    x = jnp.zeros((1, *image_shape))
    params = {
        "generator": {"g_ab": self.generator.init(keys[0], x)["params"],
                      "g_ba": self.generator.init(keys[1], x)["params"]},
        "discriminator": {"d_a": self.discriminator.init(keys[2], x)["params"],
                          "d_b": self.discriminator.init(keys[3], x)["params"]},
    }
    batch_stats = {"generator": {}, "discriminator": {},
                   "pool": {d: empty_pool(self.pool_size, image_shape) for d in DOMAINS}}
    return params, batch_stats

  def _g(self, params, name: str, x: Array) -> Array:
    return self.generator.apply({"params": params["generator"][name]}, x)

  def _d(self, params, name: str, x: Array) -> Array:
    return self.discriminator.apply({"params": params["discriminator"][name]}, x)

  def translate(self, params, batch_stats, images: Array, direction: str) -> Array:
    """direction "a2b" applies G_AB, "b2a" G_BA."""
    return self._g(params, "g_ab" if direction == "a2b" else "g_ba", images)

  def discriminator_loss(self, params, batch_stats, real, key):
    """0.5 (LS(D(real), 1) + LS(D(pooled fake), 0)) for D_B and for D_A."""
    fake_b = jax.lax.stop_gradient(self._g(params, "g_ab", real["a"]))
    fake_a = jax.lax.stop_gradient(self._g(params, "g_ba", real["b"]))
    key_a, key_b = jax.random.split(key)
    pool_a, pooled_a = query_pool(batch_stats["pool"]["a"], fake_a, key_a)
    pool_b, pooled_b = query_pool(batch_stats["pool"]["b"], fake_b, key_b)
    d_a_real, d_a_fake = self._d(params, "d_a", real["a"]), self._d(params, "d_a", pooled_a)
    d_b_real, d_b_fake = self._d(params, "d_b", real["b"]), self._d(params, "d_b", pooled_b)
    d_a_loss = 0.5 * (least_squares(d_a_real, 1.0) + least_squares(d_a_fake, 0.0))
    d_b_loss = 0.5 * (least_squares(d_b_real, 1.0) + least_squares(d_b_fake, 0.0))
    loss = d_a_loss + d_b_loss
    metrics = {"d_loss": loss, "d_a_loss": d_a_loss, "d_b_loss": d_b_loss,
               "d_real": 0.5 * (d_a_real.mean() + d_b_real.mean()),
               "d_fake": 0.5 * (d_a_fake.mean() + d_b_fake.mean())}
    return loss, ({"pool": {"a": pool_a, "b": pool_b}}, metrics)

  def generator_loss(self, params, batch_stats, real, key):
    """LS adversarial + lambda * cycle L1 + identity_weight * lambda * identity L1."""
    del key
    fake_b, fake_a = self._g(params, "g_ab", real["a"]), self._g(params, "g_ba", real["b"])
    cycle_a = mean_abs(self._g(params, "g_ba", fake_b), real["a"])
    cycle_b = mean_abs(self._g(params, "g_ab", fake_a), real["b"])
    identity_a = mean_abs(self._g(params, "g_ba", real["a"]), real["a"])
    identity_b = mean_abs(self._g(params, "g_ab", real["b"]), real["b"])
    adversarial_ab = least_squares(self._d(params, "d_b", fake_b), 1.0)
    adversarial_ba = least_squares(self._d(params, "d_a", fake_a), 1.0)
    weight = self.cycle_weight
    loss = (adversarial_ab + adversarial_ba + weight * (cycle_a + cycle_b)
            + self.identity_weight * weight * (identity_a + identity_b))
    metrics = {"g_loss": loss, "g_adv_ab": adversarial_ab, "g_adv_ba": adversarial_ba,
               "cycle_a": cycle_a, "cycle_b": cycle_b, "identity_a": identity_a,
               "identity_b": identity_b}
    return loss, ({}, metrics)

  def sample_inputs(self, key: Array, count: int) -> dict[str, Array]:
    del key  # the grids translate fixed real images
    return {d: images[:count] for d, images in self.sample_images.items()}

  def sample(self, params, batch_stats, inputs) -> Array:
    """Rows: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B))."""
    fake_b = self._g(params, "g_ab", inputs["a"])
    fake_a = self._g(params, "g_ba", inputs["b"])
    return jnp.concatenate([inputs["a"], fake_b, self._g(params, "g_ba", fake_b),
                            inputs["b"], fake_a, self._g(params, "g_ab", fake_a)])

  @property
  def grid_columns(self) -> int:
    return len(self.sample_images["a"])


def create(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int],
           dtype=jnp.float32, sample_images: dict[str, Array] | None = None) -> CycleGAN:
  model = config.model
  generator = networks.ResnetGenerator(image_shape[-1], model.ngf, model.num_blocks,
                                       model.get("conv_transpose", "auto"), dtype)
  discriminator = networks.PatchDiscriminator(model.ndf, model.num_layers, dtype)
  return CycleGAN(generator, discriminator, config.loss.cycle_weight,
                  config.loss.identity_weight, config.loss.pool_size, sample_images)
