"""The semi-supervised GAN: its labelled subset, its K+1 loss by hand, labels that never
leak from the unlabelled examples, its evaluation, and a bit-for-bit resume."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import load_config, read_metrics, restore_params, straight_and_resumed, tiny

from gax import errors
from gax.data import datasets as data_lib
from gax.training import train
from gax.variants import losses, ssgan


def tiny_ssgan(steps: int = 3, num_labeled: int = 20, evaluate: bool = True):
  config = tiny(load_config("ssgan_mnist", f"num_labeled={num_labeled}"), steps=steps)
  config.eval.num_samples = 50
  if not evaluate:  # (the config evaluates at its last step)
    config.eval_every = 0
  return config


def test_the_labelled_subset_is_fixed_by_its_seed_and_class_balanced():
  labels = data_lib.load_dataset(load_config("ssgan_mnist").data, "mnist5k").labels
  chosen = data_lib.labeled_subset(labels, 10, 100, seed=0)
  np.testing.assert_array_equal(chosen, data_lib.labeled_subset(labels, 10, 100, seed=0))
  assert np.bincount(labels[chosen], minlength=10).tolist() == [10] * 10
  assert len(set(chosen.tolist())) == 100
  assert not np.array_equal(chosen, data_lib.labeled_subset(labels, 10, 100, seed=1))

  config = load_config("ssgan_mnist")
  spec = ssgan.batch_spec(config)
  labeled = data_lib.load_source(config.data, spec["labeled_image"].source)
  unlabeled = data_lib.load_source(config.data, spec["image"].source)
  assert len(labeled) == 100 and len(unlabeled) == 3900
  # The two sides partition the training split.
  everything = data_lib.load_dataset(config.data, "mnist5k")
  np.testing.assert_array_equal(labeled.images, everything.images[chosen])
  rest = np.setdiff1d(np.arange(len(everything)), chosen)
  np.testing.assert_array_equal(unlabeled.images, everything.images[rest])
  # Only the labelled side's labels are read.
  assert [f.feature for f in spec.values() if f.source == spec["image"].source] == ["image"]


def test_a_dataset_without_labels_is_named():
  config = tiny_ssgan()
  config.dataset = "celeb_a"
  with tfds.testing.mock_data(num_examples=8):
    with pytest.raises(errors.DataError, match="needs class labels, and dataset 'celeb_a'"):
      train.create_run(config)


class _LogitsAreThePixels(nn.Module):
  """D whose class logits are its input's pixels: the loss is checked by hand."""

  @nn.compact
  def __call__(self, images, labels=None, train=True):
    del labels, train
    self.param("unused", nn.initializers.zeros, (1,))
    logits = images.reshape((images.shape[0], -1))
    return {"logit": jax.nn.logsumexp(logits, -1), "features": logits,
            "class_logits": logits}


class _FixedImages(nn.Module):
  images: tuple

  @nn.compact
  def __call__(self, z, labels=None, train=True):
    del labels, train
    self.param("unused", nn.initializers.zeros, (1,))
    return jnp.broadcast_to(jnp.asarray(self.images), (z.shape[0], 1, 1, 2))


def test_the_k_plus_one_loss_matches_hand_computed_values():
  # Two classes. Real unlabelled logits (0, ln 3): Z = 4, D(x) = 4/5. Fake logits
  # (ln 1/2, ln 1/2): Z = 1, D(G(z)) = 1/2. Labelled logits (0, ln 3) with label 1:
  # CE = -log(3/4).
  real, fake = (0.0, math.log(3.0)), (math.log(0.5), math.log(0.5))
  variant = ssgan.SSGAN(_FixedImages(((fake,),)), _LogitsAreThePixels(),
                        losses.get_adversarial_loss("non_saturating"), noise_dim=2,
                        num_label_classes=2, unsupervised_weight=0.5)
  params, batch_stats = variant.init(jax.random.key(0))
  batch = {"image": jnp.asarray([[[real]]] * 4), "labeled_image": jnp.asarray([[[real]]] * 4),
           "labeled_label": jnp.ones((4,), jnp.int32)}
  loss, (_, metrics) = variant.discriminator_loss(params, batch_stats, batch,
                                                  jax.random.key(1))
  supervised = -math.log(3 / 4)
  unsupervised = -math.log(4 / 5) - math.log(1 / 2)
  assert float(metrics["d_class_loss"]) == pytest.approx(supervised, rel=1e-6)
  assert float(metrics["d_loss_unsupervised"]) == pytest.approx(unsupervised, rel=1e-6)
  assert float(loss) == pytest.approx(supervised + 0.5 * unsupervised, rel=1e-6)
  assert float(metrics["d_real"]) == pytest.approx(4 / 5, rel=1e-6)
  assert float(metrics["d_fake"]) == pytest.approx(1 / 2, rel=1e-6)
  # Feature matching: mean over features of the squared gap of the batch means.
  g_loss, _ = variant.generator_loss(params, batch_stats, batch, jax.random.key(2))
  expected = np.mean((np.asarray(real) - np.asarray(fake)) ** 2)
  assert float(g_loss) == pytest.approx(expected, rel=1e-6)


def test_unlabelled_examples_never_reach_the_supervised_loss(tmp_path, monkeypatch):
  """Every label outside the labelled subset is poisoned; training is unchanged."""
  clean = tmp_path / "clean"
  train.train_and_evaluate(tiny_ssgan(evaluate=False), str(clean))

  load = data_lib.OFFLINE_DATASETS["mnist5k"]
  drawn = data_lib.labeled_subset

  def poisoned(split, cfg):
    dataset = load(split, cfg)
    keep = drawn(dataset.labels, 10, 20, 0) if split == "train" else np.arange(len(dataset))
    labels = (dataset.labels + 1) % 10
    labels[keep] = dataset.labels[keep]
    return data_lib.ImageDataset(dataset.name, dataset.images, labels, 10)

  chosen = drawn(load("train", None).labels, 10, 20, 0)
  monkeypatch.setitem(data_lib.OFFLINE_DATASETS, "mnist5k", poisoned)
  # The subset as drawn from the true labels (poisoning moves examples between classes).
  monkeypatch.setattr(data_lib, "labeled_subset", lambda *args: chosen)
  train.train_and_evaluate(tiny_ssgan(evaluate=False), str(tmp_path / "poisoned"))
  for a, b in zip(jax.tree.leaves(restore_params(clean, 3)),
                  jax.tree.leaves(restore_params(tmp_path / "poisoned", 3))):
    np.testing.assert_array_equal(a, b)


def test_a_resumed_ssgan_run_ends_bit_for_bit_and_evaluates_its_classifier(tmp_path):
  def make(steps):
    config = tiny_ssgan(steps)
    config.eval_every = 4
    return config

  straight, resumed = straight_and_resumed(make, tmp_path, 4, 2)
  # The stopped run also evaluated at its own end, step 2; everything else is the same.
  assert ([r for r in read_metrics(resumed) if r["step"] != 2 or "eval/fid" not in r]
          == read_metrics(straight))
  for a, b in zip(jax.tree.leaves(restore_params(straight, 4)),
                  jax.tree.leaves(restore_params(resumed, 4))):
    np.testing.assert_array_equal(a, b)
  logged = [r for r in read_metrics(straight) if "d_class_loss" in r]
  assert {"d_loss_unsupervised", "d_class_accuracy_labeled"} <= set(logged[0])
  evaluated = [r for r in read_metrics(straight) if "eval/ssl_test_accuracy" in r]
  assert evaluated and 0.0 <= evaluated[-1]["eval/ssl_test_accuracy"] <= 1.0


def test_the_baseline_is_the_same_d_without_the_unsupervised_terms():
  assert load_config("ssgan_mnist", "baseline=True").loss.unsupervised_weight == 0.0
  real = (0.0, math.log(3.0))
  variant = ssgan.SSGAN(_FixedImages(((real,),)), _LogitsAreThePixels(),
                        losses.get_adversarial_loss("non_saturating"), noise_dim=2,
                        num_label_classes=2, unsupervised_weight=0.0)
  params, batch_stats = variant.init(jax.random.key(0))
  labelled = {"labeled_image": jnp.asarray([[[real]]] * 2),
              "labeled_label": jnp.asarray([0, 1], jnp.int32)}
  losses_seen = [float(variant.discriminator_loss(
      params, batch_stats, {"image": jnp.full((2, 1, 1, 2), pixel), **labelled},
      jax.random.key(1))[0]) for pixel in (-3.0, 5.0)]
  assert losses_seen[0] == losses_seen[1] == pytest.approx(
      -0.5 * (math.log(1 / 4) + math.log(3 / 4)), rel=1e-6)
