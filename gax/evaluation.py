"""Evaluation: generated images against held-out real ones, during training and after.

The real side of every comparison is the dataset's held-out split (`config.eval.split`);
features come from a feature network: gax's own digit classifier by default, pytorch-fid's
InceptionV3 (`eval.features="inception"`, whose reference features are cached), or any
`module:function` (see `create_feature_network`). Alongside each metric, the same
metric for real training images against the held-out ones gives the floor a perfect
generator would reach at this sample size. Each variant's evaluator (its
`create_evaluator`) is built from these pieces; `PeriodicEvaluator` runs it during
training and `evaluate_workdir` behind `python -m gax.evaluate`.
"""

import dataclasses
import hashlib
import importlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from gax import checkpoint as checkpoint_lib
from gax import classifier, config_base, files, inception, inception_weights, metrics, writers
from gax import data as data_lib
from gax import ema as ema_lib

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
    recipe = classifier.ClassifierRecipe(seed=eval_config.classifier_seed)
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
    raise config_base.ConfigError(
        f"config.eval.features = {name!r} must be 'digit_classifier', 'inception' or "
        "'package.module:function'")
  try:
    factory = getattr(importlib.import_module(module_name), function_name)
  except (ImportError, AttributeError) as e:
    raise config_base.ConfigError(
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
  path = (Path(cache_dir) if cache_dir else classifier.default_cache_dir()) / "features" / (
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
      raise data_lib.DataError(
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
  train = data_lib.load_source(config.data, train_source)
  held_out = data_lib.load_source(config.data, held_out_source)
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


class PeriodicEvaluator:
  """Evaluates during training: eval/* in metrics.jsonl, eval/step_N.json, and the best
  state by the variant's `best_metric` kept in `best_checkpoint/` and named in
  `best.json`."""

  def __init__(self, config: ml_collections.ConfigDict, variant, workdir: Path,
               writer: writers.MetricWriter, is_writer: bool, start_step: int):
    self._config, self._variant, self._workdir = config, variant, workdir
    self._writer, self._is_writer = writer, is_writer
    self._evaluate = None  # built at the first evaluation: it may train a classifier
    self._best_checkpointer = None
    best_file = workdir / "best.json"
    self.best = files.read_json_or_set_aside(best_file, is_writer)
    if self.best is not None and not {"step", "value"} <= set(self.best):
      self.best = None  # written by an older gax: the next evaluation writes it anew
    if self.best is not None and self.best["step"] > start_step and is_writer:
      # From steps this resumed run will redo: they will be evaluated again.
      best_file.unlink()
      shutil.rmtree(workdir / "best_checkpoint", ignore_errors=True)
      self.best = None

  def evaluate(self, state: dict[str, Any], step: int) -> dict[str, Any]:
    if self._evaluate is None:
      self._evaluate = self._variant.create_evaluator(self._config)
    start = time.perf_counter()
    result = {"step": step, **self._evaluate(ema_lib.chosen(state, self._config))}
    logging.info("eval at step %d (%.1f s): %s", step, time.perf_counter() - start,
                 "  ".join(f"{k} {v:.4g}" for k, v in scalars(result).items()))
    if not self._is_writer:
      return result
    self._writer.write_scalars(step, scalars(result))
    files.write_json(self._workdir / "eval" / f"step_{step}.json", result)
    best_metric = self._variant.best_metric
    value = float(result[best_metric.name])
    if best_metric.improves(value, None if self.best is None else self.best["value"]):
      if self._best_checkpointer is None:
        self._best_checkpointer = checkpoint_lib.Checkpointer(
            self._workdir / "best_checkpoint", max_to_keep=1)
      self._best_checkpointer.save(step, state)
      self._best_checkpointer.wait()
      self.best = {"step": step, "metric": best_metric.name, "value": value,
                   "checkpoint": f"best_checkpoint/{step}"}
      files.write_json(self._workdir / "best.json", self.best)
    return result

  def close(self) -> None:
    if self._best_checkpointer is not None:
      self._best_checkpointer.close()
