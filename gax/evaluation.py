"""Evaluation of a train state: generated images against held-out real ones.

The real side of every comparison is the dataset's held-out split (`config.eval.split`);
features come from a feature extractor: gax's own digit classifier by default, or any
`module:function` (see `create_feature_extractor`). Alongside each metric, the same
metric for real training images against the held-out ones gives the floor a perfect
generator would reach at this sample size.
"""

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import numpy as np

from gax import classifier, config_base, metrics
from gax import data as data_lib

# uint8 images [N, H, W, C] -> (features [N, F], class probabilities [N, C] or None).
FeatureExtractor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


def create_feature_extractor(eval_config: ml_collections.ConfigDict,
                             train: data_lib.ImageDataset,
                             held_out: data_lib.ImageDataset) -> FeatureExtractor:
  """The extractor `eval_config.features` names.

  "digit_classifier": gax's CNN, trained on `train` once and cached. Anything else is
  "package.module:function"; gax calls function(eval_config, train, held_out) and uses
  what it returns. That is the seam for InceptionV3 or any other pretrained network.
  """
  name = eval_config.features
  if name == "digit_classifier":
    recipe = classifier.ClassifierRecipe(seed=eval_config.classifier_seed)
    return classifier.load_or_train(train, held_out, recipe, eval_config.cache_dir)
  module_name, sep, function_name = name.partition(":")
  if not sep:
    raise config_base.ConfigError(
        f"config.eval.features = {name!r} must be 'digit_classifier' or "
        "'package.module:function'")
  try:
    factory = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise config_base.ConfigError(
        f"config.eval.features = {name!r} cannot be imported: {e}") from None
  return factory(eval_config, train, held_out)


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
  extract: FeatureExtractor
  key: jax.Array

  def __post_init__(self):
    self.held_out_features, self.held_out_probs = self.extract(self.held_out.images)
    # Parzen: sigma chosen on one half of the held-out split, measured on the other.
    order = np.random.default_rng(0).permutation(len(self.held_out))
    half = len(order) // 2
    self._parzen_validation = _pixels(self.held_out.images[order[:half]])
    self._parzen_test = _pixels(self.held_out.images[order[half:]])
    self._floor = None

  @property
  def classifier_accuracy(self) -> float | None:
    return getattr(self.extract, "accuracy", None)

  def features(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(features, class probabilities) of uint8 images, or of float ones in [-1, 1]."""
    return self.extract(images if images.dtype == np.uint8 else data_lib.to_uint8(images))

  def compare(self, images: np.ndarray) -> dict[str, Any]:
    """Every metric of `images` (uint8, or float in [-1, 1]) against the held-out split."""
    eval_config = self.config.eval
    features, probs = self.features(images)
    kid_mean, kid_std = metrics.kid(features, self.held_out_features, self.key,
                                    eval_config.kid_subsets, eval_config.kid_subset_size)
    precision, recall = metrics.precision_recall(self.held_out_features, features,
                                                 eval_config.pr_k)
    result = {"fid": metrics.fid(features, self.held_out_features), "kid": kid_mean,
              "kid_std": kid_std, "precision": precision, "recall": recall,
              "num_samples": len(images)}
    if probs is not None:
      score, score_std = metrics.inception_score(probs, eval_config.is_splits)
      histogram = metrics.class_histogram(probs)
      result.update(inception_score=score, inception_score_std=score_std,
                    class_histogram=[round(float(h), 6) for h in histogram],
                    modes_covered=metrics.modes_covered(histogram))
    if eval_config.parzen:
      low, high = eval_config.parzen_sigma_range
      sigmas = np.logspace(np.log10(low), np.log10(high), eval_config.parzen_num_sigmas)
      parzen = metrics.parzen_estimate(_pixels(images), self._parzen_validation,
                                       self._parzen_test, sigmas)
      result.update(parzen_ll=parzen["ll"], parzen_se=parzen["se"],
                    parzen_sigma=parzen["sigma"])
    return result

  def real_floor(self) -> dict[str, Any]:
    """The metrics of real training images (as many as the samples) against held-out."""
    if self._floor is None:
      count = min(self.config.eval.num_samples, len(self.train))
      chosen = np.random.default_rng(1).permutation(len(self.train))[:count]
      self._floor = self.compare(self.train.images[chosen])
    return self._floor


def create_dataset_evaluator(config: ml_collections.ConfigDict, train_source: tuple,
                             held_out_source: tuple) -> DatasetEvaluator:
  """An evaluator against `held_out_source`, whose floor and feature network come from
  `train_source`; each source is (dataset name, split)."""
  train = data_lib.load_dataset(config.data, *train_source)
  held_out = data_lib.load_dataset(config.data, *held_out_source)
  extract = create_feature_extractor(config.eval, train, held_out)
  key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0x6576616C)  # "eval"
  return DatasetEvaluator(config, train, held_out, extract, key)


def with_floor(result: dict[str, Any], floor: dict[str, Any],
               accuracy: float | None) -> dict[str, Any]:
  """Adds the real floor (`fid_real_floor`, ...) and the classifier's accuracy."""
  names = {"fid": "fid_real_floor", "kid": "kid_real_floor",
           "precision": "precision_real_floor", "recall": "recall_real_floor",
           "inception_score": "inception_score_real", "parzen_ll": "parzen_ll_real",
           "parzen_se": "parzen_se_real"}
  result = dict(result)
  for name, floor_name in names.items():
    if name in floor:
      result[floor_name] = floor[name]
  result["classifier_accuracy"] = accuracy
  return result


class GANEvaluation:
  """Evaluates a single-generator GAN (vanilla GAN, DCGAN, LSGAN) on its dataset."""

  def __init__(self, config: ml_collections.ConfigDict, variant):
    self.config, self.variant = config, variant
    self.evaluator = create_dataset_evaluator(config, (config.dataset, "train"),
                                              (config.dataset, config.eval.split))
    self._sample = jax.jit(variant.sample)

  def generate(self, state: dict[str, Any]) -> np.ndarray:
    """eval.num_samples images from G in inference mode, float in [-1, 1]."""
    count, batch_size = self.config.eval.num_samples, self.config.eval.batch_size
    batches = []
    for i, start in enumerate(range(0, count, batch_size)):
      inputs = self.variant.sample_inputs(jax.random.fold_in(self.evaluator.key, i),
                                          min(batch_size, count - start))
      batches.append(np.asarray(self._sample(state["params"], state["batch_stats"], inputs),
                                np.float32))
    return np.concatenate(batches)

  def __call__(self, state: dict[str, Any]) -> dict[str, Any]:
    return with_floor(self.evaluator.compare(self.generate(state)),
                      self.evaluator.real_floor(), self.evaluator.classifier_accuracy)


class CycleGANEvaluation:
  """Translates each domain's held-out images and measures, per direction: label
  preservation (the target domain's classifier still reads the source label), the
  cycle L1 error, and FID (with its real floor) in the target domain."""

  def __init__(self, config: ml_collections.ConfigDict, variant):
    self.config, self.variant = config, variant
    held_out = data_lib.domain_sources(config.dataset, config.get("dataset_b"),
                                       config.eval.split)
    train = data_lib.domain_sources(config.dataset, config.get("dataset_b"), "train")
    self.evaluators = {domain: create_dataset_evaluator(config, train[domain], source)
                       for domain, source in held_out.items()}
    self._translate = jax.jit(variant.translate, static_argnums=3)

  def _translated(self, state, images: np.ndarray, direction: str) -> np.ndarray:
    batch = self.config.eval.batch_size
    return np.concatenate([np.asarray(self._translate(
        state["params"], state["batch_stats"],
        data_lib.to_model_range(images[start:start + batch]), direction))
        for start in range(0, len(images), batch)])

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
    return result


EVALUATIONS: dict[str, Callable[[ml_collections.ConfigDict, Any], Callable]] = {
    "gan": GANEvaluation,
    "cyclegan": CycleGANEvaluation,
}


def create_evaluation(config: ml_collections.ConfigDict, variant) -> Callable:
  """A function from train state to a dict of metrics, for the config's variant."""
  return EVALUATIONS[config.variant](config, variant)


def scalars(result: dict[str, Any]) -> dict[str, float]:
  """The entries of an evaluation result that belong in metrics.jsonl."""
  return {f"eval/{k}": float(v) for k, v in result.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}


def headline_fid(result: dict[str, Any]) -> float:
  """The FID that picks the best checkpoint: `fid`, or the mean over target domains."""
  if "fid" in result:
    return result["fid"]
  return float(np.mean([result["fid_a"], result["fid_b"]]))
