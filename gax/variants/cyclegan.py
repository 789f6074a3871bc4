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
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from ml_collections import config_dict

from gax import config_base, errors, models
from gax.data import datasets as data_lib
from gax.data import folders
from gax.evaluation import batching, evaluator, metrics
from gax.models import cyclegan as networks
from gax.variants import base, losses
from gax.variants import ema as ema_lib

Array = jax.Array
Pytree = Any
DOMAINS = ("a", "b")
HPARAMS = {"loss.cycle_weight": "cycle_weight", "loss.identity_weight": "identity_weight"}


def add_defaults(config: ml_collections.ConfigDict) -> None:
  """The paper's networks and losses; domain A is `config.dataset`, B `dataset_b` (or the
  two splits of a TFDS cycle_gan/* dataset)."""
  config.dataset_b = config_dict.placeholder(str)
  config.model = ml_collections.ConfigDict(dict(
      ngf=64, ndf=64, num_blocks=9, num_layers=3, conv_transpose="auto"))
  config.loss = ml_collections.ConfigDict(dict(
      cycle_weight=10.0,  # lambda, per direction
      identity_weight=0.5,  # times lambda
      pool_size=50,  # fakes kept per domain for D
  ))


RULES = [
    *((f"model.{name}", config_base.at_least(1), "must be >= 1") for name in (
        "ngf", "ndf", "num_layers")),
    ("model.num_blocks", config_base.at_least(0), "must be >= 0"),
    *((f"loss.{name}", config_base.at_least(0), "must be >= 0") for name in (
        "cycle_weight", "identity_weight", "pool_size")),
]


def validate(config: ml_collections.ConfigDict) -> None:
  config_base.check_choice("model.conv_transpose", config.model.conv_transpose,
                           models.CONV_TRANSPOSE)
  config_base.check_rules(config, RULES)


def tiny(config: ml_collections.ConfigDict) -> None:
  config.batch_size = 2
  config.model.ngf = config.model.ndf = 8
  config.model.num_blocks = 1
  if config.data.crop_size:  # 286 -> 256 becomes 36 -> 32
    config.data.image_size, config.data.crop_size = 36, 32


def domain_sources(config: ml_collections.ConfigDict, split: str
                   ) -> dict[str, data_lib.Source]:
  """Each domain's source: the two splits of a TFDS `cycle_gan/*` dataset or of a folder
  laid out as the official code's datasets (trainA/trainB, testA/testB), or `dataset`
  and `dataset_b`'s same split."""
  dataset, dataset_b = config.dataset, config.dataset_b
  two_domains = dataset.startswith("cycle_gan/") or folders.has_domains(dataset)
  if two_domains and not dataset_b:
    return {"a": data_lib.Source(dataset, f"{split}A"),
            "b": data_lib.Source(dataset, f"{split}B")}
  if not dataset_b:
    raise errors.DataError(
        "unpaired training needs two domains: a TFDS cycle_gan/* dataset, a folder:PATH "
        "with trainA/ and trainB/, or "
        "config.dataset (domain A) and config.dataset_b (domain B)")
  return {"a": data_lib.Source(dataset, split), "b": data_lib.Source(dataset_b, split)}


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  """Two unpaired domains, each in its own order."""
  return {domain: data_lib.Field(source)
          for domain, source in domain_sources(config, "train").items()}


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


def mean_abs(x: Array, y: Array) -> Array:
  return jnp.mean(jnp.abs(x - y))


@dataclasses.dataclass(frozen=True)
class CycleGAN:
  generator: nn.Module  # one architecture, two parameter sets: G_AB and G_BA
  discriminator: nn.Module  # D_A and D_B
  image_shape: tuple[int, int, int]
  cycle_weight: float = 10.0  # lambda, per direction
  identity_weight: float = 0.5  # times lambda
  pool_size: int = 50

  name: ClassVar[str] = "cyclegan"
  best_metric: ClassVar[base.BestMetric] = base.BestMetric("fid_mean")
  reuses_fake: ClassVar[bool] = False  # the G step makes four translations of its own
  sampler: ClassVar[None] = None  # it translates images; it does not draw from noise
  scorer: ClassVar[None] = None  # two discriminators, each over patches

  def with_hparams(self, hparams: dict[str, Array]) -> "CycleGAN":
    """This CycleGAN with the (possibly traced) loss weights of the train state."""
    return dataclasses.replace(self, cycle_weight=hparams["cycle_weight"],
                               identity_weight=hparams["identity_weight"])

  def init(self, key: Array) -> tuple[Pytree, Pytree]:
    keys = jax.random.split(key, 4)
    x = jnp.zeros((1, *self.image_shape))
    params = {
        "generator": {"g_ab": self.generator.init(keys[0], x)["params"],
                      "g_ba": self.generator.init(keys[1], x)["params"]},
        "discriminator": {"d_a": self.discriminator.init(keys[2], x)["params"],
                          "d_b": self.discriminator.init(keys[3], x)["params"]},
    }
    batch_stats = {"generator": {}, "discriminator": {},
                   "pool": {d: empty_pool(self.pool_size, self.image_shape)
                            for d in DOMAINS}}
    return params, batch_stats

  def _g(self, params, name: str, x: Array) -> Array:
    return self.generator.apply({"params": params["generator"][name]}, x)

  def _d(self, params, name: str, x: Array) -> Array:
    return self.discriminator.apply({"params": params["discriminator"][name]}, x)

  def translate(self, params, batch_stats, images: Array, direction: str) -> Array:
    """direction "a2b" applies G_AB, "b2a" G_BA."""
    return self._g(params, "g_ab" if direction == "a2b" else "g_ba", images)

  def discriminator_loss(self, params, batch_stats, real, key, fake=None, iteration=0):
    """0.5 (LS(D(real), 1) + LS(D(pooled fake), 0)) for D_B and for D_A."""
    del fake, iteration  # reuses_fake is False: the factory never passes a fake batch
    fake_b = jax.lax.stop_gradient(self._g(params, "g_ab", real["a"]))
    fake_a = jax.lax.stop_gradient(self._g(params, "g_ba", real["b"]))
    key_a, key_b = jax.random.split(key)
    pool_a, pooled_a = query_pool(batch_stats["pool"]["a"], fake_a, key_a)
    pool_b, pooled_b = query_pool(batch_stats["pool"]["b"], fake_b, key_b)
    d_a_real, d_a_fake = self._d(params, "d_a", real["a"]), self._d(params, "d_a", pooled_a)
    d_b_real, d_b_fake = self._d(params, "d_b", real["b"]), self._d(params, "d_b", pooled_b)
    d_a_loss = losses.least_squares_discriminator_loss(d_a_real, d_a_fake, 0.0, 1.0)
    d_b_loss = losses.least_squares_discriminator_loss(d_b_real, d_b_fake, 0.0, 1.0)
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
    # The official code's G takes the mean squared error, without LSGAN's factor 1/2.
    adversarial_ab = 2 * losses.least_squares_generator_loss(self._d(params, "d_b", fake_b), 1.0)
    adversarial_ba = 2 * losses.least_squares_generator_loss(self._d(params, "d_a", fake_a), 1.0)
    weight = self.cycle_weight
    loss = (adversarial_ab + adversarial_ba + weight * (cycle_a + cycle_b)
            + self.identity_weight * weight * (identity_a + identity_b))
    metrics = {"g_loss": loss, "g_adv_ab": adversarial_ab, "g_adv_ba": adversarial_ba,
               "cycle_a": cycle_a, "cycle_b": cycle_b, "identity_a": identity_a,
               "identity_b": identity_b}
    return loss, ({}, metrics)

  def sample_inputs(self, key: Array, count: int, examples) -> dict[str, Array]:
    """Fixed real images of each domain, `count // 8` of them (six rows per grid)."""
    del key  # the grids translate fixed real images
    return {d: data_lib.to_model_range(examples(d, self.grid_columns(count)))
            for d in DOMAINS}

  def sample(self, params, batch_stats, inputs) -> Array:
    """Rows: A, G_AB(A), G_BA(G_AB(A)), B, G_BA(B), G_AB(G_BA(B))."""
    fake_b = self._g(params, "g_ab", inputs["a"])
    fake_a = self._g(params, "g_ba", inputs["b"])
    return jnp.concatenate([inputs["a"], fake_b, self._g(params, "g_ba", fake_b),
                            inputs["b"], fake_a, self._g(params, "g_ab", fake_a)])

  def grid_columns(self, count: int) -> int:
    return max(1, count // 8)

  def create_evaluator(self, config: ml_collections.ConfigDict) -> "CycleGANEvaluation":
    return CycleGANEvaluation(config, self)


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> CycleGAN:
  model, dtype = config.model, jnp.dtype(config.dtype)
  image_shape = info.field_shapes["a"]
  if info.field_shapes["b"] != image_shape:
    raise errors.DataError(f"the two domains' images differ in shape ({image_shape} and "
                             f"{info.field_shapes['b']}); set data.image_size")
  generator = networks.ResnetGenerator(image_shape[-1], model.ngf, model.num_blocks,
                                       model.conv_transpose, dtype)
  discriminator = networks.PatchDiscriminator(model.ndf, model.num_layers, dtype)
  return CycleGAN(generator, discriminator, tuple(image_shape), config.loss.cycle_weight,
                  config.loss.identity_weight, config.loss.pool_size)


class CycleGANEvaluation:
  """Translates each domain's held-out images and measures, per direction: label
  preservation (the target domain's classifier still reads the source label), the
  cycle L1 error, and FID (with its real floor) in the target domain; `fid_mean` is the
  mean of the two FIDs."""

  def __init__(self, config: ml_collections.ConfigDict, variant: CycleGAN):
    self.config, self.variant = config, variant
    held_out = domain_sources(config, config.eval.split)
    train = domain_sources(config, "train")
    self.evaluators = {domain: evaluator.create_dataset_evaluator(config, train[domain],
                                                                   source)
                       for domain, source in held_out.items()}
    self._translate = jax.jit(variant.translate, static_argnums=3)

  def _translated(self, state, images: np.ndarray, direction: str) -> np.ndarray:
    params, batch_stats = ema_lib.generator_state(state)
    return batching.in_batches(lambda rows: self._translate(
        params, batch_stats, data_lib.to_model_range(images[rows]), direction), len(images),
        self.config.eval.batch_size)

  def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
    result = {}
    for source, target in (("a", "b"), ("b", "a")):
      direction = f"{source}2{target}"
      held_out = self.evaluators[source].held_out
      count = min(self.config.eval.num_samples, len(held_out))
      images, labels = held_out.images[:count], held_out.labels
      translated = self._translated(state, images, direction)
      back = self._translated(state, data_lib.to_uint8(translated),
                              f"{target}2{source}")
      target_evaluator = self.evaluators[target]
      features, probs = target_evaluator.features(translated)
      result[f"fid_{target}"] = metrics.fid(features, target_evaluator.held_out_features)
      result[f"fid_{target}_real_floor"] = target_evaluator.real_floor()["fid"]
      result[f"cycle_l1_{source}"] = float(np.mean(np.abs(
          back - data_lib.to_model_range(images))))
      if labels is not None and probs is not None:
        result[f"label_preservation_{direction}"] = float(
            np.mean(probs.argmax(axis=1) == labels[:count]))
      result[f"classifier_accuracy_{target}"] = target_evaluator.classifier_accuracy
    result["fid_mean"] = float(np.mean([result["fid_a"], result["fid_b"]]))
    return result
