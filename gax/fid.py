"""Command line: python -m gax.fid PATH_A PATH_B [--weights=FILE] [--metrics=fid,kid,...].

As pytorch-fid's command: the FID between two sets in pytorch-fid's InceptionV3, each
set an image folder (recursive; grey and RGBA read as RGB), an .npz of uint8 images
[N, H, W, C] under "images", or an .npz of statistics ("mu", "sigma"; optionally the
"features" themselves) such as pytorch-fid's `--save-stats` writes. Prints one JSON object
on the last line of stdout.

  python -m gax.fid --save_stats PATH OUT.npz   # the statistics of PATH, for later

`--metrics` adds KID, IS (of each image set), precision/recall and density/coverage;
A is the real side of the last two. The weights are pytorch-fid's file, given by
--weights or $GAX_INCEPTION_WEIGHTS (see gax/evaluation/inception_weights.py); nothing is
downloaded.
"""

import dataclasses
import json
import zipfile
from pathlib import Path

import jax
import numpy as np
from absl import app, flags, logging

from gax import cli, errors
from gax.data import folders
from gax.evaluation import inception, inception_weights, metrics
from gax.storage import files

METRICS = ("fid", "kid", "is", "pr", "dc")

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "pytorch-fid's InceptionV3 weight file (.pth or "
                    f".npz); default ${inception_weights.ENVIRONMENT_VARIABLE}.")
flags.DEFINE_enum("resize", "bilinear", inception.RESIZES, "To 299x299: 'bilinear' as "
                  "pytorch-fid, 'pil_bicubic' as clean-fid.")
flags.DEFINE_integer("batch_size", 50, "Images per network call (split over devices).",
                     lower_bound=1)
flags.DEFINE_list("metrics", ["fid"], f"Any of {', '.join(METRICS)}.")
flags.DEFINE_bool("save_stats", False, "Write PATH_A's statistics to PATH_B (.npz).")
flags.DEFINE_bool("save_features", False, "With --save_stats, store the features too "
                  "(what KID, precision/recall and density/coverage need later).")
flags.DEFINE_integer("kid_subsets", 100, "KID's random subsets.", lower_bound=1)
flags.DEFINE_integer("kid_subset_size", 1000, "KID's subset size.", lower_bound=2)
flags.DEFINE_integer("pr_k", 3, "Neighbours of the precision/recall manifolds.",
                     lower_bound=1)
flags.DEFINE_integer("dc_k", 5, "Neighbours of density/coverage's balls.", lower_bound=1)
flags.DEFINE_integer("is_splits", 10, "Inception Score's splits.", lower_bound=1)


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


def _statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance as pytorch-fid computes them (float64, np.cov)."""
  features = features.astype(np.float64)
  return features.mean(axis=0), np.cov(features, rowvar=False)


def _check_images(array: np.ndarray, where: str) -> np.ndarray:
  if array.ndim == 3:
    array = array[..., None]
  if array.ndim != 4 or array.shape[-1] not in (1, 3) or array.dtype != np.uint8:
    raise errors.DataError(
        f"{where} holds {array.dtype} {tuple(array.shape)}; images must be uint8 "
        "[N, H, W] or [N, H, W, 1 or 3]")
  if len(array) == 0:
    raise errors.DataError(f"{where} holds no images")
  return array


def read_set(path: str) -> FeatureSet:
  """A folder of images, an .npz of images, or an .npz of statistics."""
  where = Path(path)
  expected = ("an image folder, an .npz of images ('images') or an .npz of statistics "
              "('mu', 'sigma')")
  if where.is_dir():
    return FeatureSet(path, images=folders.read_folder(where))
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
    mu, sigma = contents["mu"], contents["sigma"]
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
      raise errors.DataError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} must "
                               "be [F] and [F, F]")
    features = contents.get("features")
    if features is not None and (features.ndim != 2 or features.shape[1] != len(mu)):
      raise errors.DataError(f"{path}: 'features' {features.shape} must be [N, "
                               f"{len(mu)}]")
    return FeatureSet(path, features=features, mu=mu.astype(np.float64),
                      sigma=sigma.astype(np.float64))
  if "images" in contents:
    return FeatureSet(path, images=_check_images(contents["images"], path))
  raise errors.DataError(f"{path} holds {sorted(contents) or 'no arrays'}; an .npz "
                           "must hold 'images' (uint8 [N, H, W, C]) or 'mu' and 'sigma'")


def _extract(sets: list[FeatureSet]) -> str | None:
  """Runs InceptionV3 over every set that has images; returns the weights' SHA-256."""
  if all(s.images is None for s in sets):
    return None
  variables, digest = inception_weights.load(FLAGS.weights)
  extractor = inception.InceptionFeatures(variables, FLAGS.resize, FLAGS.batch_size,
                                          progress=True)
  for feature_set in sets:
    if feature_set.images is not None:
      feature_set.features, feature_set.logits = extractor.features_and_logits(
          feature_set.images)
      feature_set.mu, feature_set.sigma = _statistics(feature_set.features)
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


def compare(set_a: FeatureSet, set_b: FeatureSet, chosen: list[str]) -> dict:
  if len(set_a.mu) != len(set_b.mu):
    raise errors.DataError(
        f"statistics of different dimensions: {set_a.path} has {len(set_a.mu)}, "
        f"{set_b.path} has {len(set_b.mu)}")
  result = {"fid": metrics.frechet_distance(set_a.mu, set_a.sigma, set_b.mu, set_b.sigma),
            "num_a": set_a.count, "num_b": set_b.count}
  if "kid" in chosen:
    _needs_features("kid", [set_a, set_b])
    result["kid"], result["kid_std"] = metrics.kid(
        set_a.features, set_b.features, jax.random.PRNGKey(0), FLAGS.kid_subsets,
        FLAGS.kid_subset_size)
  if "pr" in chosen:
    _needs_features("pr", [set_a, set_b])
    result["precision"], result["recall"] = metrics.precision_recall(
        set_a.features, set_b.features, FLAGS.pr_k)
  if "dc" in chosen:
    _needs_features("dc", [set_a, set_b])
    result["density"], result["coverage"] = metrics.density_coverage(
        set_a.features, set_b.features, FLAGS.dc_k)
  if "is" in chosen:
    with_images = [(n, s) for n, s in (("a", set_a), ("b", set_b)) if s.logits is not None]
    if not with_images:
      raise errors.DataError("--metrics=is needs images, and both paths hold statistics")
    for name, feature_set in with_images:
      result[f"is_{name}"], result[f"is_{name}_std"] = metrics.inception_score(
          inception.probabilities(feature_set.logits), FLAGS.is_splits)
  return result


def run(path_a: str, path_b: str) -> dict:
  unknown = [m for m in FLAGS.metrics if m not in METRICS]
  if unknown:
    raise errors.DataError(f"unknown metric {unknown[0]!r} in --metrics; choose from "
                             f"{', '.join(METRICS)}")
  if FLAGS.save_stats:
    if not path_b.endswith(".npz"):
      raise errors.DataError(f"--save_stats writes an .npz; {path_b} does not end in .npz")
    source = read_set(path_a)
    digest = _extract([source])
    arrays = {"mu": source.mu, "sigma": source.sigma}
    if FLAGS.save_features:
      arrays["features"] = source.features
    files.write_npz(Path(path_b), arrays)
    return {"saved": path_b, "num_images": source.count, "weights_sha256": digest,
            "resize": FLAGS.resize}
  sets = [read_set(path_a), read_set(path_b)]
  digest = _extract(sets)
  return {**compare(*sets, FLAGS.metrics), "weights_sha256": digest,
          "resize": FLAGS.resize}


def main(argv):
  if len(argv) != 3:
    cli.fail(f"gax.fid takes two paths, PATH_A PATH_B (with --save_stats: PATH OUT.npz); "
             f"got {len(argv) - 1}")
  cli.run_command(lambda: print(json.dumps(run(argv[1], argv[2]), sort_keys=True)))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
