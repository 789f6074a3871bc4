"""Semi-supervised GAN (Salimans et al., 2016, "Improved techniques for training GANs"):
D is a K-class classifier whose K logits l(x) also judge real against fake, through the
implicit fake class: D(x) = Z(x) / (Z(x) + 1) with Z(x) = sum_k exp(l_k(x)), so D's
real/fake logit is logsumexp_k l_k(x). G is trained by feature matching.

The batch holds two kinds of example, drawn every step: `image` from the training split
without its labels (every example outside the labelled subset), and `labeled_image` with
`labeled_label` from the labelled subset, `data.num_labeled` examples (as many of each
class) drawn by `data.labeled_seed`. D minimises
  CE(l(x_lab), y)  +  unsupervised_weight * (BCE real on x  +  BCE fake on G(z)),
the supervised cross-entropy plus the unsupervised terms; with the paper's weight, 1/2,
this is its loss exactly. `loss.unsupervised_weight = 0` is the supervised baseline: the
same network and labelled examples, D never sees an unlabelled or a generated image (G
still trains, against a D that ignores it). G minimises the mean squared distance between
the mean features of real and generated batches on D's last hidden layer.

The networks are the paper's for MNIST (gax/models/ssgan.py). Evaluation adds
`ssl_test_accuracy`, D's accuracy on the held-out split, and it picks the best checkpoint.
"""

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gax import config_base, errors, models
from gax.data import datasets as data_lib
from gax.evaluation import batching
from gax.models import ssgan as networks
from gax.variants import base, gan

HPARAMS = {**gan.HPARAMS, "loss.unsupervised_weight": "unsupervised_weight"}
_LABELED_STREAM = 0x6C6162  # D's key for the labelled batch, folded from its loss key


def add_defaults(config: ml_collections.ConfigDict) -> None:
  gan.add_defaults(config)
  config.model = ml_collections.ConfigDict(dict(
      noise_dim=100,
      noise="uniform",
      g_hidden=(500, 500),
      d_hidden=(1000, 500, 250, 250, 250),
      input_noise=0.3,  # std of D's Gaussian noise on [0, 1] pixels
      hidden_noise=0.5,  # std of D's Gaussian noise before each later layer
      weight_norm=True,
  ))
  config.loss.unsupervised_weight = 0.5
  config.data.num_labeled = 100
  config.data.labeled_seed = 0  # which labelled examples; the same for every run seed


RULES = [
    ("model.noise_dim", config_base.at_least(1), "must be >= 1"),
    ("model.g_hidden", config_base.sizes, "must be a tuple of layer widths >= 1"),
    ("model.d_hidden", config_base.sizes, "must be a tuple of layer widths >= 1"),
    ("model.input_noise", config_base.at_least(0), "must be >= 0 (the std of D's input noise)"),
    ("model.hidden_noise", config_base.at_least(0),
     "must be >= 0 (the std of D's hidden noise)"),
    ("model.weight_norm", lambda v: isinstance(v, bool), "must be True or False"),
    ("loss.unsupervised_weight", config_base.at_least(0), "must be >= 0"),
    ("data.num_labeled", config_base.at_least(1), "must be >= 1 (labelled training examples)"),
    ("data.labeled_seed", config_base.at_least(0), "must be >= 0"),
]


def validate(config: ml_collections.ConfigDict) -> None:
  config_base.check_choice("model.noise", config.model.noise, models.NOISE)
  gan.validate_losses(config)
  config_base.check_rules(config, RULES)
  if config.data.num_labeled < config.batch_size:
    raise errors.ConfigError(
        f"data.num_labeled = {config.data.num_labeled} is smaller than batch_size = "
        f"{config.batch_size}; every step draws a labelled batch of batch_size examples, "
        f"so choose num_labeled >= {config.batch_size} or a smaller batch")


def tiny(config: ml_collections.ConfigDict) -> None:
  config.model.g_hidden, config.model.d_hidden = (32,), (32, 16)


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  subset = dict(num_labeled=config.data.num_labeled, subset_seed=config.data.labeled_seed)
  labeled = data_lib.Source(config.dataset, "train", "labeled", **subset)
  return {"image": data_lib.Field(data_lib.Source(config.dataset, "train", "unlabeled",
                                                  **subset)),
          "labeled_image": data_lib.Field(labeled, "image"),
          "labeled_label": data_lib.Field(labeled, "label")}


def supervised_loss(class_logits: jax.Array, labels: jax.Array) -> jax.Array:
  return optax.softmax_cross_entropy_with_integer_labels(class_logits, labels).mean()


def feature_matching_loss(real_features: jax.Array, fake_features: jax.Array) -> jax.Array:
  """Mean over features of (E[f(x)] - E[f(G(z))])^2; D's side held fixed."""
  real_mean = jax.lax.stop_gradient(jnp.mean(real_features.astype(jnp.float32), axis=0))
  return jnp.mean((real_mean - jnp.mean(fake_features.astype(jnp.float32), axis=0)) ** 2)


@dataclasses.dataclass(frozen=True)
class SSGAN(gan.GAN):
  num_label_classes: int = 10  # D's classes; G itself is unconditional
  unsupervised_weight: jax.Array | float = 0.5

  name: ClassVar[str] = "ssgan"
  best_metric: ClassVar[base.BestMetric] = base.BestMetric("ssl_test_accuracy", True)
  reuses_fake: ClassVar[bool] = False  # feature matching needs the real batch too
  adversarial_metric: ClassVar[str] = "d_loss_unsupervised"  # d_loss adds the supervised CE

  def with_hparams(self, hparams):
    return dataclasses.replace(super().with_hparams(hparams),
                               unsupervised_weight=hparams["unsupervised_weight"])

  def discriminator_loss(self, params, batch_stats, batch, key, fake=None, iteration=0):
    unlabeled, (new_stats, metrics) = super().discriminator_loss(
        params, batch_stats, {"image": batch["image"]}, key, fake, iteration)
    out, d_stats = self._discriminate(params, batch_stats, new_stats["discriminator"],
                                      batch["labeled_image"], None,
                                      jax.random.fold_in(key, _LABELED_STREAM))
    supervised = supervised_loss(out["class_logits"], batch["labeled_label"])
    loss = supervised + self.unsupervised_weight * unlabeled
    accuracy = jnp.mean(out["class_logits"].argmax(-1) == batch["labeled_label"])
    metrics.update(d_loss=loss, d_loss_unsupervised=unlabeled, d_class_loss=supervised,
                   d_class_accuracy_labeled=accuracy)
    return loss, ({**new_stats, "discriminator": d_stats}, metrics)

  def generator_loss(self, params, batch_stats, batch, key):
    noise_key, real_key, fake_key = jax.random.split(key, 3)
    fake, g_stats = self.generate(params, batch_stats, batch, noise_key)
    real_out, d_stats = self._discriminate(params, batch_stats, batch_stats["discriminator"],
                                           batch["image"], None, real_key)
    fake_out, d_stats = self._discriminate(params, batch_stats, d_stats, fake["image"],
                                           None, fake_key)
    loss = feature_matching_loss(real_out["features"], fake_out["features"])
    d_fake = jnp.mean(self.loss.output_to_score(fake_out["logit"]))
    return loss, ({"generator": g_stats, "discriminator": d_stats},
                  {"g_loss": loss, "d_fake_for_g": d_fake})

  def classify(self, params, batch_stats, images) -> jax.Array:
    """D's class predictions for images in [-1, 1], in inference mode (no noise)."""
    out = self.discriminator.apply({"params": params["discriminator"],
                                    "batch_stats": batch_stats["discriminator"]},
                                   images, None, train=False)
    return out["class_logits"].argmax(-1)

  def create_evaluator(self, config: ml_collections.ConfigDict) -> "SSGANEvaluation":
    return SSGANEvaluation(config, self)


class SSGANEvaluation(gan.GANEvaluation):
  """The GAN's evaluation of G's samples, and `ssl_test_accuracy`: D's accuracy as a
  classifier on the held-out split (`eval.split`)."""

  def __init__(self, config: ml_collections.ConfigDict, variant: SSGAN):
    super().__init__(config, variant)
    held_out = data_lib.load_dataset(config.data, config.dataset, config.eval.split)
    if held_out.labels is None:
      raise errors.DataError(f"the ssgan evaluation needs class labels in "
                               f"{config.dataset!r} ({config.eval.split!r}); it has none")
    self.images = data_lib.to_model_range(held_out.images)
    self.labels_held_out = held_out.labels
    self._classify = jax.jit(variant.classify)

  def accuracy(self, state: dict[str, Any]) -> float:
    predictions = batching.in_batches(
        lambda rows: self._classify(state["params"], state["batch_stats"], self.images[rows]),
        len(self.images), self.config.eval.batch_size)
    return float(np.mean(predictions == self.labels_held_out))

  def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
    return {**super().__call__(state), "ssl_test_accuracy": self.accuracy(state)}


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> SSGAN:
  if not info.num_classes:
    raise errors.DataError("the ssgan variant needs class labels; choose a labelled "
                             "dataset (mnist5k, digits, mnist, fashion_mnist, cifar10, ...)")
  dtype = jnp.dtype(config.dtype)
  generator = networks.SSGANGenerator(info.field_shapes["image"], tuple(config.model.g_hidden),
                             config.model.weight_norm, dtype)
  discriminator = networks.SSGANDiscriminator(info.num_classes, tuple(config.model.d_hidden),
                                     config.model.input_noise, config.model.hidden_noise,
                                     config.model.weight_norm, dtype)
  return SSGAN(generator, discriminator, num_label_classes=info.num_classes,
               unsupervised_weight=config.loss.unsupervised_weight,
               **gan.family_fields(config))
