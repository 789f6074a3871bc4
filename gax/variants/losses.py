"""GAN losses computed from discriminator outputs.

Binary cross-entropy losses take logits, so D(x) = sigmoid(logit). The least-squares
losses of Mao et al., the hinge loss (Lim & Ye 2017; Miyato et al. 2018) and the
Wasserstein critic's (Arjovsky et al. 2017) take the discriminator's raw output. Every
loss returns a scalar that the network it belongs to minimises.
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from gax import config_base

Array = jax.Array


def value_function(real_logits: Array, fake_logits: Array) -> Array:
  """V(D, G) = E[log D(x)] + E[log(1 - D(G(z)))] of Goodfellow et al. (2014)."""
  log_d_real = -jax.nn.softplus(-real_logits)  # log sigmoid(l)
  log_one_minus_d_fake = -jax.nn.softplus(fake_logits)  # log(1 - sigmoid(l))
  return jnp.mean(log_d_real) + jnp.mean(log_one_minus_d_fake)


def bce_discriminator_loss(real_logits: Array, fake_logits: Array) -> Array:
  """-V(D, G): the discriminator maximises the value function."""
  return -value_function(real_logits, fake_logits)


def minimax_generator_loss(fake_logits: Array) -> Array:
  """E[log(1 - D(G(z)))], the saturating loss of the minimax game."""
  return jnp.mean(-jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits: Array) -> Array:
  """-E[log D(G(z))], the heuristic that gives strong gradients early in training."""
  return jnp.mean(jax.nn.softplus(-fake_logits))


def least_squares_discriminator_loss(
    real_out: Array, fake_out: Array, a: float, b: float
) -> Array:
  """1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2] (Mao et al., eq. 2)."""
  return 0.5 * jnp.mean((real_out - b) ** 2) + 0.5 * jnp.mean((fake_out - a) ** 2)


def least_squares_generator_loss(fake_out: Array, c: float) -> Array:
  """1/2 E[(D(G(z)) - c)^2] (Mao et al., eq. 2)."""
  return 0.5 * jnp.mean((fake_out - c) ** 2)


def hinge_discriminator_loss(real_out: Array, fake_out: Array) -> Array:
  """E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]."""
  return jnp.mean(jax.nn.relu(1.0 - real_out)) + jnp.mean(jax.nn.relu(1.0 + fake_out))


def critic_generator_loss(fake_out: Array) -> Array:
  """-E[D(G(z))]: G's loss against a hinge discriminator or a Wasserstein critic."""
  return -jnp.mean(fake_out)


def wasserstein_discriminator_loss(real_out: Array, fake_out: Array) -> Array:
  """E[D(G(z))] - E[D(x)]: the critic's estimate of -W(p_data, p_g), minimised."""
  return jnp.mean(fake_out) - jnp.mean(real_out)


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
  """A matched pair of losses and how to read the discriminator's output."""

  discriminator: Callable[[Array, Array], Array]
  generator: Callable[[Array], Array]
  # Maps raw discriminator output to the number logged as "D(x)".
  output_to_score: Callable[[Array], Array]
  # The raw output above which D calls an image real: sign(D(x) - threshold) is ADA's
  # overfitting signal r_t.
  threshold: float = 0.0
  # D's loss when it tells every real image from every fake with full confidence; None
  # where the loss has no floor (the Wasserstein critic's).
  floor: float | None = 0.0


def _sigmoid(x: Array) -> Array:
  return jax.nn.sigmoid(x.astype(jnp.float32))


def _identity(x: Array) -> Array:
  return x.astype(jnp.float32)


def get_adversarial_loss(name: str, a: float = 0.0, b: float = 1.0,
                         c: float = 1.0) -> AdversarialLoss:
  """Looks up a loss by name; a, b, c are the least-squares targets."""
  if name == "minimax":
    return AdversarialLoss(bce_discriminator_loss, minimax_generator_loss, _sigmoid)
  if name == "non_saturating":
    return AdversarialLoss(bce_discriminator_loss, non_saturating_generator_loss,
                           _sigmoid)
  if name == "least_squares":
    return AdversarialLoss(
        lambda real, fake: least_squares_discriminator_loss(real, fake, a, b),
        lambda fake: least_squares_generator_loss(fake, c),
        _identity, threshold=(a + b) / 2,
    )
  if name == "hinge":
    return AdversarialLoss(hinge_discriminator_loss, critic_generator_loss, _identity)
  if name == "wasserstein":
    return AdversarialLoss(wasserstein_discriminator_loss, critic_generator_loss,
                           _identity, floor=None)
  config_base.check_choice("loss.name", name, LOSS_NAMES)


LOSS_NAMES = ("minimax", "non_saturating", "least_squares", "hinge", "wasserstein")
