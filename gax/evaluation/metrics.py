"""Sample-quality metrics on features (FID, KID, precision/recall, IS) and pixels (Parzen).

Everything heavy runs jitted in JAX and in row blocks, so sets of tens of thousands of
features fit in memory. Features are [N, F] float arrays; class probabilities [N, C].
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _blocks(count: int, block: int) -> list[slice]:
  return [slice(start, min(start + block, count)) for start in range(0, count, block)]


@jax.jit
def feature_statistics(features: Array) -> tuple[Array, Array]:
  """Mean and (unbiased) covariance of [N, F] features."""
  features = jnp.asarray(features, jnp.float32)
  mean = features.mean(axis=0)
  centered = features - mean
  covariance = centered.T @ centered / (features.shape[0] - 1)
  return mean, covariance


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
  values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
  return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mean1, cov1, mean2, cov2) -> float:
  """||m1 - m2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)) between two Gaussians.

  tr((C1 C2)^(1/2)) is computed as tr((S C2 S)^(1/2)) with S = C1^(1/2): the same
  eigenvalues, but of a symmetric matrix, so it stays real and stable. In float64 on the
  host, as pytorch-fid computes it: in float32 the square roots of a rank-deficient
  covariance's rounding noise add up over thousands of dimensions.
  """
  mean1, cov1, mean2, cov2 = (np.asarray(x, np.float64) for x in (mean1, cov1, mean2, cov2))
  root1 = _sqrt_psd(cov1)
  middle = root1 @ cov2 @ root1
  trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
  return float(np.sum((mean1 - mean2) ** 2) + np.trace(cov1) + np.trace(cov2)
               - 2.0 * trace_sqrt)


def fid(features1: Array, features2: Array) -> float:
  """Fréchet distance between the Gaussians fitted to two feature sets."""
  return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def conditional_scores(features: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                       reference_features: np.ndarray, reference_labels: np.ndarray
                       ) -> tuple[float, float]:
  """(conditional accuracy, intra-class FID) of samples drawn for `labels`.

  Accuracy: the share of class-c samples whose most probable class is c, averaged over
  the classes; intra-FID: the FID between the class-c samples and the class-c reference
  features, averaged over the classes. Classes without samples are left out.
  """
  predicted = np.asarray(probs).argmax(axis=1)
  accuracies, fids = [], []
  for label in np.unique(reference_labels):
    mine = labels == label
    if mine.sum() < 2:
      continue
    accuracies.append(np.mean(predicted[mine] == label))
    fids.append(fid(features[mine], reference_features[reference_labels == label]))
  return float(np.mean(accuracies)), float(np.mean(fids))


def _polynomial_mmd2(x: Array, y: Array) -> Array:
  """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3 (Binkowski et al., 2018)."""
  m = x.shape[0]
  kernel = lambda a, b: (a @ b.T / x.shape[1] + 1.0) ** 3
  kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
  off_diagonal_mean = lambda k: (k.sum() - jnp.trace(k)) / (m * (m - 1))
  return off_diagonal_mean(kxx) + off_diagonal_mean(kyy) - 2.0 * kxy.mean()


@functools.partial(jax.jit, static_argnames=("num_subsets", "subset_size"))
def _kid_subsets(features1, features2, key, num_subsets, subset_size):
  def one(subset_key):
    key1, key2 = jax.random.split(subset_key)
    x = features1[jax.random.choice(key1, features1.shape[0], (subset_size,), False)]
    y = features2[jax.random.choice(key2, features2.shape[0], (subset_size,), False)]
    return _polynomial_mmd2(x, y)

  return jax.lax.map(one, jax.random.split(key, num_subsets))


def kid(features1: Array, features2: Array, key: Array, num_subsets: int = 100,
        subset_size: int = 1000) -> tuple[float, float]:
  """Kernel Inception Distance: mean and standard deviation over random subsets."""
  subset_size = min(subset_size, len(features1), len(features2))
  values = _kid_subsets(jnp.asarray(features1, jnp.float32),
                        jnp.asarray(features2, jnp.float32), key, num_subsets, subset_size)
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std())


@jax.jit
def _squared_distances(a: Array, b: Array) -> Array:
  squared = (jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None, :]
             - 2.0 * a @ b.T)
  return jnp.maximum(squared, 0.0)


def _kth_neighbour_radii(features: Array, k: int, block: int) -> Array:
  """Squared distance from each point to its k-th nearest other point."""
  radii = []
  for rows in _blocks(len(features), block):
    distances = _squared_distances(features[rows], features)
    # The smallest distance is the point to itself (0), so the k-th other is at k.
    radii.append(-jax.lax.top_k(-distances, k + 1)[0][:, k])
  return jnp.concatenate(radii)


def _share_inside(points: Array, centres: Array, radii: Array, block: int) -> float:
  """Share of `points` inside at least one ball (centre, squared radius)."""
  inside = [jnp.any(_squared_distances(points[rows], centres) <= radii[None, :], axis=1)
            for rows in _blocks(len(points), block)]
  return float(jnp.concatenate(inside).mean())


def precision_recall(real: Array, fake: Array, k: int = 3,
                     block: int = 2048) -> tuple[float, float]:
  """Improved precision and recall (Kynkäänniemi et al., 2019) with k-NN manifolds.

  Precision: share of fake samples inside the real manifold (the union of balls around
  real samples reaching their k-th nearest real neighbour); recall, the other way round.
  Both sets are cut to the same size, as the method assumes.
  """
  count = min(len(real), len(fake))
  real = jnp.asarray(real[:count], jnp.float32)
  fake = jnp.asarray(fake[:count], jnp.float32)
  precision = _share_inside(fake, real, _kth_neighbour_radii(real, k, block), block)
  recall = _share_inside(real, fake, _kth_neighbour_radii(fake, k, block), block)
  return precision, recall


def density_coverage(real: Array, fake: Array, k: int = 5,
                     block: int = 2048) -> tuple[float, float]:
  """Density and coverage (Naeem et al., 2020) with k-NN balls around the real samples.

  Density: the mean number of real balls each fake sample falls in, over k (about 1 when
  both sets come from one distribution, above 1 where fakes crowd dense real regions);
  coverage: the share of real balls holding at least one fake sample. A point lies in a
  ball when strictly closer than its radius, as in the authors' code (so a set against
  itself has density and coverage 1).
  """
  # Distances come from |a|^2 + |b|^2 - 2ab; centring on the real mean keeps them from
  # cancelling away where the points sit far from the origin.
  centre = np.asarray(real, np.float64).mean(axis=0)
  real = jnp.asarray(np.asarray(real, np.float64) - centre, jnp.float32)
  fake = jnp.asarray(np.asarray(fake, np.float64) - centre, jnp.float32)
  radii = _kth_neighbour_radii(real, k, block)
  balls_per_fake = jnp.zeros(len(fake), jnp.int32)
  covered = jnp.zeros(len(real), bool)
  for rows in _blocks(len(real), block):
    inside = _squared_distances(real[rows], fake) < radii[rows, None]  # [rows, fakes]
    balls_per_fake = balls_per_fake + inside.sum(axis=0)
    covered = covered.at[rows].set(jnp.any(inside, axis=1))
  return float(balls_per_fake.mean() / k), float(covered.mean())


def inception_score(probs: Array, num_splits: int = 10) -> tuple[float, float]:
  """exp(E_x KL(p(y|x) || p(y))) over `num_splits` splits: mean and standard deviation."""
  probs = np.asarray(probs, np.float64)
  scores = []
  for part in np.array_split(probs, num_splits):
    marginal = part.mean(axis=0, keepdims=True)
    kl = np.sum(part * (np.log(part + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    scores.append(math.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def class_histogram(probs: Array) -> np.ndarray:
  """Share of samples the classifier assigns to each class."""
  probs = np.asarray(probs)
  return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)


def modes_covered(histogram: np.ndarray, min_share_of_uniform: float = 0.25) -> int:
  """Classes that receive at least this fraction of a uniform share of the samples."""
  return int(np.sum(histogram >= min_share_of_uniform / len(histogram)))


@functools.partial(jax.jit, static_argnames=("block",))
def _parzen_log_densities(centres: Array, points: Array, sigmas: Array, block: int):
  """[S, P] log-densities of `points` under a Gaussian Parzen window per sigma."""
  dim = centres.shape[1]

  def for_points(chunk):
    distances = _squared_distances(chunk, centres)  # [block, N]
    exponents = -distances[None] / (2.0 * sigmas[:, None, None] ** 2)
    return (jax.nn.logsumexp(exponents, axis=2) - jnp.log(centres.shape[0])
            - 0.5 * dim * jnp.log(2.0 * jnp.pi * sigmas[:, None] ** 2))

  padded = -points.shape[0] % block
  chunks = jnp.pad(points, ((0, padded), (0, 0))).reshape(-1, block, dim)
  densities = jax.lax.map(for_points, chunks)  # [chunks, S, block]
  return jnp.moveaxis(densities, 1, 0).reshape(sigmas.shape[0], -1)[:, :points.shape[0]]


def parzen_log_likelihood(centres: Array, points: Array, sigma: float,
                          block: int = 256) -> np.ndarray:
  """Per-point log-likelihood (nats) under a Gaussian Parzen window on `centres`."""
  return np.asarray(_parzen_log_densities(
      jnp.asarray(centres, jnp.float32), jnp.asarray(points, jnp.float32),
      jnp.asarray([sigma], jnp.float32), block)[0], np.float64)


def parzen_sigma(centres: Array, validation: Array, sigmas, block: int = 256) -> float:
  """The sigma of `sigmas` that maximises the validation set's mean log-likelihood."""
  sigmas = np.asarray(sigmas, np.float32)
  densities = _parzen_log_densities(jnp.asarray(centres, jnp.float32),
                                    jnp.asarray(validation, jnp.float32),
                                    jnp.asarray(sigmas), block)
  return float(sigmas[int(np.argmax(np.asarray(densities, np.float64).mean(axis=1)))])


def parzen_estimate(centres: Array, validation: Array, test: Array,
                    sigmas) -> dict[str, float]:
  """Goodfellow et al.'s protocol: sigma chosen on validation, mean ± s.e. on test.

  Pixels should be in [0, 1], flattened: centres [N, D], validation [V, D], test [T, D].
  """
  sigma = parzen_sigma(centres, validation, sigmas)
  log_likelihoods = parzen_log_likelihood(centres, test, sigma)
  return {"ll": float(log_likelihoods.mean()),
          "se": float(log_likelihoods.std(ddof=1) / math.sqrt(len(log_likelihoods))),
          "sigma": sigma}
