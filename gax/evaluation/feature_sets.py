"""The two sides of `gax.fid`: image folders, .npz files of images or of statistics, read
and checked (`read_set`), their InceptionV3 features (`extract`), and the metrics between
them (`compare`)."""

import dataclasses
import zipfile
from pathlib import Path

import jax
import numpy as np
from absl import logging

from gax import errors
from gax.data import folders
from gax.evaluation import inception, inception_weights, metrics
from gax.storage import files

METRICS = ("fid", "kid", "is", "pr", "dc")


@dataclasses.dataclass
class FeatureSet:
  """One side: its images (if it has them) and, once known, its features and statistics."""

  path: str
  images: np.ndarray | None = None
  features: np.ndarray | None = None
  logits: np.ndarray | None = None
  mu: np.ndarray | None = None
  sigma: np.ndarray | None = None

  @property
  def count(self) -> int | None:
    for array in (self.images, self.features):
      if array is not None:
        return len(array)
    return None


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance as pytorch-fid computes them (float64, np.cov)."""
  features = features.astype(np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def checked_statistics(mu: np.ndarray, sigma: np.ndarray, where: str
                       ) -> tuple[np.ndarray, np.ndarray]:
  """(mu, sigma) as float64 once they are statistics a Fréchet distance is defined on:
  numbers, finite, of at least one dimension, sigma square, symmetric and positive
  semi-definite within rounding; else one line naming `where`."""
  for name, array in (("mu", mu), ("sigma", sigma)):
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype,
                                                                   np.complexfloating):
      raise errors.DataError(f"{where}: '{name}' holds {array.dtype}, not real numbers")
  mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
  if mu.ndim != 1 or not len(mu) or sigma.shape != (len(mu), len(mu)):
    raise errors.DataError(f"{where}: 'mu' {mu.shape} and 'sigma' {sigma.shape} must be "
                           "[F] and [F, F] with F >= 1")
  if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
    raise errors.DataError(f"{where}: 'mu' or 'sigma' holds NaN or infinity")
  scale = max(float(np.max(np.abs(sigma))), 1e-300)
  if np.max(np.abs(sigma - sigma.T)) > 1e-6 * scale:
    raise errors.DataError(f"{where}: 'sigma' is not symmetric, so not a covariance")
  smallest = float(np.linalg.eigvalsh((sigma + sigma.T) / 2).min())
  if smallest < -1e-6 * scale * len(mu):
    raise errors.DataError(f"{where}: 'sigma' has a negative eigenvalue ({smallest:.3g}), "
                           "so it is not a covariance")
  return mu, sigma


def _check_images(array: np.ndarray, where: str) -> np.ndarray:
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.dtype != np.uint8:
    raise errors.DataError(
        f"{where} holds {array.dtype} {tuple(array.shape)}; images must be uint8 "
        "[N, H, W] or [N, H, W, 1 or 3]")
  if len(array) < 2:
    raise errors.DataError(f"{where} holds {len(array)} image(s); statistics need at "
                           "least 2 (a covariance), and papers use 10,000 or more")
  return array


def read_set(path: str) -> FeatureSet:
  """A folder of images, an .npz of images, or an .npz of statistics."""
  where = Path(path)
  expected = ("an image folder, an .npz of images ('images') or an .npz of statistics "
              "('mu', 'sigma')")
  if where.is_dir():
    return FeatureSet(path, images=_check_images(folders.read_folder(where), path))
  if not where.is_file():
    raise errors.DataError(f"{path} does not exist; each path is {expected}")
  if where.suffix != ".npz":
    raise errors.DataError(f"{path} is not a folder or an .npz; each path is {expected}")
  try:
    with np.load(where, allow_pickle=False) as arrays:
      contents = {name: arrays[name] for name in arrays.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise errors.DataError(f"cannot read {path} as an .npz: {e}") from None
  if {"mu", "sigma"} <= set(contents):
    mu, sigma = (checked_statistics(contents["mu"], contents["sigma"], path))
    features = contents.get("features")
    if features is not None and (features.ndim != 2 or features.shape[1] != len(mu)
                                 or not np.issubdtype(features.dtype, np.number)
                                 or not np.all(np.isfinite(features))):
      raise errors.DataError(f"{path}: 'features' ({features.dtype} {features.shape}) must "
                             f"be finite numbers [N, {len(mu)}]")
    return FeatureSet(path, features=features, mu=mu, sigma=sigma)
  if "images" in contents:
    return FeatureSet(path, images=_check_images(contents["images"], path))
  raise errors.DataError(f"{path} holds {sorted(contents) or 'no arrays'}; an .npz "
                           "must hold 'images' (uint8 [N, H, W, C]) or 'mu' and 'sigma'")


def extract(sets: list[FeatureSet], weights: str | None, resize: str = "bilinear",
            batch_size: int = 50) -> str | None:
  """Runs InceptionV3 (pytorch-fid's weight file `weights`, or its environment variable)
  over every set that has images; returns the weights' SHA-256."""
  if all(s.images is None for s in sets):
    return None
  variables, digest = inception_weights.load(weights)
  extractor = inception.InceptionFeatures(variables, resize, batch_size, progress=True)
  for feature_set in sets:
    if feature_set.images is not None:
      feature_set.features, feature_set.logits = extractor.features_and_logits(
          feature_set.images)
      feature_set.mu, feature_set.sigma = statistics(feature_set.features)
      if len(feature_set.features) <= inception.FEATURE_DIM:
        logging.warning("%s: %d images, no more than the %d feature dimensions: the "
                        "covariance is singular and the FID is not comparable with "
                        "papers'", feature_set.path, len(feature_set.features),
                        inception.FEATURE_DIM)
  return digest


def _needs_features(metric: str, sets: list[FeatureSet]) -> None:
  for feature_set in sets:
    if feature_set.features is None:
      raise errors.DataError(
          f"--metrics={metric} needs features, and {feature_set.path} holds only "
          "statistics (write them with --save_stats --save_features)")


@dataclasses.dataclass(frozen=True)
class MetricOptions:
  """The settings of the metrics beyond FID."""

  kid_subsets: int = 100
  kid_subset_size: int = 1000
  pr_k: int = 3
  dc_k: int = 5
  is_splits: int = 10


def compare(set_a: FeatureSet, set_b: FeatureSet, chosen: list[str],
            options: MetricOptions = MetricOptions()) -> dict:
  """FID and the `chosen` metrics ("kid", "is", "pr", "dc") of two sets; A is the real
  side of precision/recall and density/coverage."""
  if len(set_a.mu) != len(set_b.mu):
    raise errors.DataError(
        f"statistics of different dimensions: {set_a.path} has {len(set_a.mu)}, "
        f"{set_b.path} has {len(set_b.mu)}")
  result = {"fid": metrics.frechet_distance(set_a.mu, set_a.sigma, set_b.mu, set_b.sigma),
            "num_a": set_a.count, "num_b": set_b.count}
  if not np.isfinite(result["fid"]):
    raise errors.DataError(f"the FID of {set_a.path} and {set_b.path} is not finite; "
                           "their statistics are too large to compare in float64")
  if "kid" in chosen:
    _needs_features("kid", [set_a, set_b])
    result["kid"], result["kid_std"] = metrics.kid(
        set_a.features, set_b.features, jax.random.PRNGKey(0), options.kid_subsets,
        options.kid_subset_size)
  if "pr" in chosen:
    _needs_features("pr", [set_a, set_b])
    result["precision"], result["recall"] = metrics.precision_recall(
        set_a.features, set_b.features, options.pr_k)
  if "dc" in chosen:
    _needs_features("dc", [set_a, set_b])
    result["density"], result["coverage"] = metrics.density_coverage(
        set_a.features, set_b.features, options.dc_k)
  if "is" in chosen:
    with_images = [(n, s) for n, s in (("a", set_a), ("b", set_b)) if s.logits is not None]
    if not with_images:
      raise errors.DataError("--metrics=is needs images, and both paths hold statistics")
    for name, feature_set in with_images:
      result[f"is_{name}"], result[f"is_{name}_std"] = metrics.inception_score(
          inception.probabilities(feature_set.logits), options.is_splits)
  return result


def save_statistics(path: str, out: str, with_features: bool, weights: str | None,
                    resize: str = "bilinear", batch_size: int = 50) -> dict:
  """Writes `path`'s statistics (and its features, `with_features`) to the .npz `out`,
  which gax.fid and pytorch-fid both read back."""
  if not out.endswith(".npz"):
    raise errors.DataError(f"--save_stats writes an .npz; {out} does not end in .npz")
  files.check_writable_file(Path(out), "--save_stats")
  source = read_set(path)
  if with_features and source.images is None and source.features is None:
    raise errors.DataError(f"--save_features: {path} holds statistics without their "
                           "features, so there are none to save; give the images")
  digest = extract([source], weights, resize, batch_size)
  arrays = {"mu": source.mu, "sigma": source.sigma}
  if with_features:
    arrays["features"] = source.features
  files.write_npz(Path(out), arrays)
  return {"saved": out, "num_images": source.count, "weights_sha256": digest,
          "resize": resize}
