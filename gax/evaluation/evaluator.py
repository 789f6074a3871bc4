"""Evaluation: generated images against held-out real ones, during training and after.

The real side of every comparison is the dataset's held-out split (`config.eval.split`);
features come from a feature network: gax's own digit classifier by default, pytorch-fid's
InceptionV3 (`eval.features="inception"`, whose reference features are cached), or any
`module:function` (see `create_feature_network`). Alongside each metric, the same
metric for real training images against the held-out ones gives the floor a perfect
generator would reach at this sample size. Each variant's evaluator (its
`create_evaluator`) is built from these pieces; training runs it every `eval_every` steps
(gax/training/outputs.py), `python -m gax.evaluate` on a checkpoint
(gax/trained/run.py).
"""

import dataclasses
import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from gax import errors
from gax.data import datasets as data_lib
from gax.evaluation import classifier, inception, inception_weights, metrics
from gax.storage import files

# uint8 images [N, H, W, C] -> (features [N, F], class probabilities [N, C] or None).
FeatureExtractor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
  extract: FeatureExtractor
  accuracy: float | None = None  # the digit classifier's, on the held-out split
  # Names the network, its weights and its resize, where features of real images may be
  # cached on disk (they take minutes with InceptionV3 on a CPU).
  cache_identity: str | None = None


def create_feature_network(eval_config: ml_collections.ConfigDict,
                           train: data_lib.ImageDataset,
                           held_out: data_lib.ImageDataset) -> FeatureNetwork:
  """The network `eval_config.features` names.

  "digit_classifier": gax's CNN, trained on `train` once and cached. "inception":
  pytorch-fid's InceptionV3 with the weights of `eval_config.inception_weights` (or
  $GAX_INCEPTION_WEIGHTS). Anything else is "package.module:function"; gax calls
  function(eval_config, train, held_out) and uses the FeatureExtractor it returns.
  """
  name = eval_config.features
  if name == "digit_classifier":
    recipe = classifier.recipe_of(eval_config)
    extract = classifier.load_or_train(train, held_out, recipe, eval_config.cache_dir)
    return FeatureNetwork(extract, accuracy=extract.accuracy)
  if name == "inception":
    variables, digest = inception_weights.load(eval_config.inception_weights)
    extract = inception.InceptionFeatures(variables, eval_config.inception_resize,
                                          eval_config.inception_batch_size)
    return FeatureNetwork(extract, cache_identity=(
        f"inception-{digest[:16]}-{eval_config.inception_resize}"))
  module_name, sep, function_name = name.partition(":")
  if not sep:
    raise errors.ConfigError(
        f"config.eval.features = {name!r} must be 'digit_classifier', 'inception' or "
        "'package.module:function'")
  try:
    factory = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise errors.ConfigError(
        f"config.eval.features = {name!r} cannot be imported: {e}") from None
  return FeatureNetwork(factory(eval_config, train, held_out))


def _real_features(network: FeatureNetwork, images: np.ndarray, what: str,
                   cache_dir: str | None) -> tuple[np.ndarray, np.ndarray | None]:
  """Features of a set of real images, from the disk cache where the network allows it.

  The cache file is named by `what` (dataset, split, selection) and the network's
  identity, and checked against a digest of the images themselves, so a changed dataset
  or resize is extracted anew rather than read stale.
  """
  if network.cache_identity is None:
    return network.extract(images)
  digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
  path = (Path(cache_dir) if cache_dir else files.cache_dir()) / "features" / (
      f"{what}-{network.cache_identity}-{digest}.npz")
  if path.is_file():
    with np.load(path) as cached:
      return cached["features"], cached["probs"]
  features, probs = network.extract(images)
  logging.info("Caching the features of %s (%d images) in %s", what, len(images), path)
  files.write_npz(path, {"features": features, "probs": probs, "mu": features.mean(0),
                         "sigma": np.cov(features, rowvar=False)})
  return features, probs


def _pixels(images: np.ndarray) -> np.ndarray:
  """Images in [-1, 1] or uint8 -> flattened float32 pixels in [0, 1] (Parzen's space)."""
  if images.dtype == np.uint8:
    flat = images.astype(np.float32) / 255.0
  else:
    flat = (np.asarray(images, np.float32) + 1.0) / 2.0
  return flat.reshape(len(images), -1)


@dataclasses.dataclass
class DatasetEvaluator:
  """Compares images with one dataset's held-out split through a feature extractor."""

  config: ml_collections.ConfigDict  # the run's config
  train: data_lib.ImageDataset
  held_out: data_lib.ImageDataset
  network: FeatureNetwork
  key: jax.Array

  def __post_init__(self):
    self.held_out_features, self.held_out_probs = _real_features(
        self.network, self.held_out.images,
        f"{self.held_out.name}-{self.config.eval.split}", self.config.eval.cache_dir)
    # Parzen: sigma chosen on one half of the held-out split, measured on the other.
    order = np.random.default_rng(0).permutation(len(self.held_out))
    half = len(order) // 2
    self._parzen_validation = _pixels(self.held_out.images[order[:half]])
    self._parzen_test = _pixels(self.held_out.images[order[half:]])
    self._floor = None
    self._floor_extracted = None
    self._conditional_floor = None

  @property
  def classifier_accuracy(self) -> float | None:
    return self.network.accuracy

  def _classes_are_the_datasets(self, probs: np.ndarray | None) -> bool:
    """Whether the network classifies into this dataset's classes (the digit
    classifier does, InceptionV3's 1008 ImageNet logits do not)."""
    return probs is not None and probs.shape[1] == self.held_out.num_classes

  def features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, class probabilities) of uint8 images, or of float ones in [-1, 1]."""
    return self.network.extract(
        images if images.dtype == np.uint8 else data_lib.to_uint8(images))

  def compare(self, images: np.ndarray,
              extracted: tuple[np.ndarray, np.ndarray | None] | None = None
              ) -> dict[str, Any]:
    """Every metric of `images` (uint8, or float in [-1, 1]) against the held-out split;
    `extracted`: their (features, probabilities), when already computed."""
    eval_config = self.config.eval
    features, probs = extracted if extracted is not None else self.features(images)
    kid_mean, kid_std = metrics.kid(features, self.held_out_features, self.key,
                                    eval_config.kid_subsets, eval_config.kid_subset_size)
    precision, recall = metrics.precision_recall(self.held_out_features, features,
                                                 eval_config.pr_k)
    density, coverage = metrics.density_coverage(self.held_out_features, features,
                                                 eval_config.dc_k)
    result = {"fid": metrics.fid(features, self.held_out_features), "kid": kid_mean,
              "kid_std": kid_std, "precision": precision, "recall": recall,
              "density": density, "coverage": coverage, "num_samples": len(images)}
    if probs is not None:
      score, score_std = metrics.inception_score(probs, eval_config.is_splits)
      result.update(inception_score=score, inception_score_std=score_std)
    if self._classes_are_the_datasets(probs):
      histogram = metrics.class_histogram(probs)
      result.update(class_histogram=[round(float(h), 6) for h in histogram],
                    modes_covered=metrics.modes_covered(histogram))
    if eval_config.parzen:
      low, high = eval_config.parzen_sigma_range
      sigmas = np.logspace(np.log10(low), np.log10(high), eval_config.parzen_num_sigmas)
      parzen = metrics.parzen_estimate(_pixels(images), self._parzen_validation,
                                       self._parzen_test, sigmas)
      result.update(parzen_ll=parzen["ll"], parzen_se=parzen["se"],
                    parzen_sigma=parzen["sigma"])
    return result

  def _floor_examples(self) -> np.ndarray:
    """Which real training images stand for a perfect generator (as many as samples)."""
    count = min(self.config.eval.num_samples, len(self.train))
    return np.random.default_rng(1).permutation(len(self.train))[:count]

  def _floor_features(self) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, probabilities) of the floor's training images, extracted once."""
    if self._floor_extracted is None:
      images = self.train.images[self._floor_examples()]
      self._floor_extracted = _real_features(
          self.network, images, f"{self.train.name}-train-floor{len(images)}",
          self.config.eval.cache_dir)
    return self._floor_extracted

  def real_floor(self) -> dict[str, Any]:
    """The metrics of real training images (as many as the samples) against held-out."""
    if self._floor is None:
      self._floor = self.compare(self.train.images[self._floor_examples()],
                                 self._floor_features())
    return self._floor

  def conditional_metrics(self, extracted: tuple[np.ndarray, np.ndarray | None],
                          labels: np.ndarray) -> dict[str, float]:
    """For samples drawn for `labels`: `intra_fid` (the mean over classes of the FID
    between class-c samples and class-c held-out images) and, where the feature network
    classifies into the dataset's classes, `conditional_accuracy` (the share of class-c
    samples it reads as c, averaged over classes); each beside its real floor (real
    training images with their true labels)."""
    if self.held_out.labels is None:
      raise errors.DataError(
          f"conditional metrics need a labelled held-out split; {self.held_out.name!r} "
          "has no labels")
    with_accuracy = self._classes_are_the_datasets(self.held_out_probs)

    def scores(extracted, labels):
      features, probs = extracted
      if not with_accuracy:
        probs = np.zeros((len(features), 1))
      return metrics.conditional_scores(features, probs, labels, self.held_out_features,
                                        self.held_out.labels)

    if self._conditional_floor is None:
      self._conditional_floor = scores(self._floor_features(),
                                       self.train.labels[self._floor_examples()])
    accuracy, fid = scores(extracted, labels)
    floor_accuracy, floor_fid = self._conditional_floor
    result = {"intra_fid": fid, "intra_fid_real_floor": floor_fid}
    if with_accuracy:
      result.update(conditional_accuracy=accuracy,
                    conditional_accuracy_real_floor=floor_accuracy)
    return result


def create_dataset_evaluator(config: ml_collections.ConfigDict,
                             train_source: data_lib.Source,
                             held_out_source: data_lib.Source) -> DatasetEvaluator:
  """An evaluator against `held_out_source`, whose floor and feature network come from
  `train_source`."""
  return dataset_evaluator(config, data_lib.load_source(config.data, train_source),
                           data_lib.load_source(config.data, held_out_source))


def dataset_evaluator(config: ml_collections.ConfigDict, train: data_lib.ImageDataset,
                      held_out: data_lib.ImageDataset) -> DatasetEvaluator:
  """An evaluator against `held_out`, whose floor and feature network come from `train`;
  its random draws (KID's subsets) from the run's seed."""
  network = create_feature_network(config.eval, train, held_out)
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x6576616C)  # "eval"
  return DatasetEvaluator(config, train, held_out, network, key)


def with_floor(result: dict[str, Any], floor: dict[str, Any],
               accuracy: float | None) -> dict[str, Any]:
  """Adds the real floor (`fid_real_floor`, ...) and the classifier's accuracy."""
  names = {"fid": "fid_real_floor", "kid": "kid_real_floor",
           "precision": "precision_real_floor", "recall": "recall_real_floor",
           "density": "density_real_floor", "coverage": "coverage_real_floor",
           "inception_score": "inception_score_real", "parzen_ll": "parzen_ll_real",
           "parzen_se": "parzen_se_real"}
  result = dict(result)
  for name, floor_name in names.items():
    if name in floor:
      result[floor_name] = floor[name]
  result["classifier_accuracy"] = accuracy
  return result


def scalars(result: dict[str, Any]) -> dict[str, float]:
  """The entries of an evaluation result that belong in metrics.jsonl."""
  return {f"eval/{k}": float(v) for k, v in result.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}
