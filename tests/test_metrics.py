"""Metrics against closed forms, an independent SciPy computation, and their definitions."""

import math

import jax
import numpy as np
import pytest
import scipy.linalg
from scipy import stats

from gax.evaluation import metrics


def _correlated_features(seed: int, count: int, dim: int, shift: float = 0.0):
  """Draws from one fixed correlated Gaussian per `dim` (only the draw varies by seed)."""
  mixing = np.random.default_rng(dim).normal(size=(dim, dim)) / math.sqrt(dim)
  noise = np.random.default_rng(seed).normal(size=(count, dim))
  return (noise @ mixing + shift).astype(np.float32)


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
  a, b = a.astype(np.float64), b.astype(np.float64)
  mean_a, mean_b = a.mean(0), b.mean(0)
  cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  root = scipy.linalg.sqrtm(cov_a @ cov_b).real
  return float(np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def test_fid_of_identical_feature_sets_is_zero():
  features = _correlated_features(0, 2000, 64)
  assert abs(metrics.fid(features, features)) < 1e-3 * np.trace(np.cov(features.T))


def test_fid_of_identical_sets_with_fewer_samples_than_dimensions_is_zero():
  # A rank-11 covariance in 2048 dimensions: float32 rounding noise in the square roots
  # would add up to a large negative FID; float64 keeps it at rounding level.
  features = np.random.default_rng(0).normal(size=(12, 2048)).astype(np.float32)
  trace = float(np.trace(np.asarray(metrics.feature_statistics(features)[1])))
  assert abs(metrics.fid(features, features)) < 1e-5 * trace


def test_frechet_distance_of_two_gaussians_matches_the_closed_form():
  # Diagonal covariances commute: d = |m1 - m2|^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
  rng = np.random.default_rng(1)
  mean1, mean2 = rng.normal(size=8), rng.normal(size=8)
  var1, var2 = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
  expected = np.sum((mean1 - mean2) ** 2) + np.sum((np.sqrt(var1) - np.sqrt(var2)) ** 2)
  got = metrics.frechet_distance(mean1, np.diag(var1), mean2, np.diag(var2))
  np.testing.assert_allclose(float(got), expected, rtol=1e-4)
  # Full covariances that do not commute, against SciPy's matrix square root.
  a, b = rng.normal(size=(8, 8)), rng.normal(size=(8, 8))
  cov1, cov2 = a @ a.T + np.eye(8), b @ b.T + np.eye(8)
  expected = (np.sum((mean1 - mean2) ** 2)
              + np.trace(cov1 + cov2 - 2 * scipy.linalg.sqrtm(cov1 @ cov2).real))
  got = metrics.frechet_distance(mean1, cov1, mean2, cov2)
  np.testing.assert_allclose(float(got), expected, rtol=1e-3)


def test_fid_on_samples_matches_an_independent_scipy_computation():
  real = _correlated_features(2, 3000, 32)
  fake = _correlated_features(3, 2000, 32, shift=0.3) * 1.2
  np.testing.assert_allclose(metrics.fid(real, fake), _scipy_fid(real, fake), rtol=1e-3)


def test_kid_is_unbiased_on_average_and_positive_between_distributions():
  key = jax.random.PRNGKey(0)
  draws = []
  for seed in range(40):
    a = _correlated_features(100 + seed, 200, 16)
    b = _correlated_features(200 + seed, 200, 16)
    draws.append(metrics.kid(a, b, jax.random.fold_in(key, seed), num_subsets=1,
                             subset_size=200)[0])
  draws = np.asarray(draws)
  # Unbiased: the mean over independent draws is zero within its standard error.
  assert abs(draws.mean()) < 3 * draws.std(ddof=1) / math.sqrt(len(draws))
  assert (draws < 0).any() and (draws > 0).any()
  shifted = metrics.kid(_correlated_features(5, 400, 16),
                        _correlated_features(6, 400, 16, shift=1.0), key)[0]
  assert shifted > 10 * draws.std()


def test_kid_matches_a_direct_numpy_computation_of_the_unbiased_estimator():
  a, b = _correlated_features(7, 50, 4), _correlated_features(8, 50, 4, 0.5)
  k = lambda x, y: (x.astype(np.float64) @ y.T.astype(np.float64) / 4 + 1) ** 3
  m = len(a)
  expected = ((k(a, a).sum() - np.trace(k(a, a))) / (m * (m - 1))
              + (k(b, b).sum() - np.trace(k(b, b))) / (m * (m - 1)) - 2 * k(a, b).mean())
  # With subsets as large as the sets, every subset is the whole set.
  got, spread = metrics.kid(a, b, jax.random.PRNGKey(0), num_subsets=3, subset_size=50)
  np.testing.assert_allclose(got, expected, rtol=1e-4)
  assert spread < 1e-6 * abs(expected)


def test_precision_and_recall_of_a_set_against_itself_are_one():
  features = _correlated_features(9, 500, 16)
  assert metrics.precision_recall(features, features) == (1.0, 1.0)


def test_precision_and_recall_separate_quality_from_coverage():
  real = _correlated_features(10, 1000, 8)
  far = real + 100.0
  assert metrics.precision_recall(real, far) == (0.0, 0.0)
  # Fakes on one corner of the real set: mostly precise, but they cover little of it.
  corner = real[np.argsort(real[:, 0])[:100]]
  precision, recall = metrics.precision_recall(real, np.tile(corner, (10, 1)))
  assert precision > 0.9 and recall < 0.3


def _numpy_density_coverage(real: np.ndarray, fake: np.ndarray, k: int):
  """Naeem et al.'s definitions, as their reference code (clovaai/prdc) computes them."""
  real, fake = real.astype(np.float64), fake.astype(np.float64)
  real_to_real = np.linalg.norm(real[:, None] - real[None], axis=-1)
  radii = np.sort(real_to_real, axis=1)[:, k]  # [:, 0] is the point itself
  real_to_fake = np.linalg.norm(real[:, None] - fake[None], axis=-1)
  density = (real_to_fake < radii[:, None]).sum(axis=0).mean() / k
  coverage = (real_to_fake.min(axis=1) < radii).mean()
  return density, coverage


def test_density_and_coverage_match_a_numpy_reference_on_random_features():
  real = _correlated_features(0, 300, 16)
  fake = _correlated_features(1, 250, 16, shift=0.3) * 1.2
  expected = _numpy_density_coverage(real, fake, k=5)
  np.testing.assert_allclose(metrics.density_coverage(real, fake, k=5), expected,
                             rtol=1e-6)
  np.testing.assert_allclose(metrics.density_coverage(real, fake, k=5, block=64),
                             expected, rtol=1e-6)  # row blocks change nothing


@pytest.mark.parametrize("k", [5, 50])
def test_density_and_coverage_of_a_set_against_itself_are_one(k):
  features = _correlated_features(0, 500, 16)
  assert metrics.density_coverage(features, features, k) == pytest.approx((1.0, 1.0))


def test_density_and_coverage_of_a_large_set_against_a_fresh_draw_are_near_one():
  density, coverage = metrics.density_coverage(_correlated_features(0, 3000, 8),
                                               _correlated_features(1, 3000, 8), k=50)
  assert abs(density - 1.0) < 0.05 and coverage > 0.97


def test_density_and_coverage_of_far_apart_sets_are_zero():
  real = _correlated_features(0, 300, 16)
  assert metrics.density_coverage(real, real + 100.0, k=5) == (0.0, 0.0)


def test_inception_score_is_the_number_of_classes_for_confident_uniform_predictions():
  one_hot = np.eye(10)[np.arange(1000) % 10]
  assert metrics.inception_score(one_hot)[0] == pytest.approx(10.0, rel=1e-6)
  assert metrics.inception_score(np.eye(10)[np.zeros(1000, int)])[0] == pytest.approx(1.0)
  histogram = metrics.class_histogram(one_hot[:500])
  np.testing.assert_allclose(histogram, 0.1)
  assert metrics.modes_covered(histogram) == 10
  assert metrics.modes_covered(metrics.class_histogram(np.eye(10)[[3] * 50])) == 1


def test_parzen_log_likelihood_matches_gaussian_mixture_densities():
  rng = np.random.default_rng(11)
  centres, points = rng.uniform(size=(7, 5)), rng.uniform(size=(13, 5))
  sigma = 0.3
  densities = np.mean([stats.multivariate_normal(c, sigma ** 2 * np.eye(5)).pdf(points)
                       for c in centres], axis=0)
  np.testing.assert_allclose(metrics.parzen_log_likelihood(centres, points, sigma, block=4),
                             np.log(densities), rtol=1e-4)


def test_parzen_protocol_picks_sigma_on_validation_and_reports_standard_error():
  rng = np.random.default_rng(12)
  sample = lambda n: rng.normal(scale=0.5, size=(n, 3))
  centres, validation, test = sample(2000), sample(300), sample(300)
  sigmas = np.logspace(-2, 1, 7)
  result = metrics.parzen_estimate(centres, validation, test, sigmas)
  scores = [metrics.parzen_log_likelihood(centres, validation, s).mean() for s in sigmas]
  assert result["sigma"] == pytest.approx(sigmas[int(np.argmax(scores))])
  lls = metrics.parzen_log_likelihood(centres, test, result["sigma"])
  assert result["ll"] == pytest.approx(lls.mean(), rel=1e-6)
  assert result["se"] == pytest.approx(lls.std(ddof=1) / math.sqrt(300), rel=1e-6)
  # Close to the true density's log-likelihood, N(0, 0.25 I) in three dimensions.
  truth = stats.multivariate_normal(np.zeros(3), 0.25 * np.eye(3)).logpdf(test).mean()
  assert abs(result["ll"] - truth) < 0.3
