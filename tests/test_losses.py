"""Losses against values worked out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gax import errors
from gax.variants import losses

LOG4 = math.log(4.0)


def test_value_at_d_one_half_is_minus_log_4():
  zeros = jnp.zeros(16)  # logit 0 <=> D = 1/2 everywhere
  np.testing.assert_allclose(losses.value_function(zeros, zeros), -LOG4, rtol=1e-6)
  np.testing.assert_allclose(losses.bce_discriminator_loss(zeros, zeros), LOG4, rtol=1e-6)
  np.testing.assert_allclose(losses.minimax_generator_loss(zeros), -math.log(2), rtol=1e-6)
  np.testing.assert_allclose(losses.non_saturating_generator_loss(zeros), math.log(2),
                             rtol=1e-6)


def test_bce_losses_at_d_three_quarters_and_one_quarter():
  real = jnp.full(4, math.log(3.0))  # D(x) = 0.75
  fake = jnp.full(4, math.log(1 / 3))  # D(G(z)) = 0.25
  np.testing.assert_allclose(losses.value_function(real, fake), 2 * math.log(0.75),
                             rtol=1e-6)
  np.testing.assert_allclose(losses.minimax_generator_loss(fake), math.log(0.75),
                             rtol=1e-6)
  np.testing.assert_allclose(losses.non_saturating_generator_loss(fake), math.log(4.0),
                             rtol=1e-6)


def test_bce_is_stable_for_large_logits():
  big = jnp.array([80.0, -80.0])
  assert np.isfinite(losses.bce_discriminator_loss(big, -big))
  np.testing.assert_allclose(losses.non_saturating_generator_loss(jnp.array([-80.0])),
                             80.0, rtol=1e-6)


def test_least_squares_by_hand():
  real, fake = jnp.array([1.0, 0.0]), jnp.array([0.5, 0.5])
  # a=0, b=1: 0.5*mean([0, 1]) + 0.5*mean([0.25, 0.25]) = 0.25 + 0.125
  np.testing.assert_allclose(
      losses.least_squares_discriminator_loss(real, fake, a=0.0, b=1.0), 0.375)
  np.testing.assert_allclose(losses.least_squares_generator_loss(fake, c=1.0), 0.125)
  # Mao et al.'s a=-1, b=1, c=0 coding.
  np.testing.assert_allclose(
      losses.least_squares_discriminator_loss(real, fake, a=-1.0, b=1.0),
      0.5 * (0 + 1) / 2 + 0.5 * 2.25)
  np.testing.assert_allclose(losses.least_squares_generator_loss(fake, c=0.0), 0.125)


def test_optimal_discriminator_is_p_data_over_p_data_plus_p_g():
  """Maximising V over a free D on a discrete space gives D* = p_data / (p_data + p_g)."""
  p_data = jnp.array([0.1, 0.2, 0.3, 0.4])
  p_g = jnp.array([0.4, 0.3, 0.2, 0.1])

  def value(logits):  # expectations over the discrete distributions
    log_d = -jax.nn.softplus(-logits)
    log_one_minus_d = -jax.nn.softplus(logits)
    return jnp.sum(p_data * log_d) + jnp.sum(p_g * log_one_minus_d)

  logits = jnp.zeros(4)
  for _ in range(3000):
    logits = logits + 5.0 * jax.grad(value)(logits)
  np.testing.assert_allclose(jax.nn.sigmoid(logits), p_data / (p_data + p_g), atol=1e-3)
  # At p_g = p_data the optimum is D* = 1/2 and V = -log 4.
  np.testing.assert_allclose(value(jnp.zeros(4)), -LOG4, rtol=1e-6)


@pytest.mark.parametrize("name", losses.LOSS_NAMES)
def test_registry(name):
  loss = losses.get_adversarial_loss(name)
  zeros = jnp.zeros(3)
  assert np.isfinite(loss.discriminator(zeros, zeros))
  assert np.isfinite(loss.generator(zeros))


def test_unknown_loss_lists_choices():
  with pytest.raises(errors.ConfigError, match="least_squares, hinge, wasserstein"):
    losses.get_adversarial_loss("softplus")
