"""Gradient penalties on the discriminator's input, usable with any adversarial loss.

- "wgan_gp": lambda E[(||grad D(x_hat)|| - 1)^2] on random interpolates x_hat between real
  and fake images (Gulrajani et al. 2017);
- "zero_gp": lambda E[||grad D(x_hat)||^2] on the same points, zero-centred (Thanh-Tung et
  al. 2019);
- "r1": gamma/2 E[||grad D(x)||^2] on real images (Mescheder et al. 2018).

A penalty sees D as a `Critic`, a function from images to D's raw outputs, which the
variant builds inside its discriminator loss (labels, augmentation and dropout closed
over), so the penalty is differentiated with everything else. With `every` = N > 1 it is
lazy as in StyleGAN2 (Karras et al. 2020): counted on every N-th D update only, weighted
N times, and computed on those updates only, except on CPU (see `branches_on_schedule`).
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from gax import config_base

Array = jax.Array
Critic = Callable[[Array], Array]  # images [B, H, W, C] -> D's raw outputs [B]


def input_gradients(critic: Critic, images: Array) -> Array:
  """d D(x_i) / d x_i for every image (D treats examples independently: no batch norm)."""
  return jax.grad(lambda x: jnp.sum(critic(x).astype(jnp.float32)))(images)


def _squared_norms(gradients: Array) -> Array:
  return jnp.sum(jnp.square(gradients.reshape(gradients.shape[0], -1)), axis=-1)


def interpolates(real: Array, fake: Array, key: Array) -> Array:
  """eps x + (1 - eps) G(z), one eps ~ U[0, 1] per example."""
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return eps * real + (1.0 - eps) * fake


def wgan_gp(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
  """E[(||grad D(x_hat)|| - 1)^2] on random interpolates."""
  gradients = input_gradients(critic, interpolates(real, fake, key))
  # safe_norm: the norm's gradient at a zero input gradient is 0, not NaN.
  norms = optax.safe_norm(gradients.reshape(gradients.shape[0], -1), 0.0, axis=-1)
  return jnp.mean(jnp.square(norms - 1.0))


def zero_gp(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
  """E[||grad D(x_hat)||^2] on random interpolates."""
  return jnp.mean(_squared_norms(input_gradients(critic, interpolates(real, fake, key))))


def r1(critic: Critic, real: Array, fake: Array, key: Array) -> Array:
  """1/2 E[||grad D(x)||^2] on real images (times gamma: R1's gamma/2)."""
  del fake, key
  return 0.5 * jnp.mean(_squared_norms(input_gradients(critic, real)))


PENALTIES: dict[str, Callable[[Critic, Array, Array, Array], Array] | None] = {
    "none": None, "wgan_gp": wgan_gp, "zero_gp": zero_gp, "r1": r1}


@dataclasses.dataclass(frozen=True)
class Penalty:
  """A named penalty, its weight (lambda or gamma; possibly traced) and laziness."""

  name: str = "none"
  weight: Array | float = 0.0
  every: int = 1  # computed on D updates whose count is a multiple of this

  def __post_init__(self):
    config_base.check_choice("loss.penalty", self.name, PENALTIES)

  @property
  def active(self) -> bool:
    return self.name != "none"

  def __call__(self, critic: Critic, real: Array, fake: Array, key: Array,
               iteration: Array | int) -> Array:
    """The weighted penalty term of D's loss at D update number `iteration`."""
    penalty = PENALTIES[self.name]
    term = lambda: self.weight * penalty(critic, real, fake, key)
    if self.every == 1:
      return term()
    due = iteration % self.every == 0
    if not branches_on_schedule():
      return jnp.where(due, self.every * term(), 0.0)
    return jax.lax.cond(due, lambda: self.every * term(), lambda: jnp.zeros((), jnp.float32))


def branches_on_schedule() -> bool:
  """Whether a lazy penalty is computed in a conditional branch, on its updates only,
  rather than on every update and masked. Not on CPU: XLA's CPU backend gives its fast
  convolution kernels to top-level convolutions only, and inside a branch D's kernel
  gradients run so slowly that the branch costs more than the penalty taken every time."""
  return jax.default_backend() != "cpu"
