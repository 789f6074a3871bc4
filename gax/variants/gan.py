"""The single generator/discriminator GAN: vanilla GAN, DCGAN and LSGAN.

What distinguishes the three is data only: which networks (`config.model.name`) and
which adversarial loss (`config.loss.name`). The same class serves the class-conditional
variants (gax/variants/cgan.py, acgan.py): with `num_classes` > 0 the batch carries
"label", G draws for labels drawn uniformly, D judges (image, label) pairs, the sample
grid has one row per class, and the evaluation adds the conditional metrics.

The stabilisers are part of the same losses: a gradient penalty on D's input
(`loss.penalty`, gax/variants/penalties.py) sees D as a critic closed over the step's labels,
augmentation and dropout; every image D sees, real or fake, in the D and the G step, goes
through `config.augment` (gax/variants/augment.py), whose adaptive p lives in
`batch_stats["augment"]`; D's loss reports r_t = E[sign(D(x_real))], ADA's signal.
"""

import dataclasses
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gax import config_base, models
from gax.data import datasets as data_lib
from gax.evaluation import batching, evaluator
from gax.variants import augment, base, losses, penalties
from gax.variants import ema as ema_lib

Array = jax.Array
Pytree = Any
HPARAMS = {"loss.penalty_weight": "penalty_weight"}
_AUGMENT_STREAM = 0x61756744  # the augmentation's key, folded from a D call's key
_PENALTY_STREAM = 3  # the penalty's key, folded from D's loss key


def add_defaults(config: ml_collections.ConfigDict, model: str = "dcgan28") -> None:
  config.model = models.default_config(model)
  config.loss = ml_collections.ConfigDict(dict(
      name="non_saturating",
      a=0.0, b=1.0, c=1.0,  # least_squares: fake, real, and what G wants D to say
      penalty="none",  # gradient penalty on D's input: "wgan_gp", "zero_gp", "r1"
      penalty_weight=10.0,  # lambda (wgan_gp, zero_gp) or gamma (r1)
      penalty_every=1,  # > 1: lazy, on every N-th D update, weighted N times
  ))
  config.augment = ml_collections.ConfigDict(dict(
      name="none",  # "diffaugment" (each op with probability p) or "ada" (adaptive p)
      ops="color,translation,cutout",  # DiffAugment's policy
      p=1.0,  # diffaugment: each op's probability (ADA's p starts at 0)
      target=0.6,  # ada: the r_t that p steers towards
      ada_kimg=100,  # ada: thousands of real images over which p can go from 0 to 1
  ))


# (field, test, what it must be): the family's loss, penalty and augmentation fields.
RULES = [
    ("loss.penalty_weight", config_base.at_least(0),
     "must be >= 0 (the penalty's lambda or gamma)"),
    ("loss.penalty_every", config_base.at_least(1), "must be >= 1 (D updates per penalty)"),
    ("augment.p", config_base.probability, "must be in [0, 1]"),
    ("augment.target", lambda v: isinstance(v, (int, float)) and -1 < v < 1,
     "must be in (-1, 1) (ADA's target for E[sign(D(x_real))])"),
    ("augment.ada_kimg", config_base.positive, "must be > 0"),
]


def validate_losses(config: ml_collections.ConfigDict) -> None:
  """The family's loss, gradient penalty and augmentation fields."""
  config_base.check_choice("loss.name", config.loss.name, losses.LOSS_NAMES)
  config_base.check_choice("loss.penalty", config.loss.penalty, penalties.PENALTIES)
  config_base.check_rules(config, RULES)
  augment.from_config(config)


def validate(config: ml_collections.ConfigDict) -> None:
  models.validate(config)
  validate_losses(config)


def tiny(config: ml_collections.ConfigDict) -> None:
  models.tiny(config)


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  return {"image": data_lib.Field(data_lib.Source(config.dataset))}


def adversarial_loss(config: ml_collections.ConfigDict) -> losses.AdversarialLoss:
  return losses.get_adversarial_loss(config.loss.name, config.loss.a, config.loss.b,
                                     config.loss.c)


def penalty(config: ml_collections.ConfigDict) -> penalties.Penalty:
  return penalties.Penalty(config.loss.penalty, config.loss.penalty_weight,
                           config.loss.penalty_every)


def family_fields(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The GAN's fields that every member of the family takes from the config alike."""
  return dict(loss=adversarial_loss(config), noise_dim=config.model.noise_dim,
              noise=config.model.noise, penalty=penalty(config),
              augmentation=augment.from_config(config))


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> "GAN":
  generator, discriminator = models.create_networks(
      config.model, info.field_shapes["image"], jnp.dtype(config.dtype))
  return GAN(generator, discriminator, **family_fields(config))


@dataclasses.dataclass(frozen=True)
class GAN:
  """Networks and losses of a generator G(z[, y]) against a discriminator D(x[, y])."""

  generator: nn.Module
  discriminator: nn.Module  # returns {"logit", "features"[, "class_logits"]}
  loss: losses.AdversarialLoss
  noise_dim: int
  noise: str = "normal"
  num_classes: int = 0  # > 0: G and D are conditioned on a class label
  penalty: penalties.Penalty = penalties.Penalty()
  augmentation: augment.Augmentation = augment.Augmentation()

  name: ClassVar[str] = "gan"
  best_metric: ClassVar[base.BestMetric] = base.BestMetric("fid")
  reuses_fake: ClassVar[bool] = True
  adversarial_metric: ClassVar[str] = "d_loss"

  @property
  def sampler(self) -> "GAN":
    return self

  @property
  def scorer(self) -> "GAN":
    return self

  def score(self, params, batch_stats, images, labels=None) -> Array:
    out = self.discriminator.apply({"params": params["discriminator"],
                                    "batch_stats": batch_stats["discriminator"]},
                                   images, labels, train=False)
    return out["logit"].astype(jnp.float32)

  def with_hparams(self, hparams: dict[str, Array]) -> "GAN":
    return dataclasses.replace(self, penalty=dataclasses.replace(
        self.penalty, weight=hparams["penalty_weight"]))

  def sample_noise(self, key: Array, count: int) -> Array:
    if self.noise == "uniform":
      # Unit variance, as in the paper's pylearn2 code.
      return jax.random.uniform(key, (count, self.noise_dim), minval=-3 ** 0.5,
                                maxval=3 ** 0.5)
    return jax.random.normal(key, (count, self.noise_dim))

  def _example_labels(self, count: int) -> Array | None:
    return jnp.zeros((count,), jnp.int32) if self.num_classes else None

  def init(self, key: Array) -> tuple[Pytree, Pytree]:
    g_key, d_key = jax.random.split(key)
    noise = self.sample_noise(g_key, 2)
    g_vars = self.generator.init(g_key, noise, self._example_labels(2), train=False)
    images = jax.eval_shape(lambda: self.generator.apply(g_vars, noise,
                                                         self._example_labels(2),
                                                         train=False))
    d_vars = self.discriminator.init(d_key, jnp.zeros(images.shape),
                                     self._example_labels(2), train=False)
    params = {"generator": g_vars["params"], "discriminator": d_vars["params"]}
    batch_stats = {"generator": g_vars.get("batch_stats", {}),
                   "discriminator": d_vars.get("batch_stats", {})}
    if self.augmentation.adaptive:
      batch_stats["augment"] = self.augmentation.initial_state()
    return params, batch_stats

  def _generate(self, params, batch_stats, z, labels, train: bool):
    variables = {"params": params["generator"], "batch_stats": batch_stats["generator"]}
    if not train:
      return self.generator.apply(variables, z, labels, train=False), {}
    fake, updates = self.generator.apply(variables, z, labels, train=True,
                                         mutable=["batch_stats"])
    return fake, updates["batch_stats"]

  def _discriminate(self, params, batch_stats, d_stats, images, labels, key):
    """D's outputs on the augmented images, in training mode, and its new statistics
    (`d_stats`: D's statistics so far this step)."""
    images = self.augmentation.apply(images, jax.random.fold_in(key, _AUGMENT_STREAM),
                                     batch_stats.get("augment"))
    out, updates = self.discriminator.apply(
        {"params": params["discriminator"], "batch_stats": d_stats}, images, labels,
        train=True, mutable=["batch_stats"], rngs={"dropout": key})
    return out, updates["batch_stats"]

  def generate(self, params, batch_stats, batch, key):
    """A training fake batch from fresh noise (and uniformly drawn labels)."""
    count = batch["image"].shape[0]
    fake = {}
    if self.num_classes:
      fake["label"] = jax.random.randint(jax.random.fold_in(key, 1), (count,), 0,
                                         self.num_classes)
    fake["image"], g_stats = self._generate(params, batch_stats,
                                            self.sample_noise(key, count),
                                            fake.get("label"), True)
    return fake, g_stats

  def discriminator_terms(self, real_out, fake_out, batch, fake
                          ) -> tuple[Array, dict[str, Array]]:
    """Terms a subclass adds to D's loss (ACGAN's class likelihood); none here."""
    del real_out, fake_out, batch, fake
    return jnp.zeros((), jnp.float32), {}

  def generator_terms(self, fake_out, fake) -> tuple[Array, dict[str, Array]]:
    """Terms a subclass adds to G's loss; none here."""
    del fake_out, fake
    return jnp.zeros((), jnp.float32), {}

  def discriminator_loss(self, params, batch_stats, batch, key, fake=None, iteration=0):
    """D's loss on a real batch and a fake one, fresh unless given; `iteration` counts
    the D updates before this one (a lazy penalty's schedule)."""
    noise_key, real_key, fake_key = jax.random.split(key, 3)
    g_stats = {}
    if fake is None:
      fake, g_stats = self.generate(params, batch_stats, batch, noise_key)
    fake = jax.lax.stop_gradient(fake)
    labels = batch.get("label")
    real_out, d_stats = self._discriminate(params, batch_stats, batch_stats["discriminator"],
                                           batch["image"], labels, real_key)
    fake_out, d_stats = self._discriminate(params, batch_stats, d_stats, fake["image"],
                                           fake.get("label"), fake_key)
    real_logit = real_out["logit"].astype(jnp.float32)
    fake_logit = fake_out["logit"].astype(jnp.float32)
    adversarial = self.loss.discriminator(real_logit, fake_logit)
    extra, extra_metrics = self.discriminator_terms(real_out, fake_out, batch, fake)
    loss = adversarial + extra
    real_signs = jnp.sign(jax.lax.stop_gradient(real_logit) - self.loss.threshold)
    metrics = {"d_real": jnp.mean(self.loss.output_to_score(real_logit)),
               "d_fake": jnp.mean(self.loss.output_to_score(fake_logit)),
               "r_t": jnp.mean(real_signs), **extra_metrics}
    if self.penalty.active:
      # The penalty differentiates D as the real images met it: same labels, dropout
      # and augmentation; its statistics updates are not kept.
      critic = lambda images: self._discriminate(params, batch_stats, d_stats, images,
                                                 labels, real_key)[0]["logit"]
      metrics["d_penalty"] = self.penalty(critic, batch["image"], fake["image"],
                                          jax.random.fold_in(key, _PENALTY_STREAM),
                                          iteration)
      loss = loss + metrics["d_penalty"]
    new_stats = {"generator": g_stats, "discriminator": d_stats}
    if self.augmentation.adaptive:
      new_stats["augment"] = self.augmentation.adapt(batch_stats["augment"], real_signs)
      metrics["augment_p"] = new_stats["augment"]["p"]
    return loss, (new_stats, {"d_loss": loss, **metrics})

  def generator_loss(self, params, batch_stats, batch, key):
    """G's loss on a fresh fake batch."""
    noise_key, fake_key = jax.random.split(key)
    fake, g_stats = self.generate(params, batch_stats, batch, noise_key)
    loss, (stats, metrics) = self.generator_loss_on_fake(params, batch_stats, fake,
                                                         fake_key)
    return loss, ({**stats, "generator": g_stats}, metrics)

  def generator_loss_on_fake(self, params, batch_stats, fake, key):
    fake_out, d_stats = self._discriminate(params, batch_stats, batch_stats["discriminator"],
                                           fake["image"], fake.get("label"), key)
    fake_logit = fake_out["logit"].astype(jnp.float32)
    extra, extra_metrics = self.generator_terms(fake_out, fake)
    loss = self.loss.generator(fake_logit) + extra
    metrics = {"g_loss": loss,
               "d_fake_for_g": jnp.mean(self.loss.output_to_score(fake_logit)),
               **extra_metrics}
    return loss, ({"discriminator": d_stats}, metrics)

  def draw(self, params, batch_stats, noise, labels=None):
    return self._generate(params, batch_stats, noise, labels, train=False)[0]

  def _grid_shape(self, count: int) -> tuple[int, int]:
    """(rows, columns): one row per class when conditional."""
    if not self.num_classes:
      return 1, count
    return self.num_classes, max(1, count // self.num_classes)

  def sample_inputs(self, key: Array, count: int, examples=None) -> dict[str, Array]:
    """Fixed noise vectors; conditional: one row per class, the same noise per column."""
    rows, columns = self._grid_shape(count)
    if not self.num_classes:
      return {"noise": self.sample_noise(key, count)}
    noise = self.sample_noise(key, columns)
    return {"noise": jnp.tile(noise, (rows, 1)),
            "label": jnp.repeat(jnp.arange(rows, dtype=jnp.int32), columns)}

  def sample(self, params, batch_stats, inputs) -> Array:
    return self.draw(params, batch_stats, inputs["noise"], inputs.get("label"))

  def grid_columns(self, count: int) -> int | None:
    return self._grid_shape(count)[1] if self.num_classes else None

  def create_evaluator(self, config: ml_collections.ConfigDict) -> "GANEvaluation":
    return GANEvaluation(config, self)


class GANEvaluation:
  """Draws `eval.num_samples` images (balanced over the classes when conditional) and
  compares them with the dataset's held-out split."""

  def __init__(self, config: ml_collections.ConfigDict, variant: GAN):
    self.config, self.variant = config, variant
    self.evaluator = evaluator.create_dataset_evaluator(
        config, data_lib.Source(config.dataset, "train"),
        data_lib.Source(config.dataset, config.eval.split))
    self._draw = jax.jit(variant.draw)

  def labels(self) -> np.ndarray | None:
    """Balanced labels for the evaluation samples (class c for every c-th sample)."""
    if not self.variant.num_classes:
      return None
    return np.arange(self.config.eval.num_samples, dtype=np.int32) % self.variant.num_classes

  def generate(self, state: dict[str, Any], labels: np.ndarray | None = None) -> np.ndarray:
    """eval.num_samples images from G in inference mode, float in [-1, 1]."""
    count, batch_size = self.config.eval.num_samples, self.config.eval.batch_size
    params, batch_stats = ema_lib.generator_state(state)

    def draw(rows: slice):
      noise = self.variant.sample_noise(
          jax.random.fold_in(self.evaluator.key, rows.start // batch_size),
          rows.stop - rows.start)
      return self._draw(params, batch_stats, noise,
                        None if labels is None else jnp.asarray(labels[rows]))

    return batching.in_batches(draw, count, batch_size).astype(np.float32)

  def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
    labels = self.labels()
    images = self.generate(state, labels)
    extracted = self.evaluator.features(images)
    result = evaluator.with_floor(self.evaluator.compare(images, extracted),
                                   self.evaluator.real_floor(),
                                   self.evaluator.classifier_accuracy)
    if labels is not None:
      result.update(self.evaluator.conditional_metrics(extracted, labels))
    return result
