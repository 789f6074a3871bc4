"""Class conditioning for the generators and discriminators.

Generators take the label by concatenation (Mirza & Osindero, 2014: the one-hot label
joins z, and the convolutional networks append it as one constant map per class to every
layer's input) or through conditional batch norm (per-class scale and offset; de Vries et
al., 2017, as Miyato & Koyama's projection GAN uses it). Discriminators take it as one-hot
maps beside every convolution's input ("concat"; the MLP appends it to the pixels) or by
projection (Miyato & Koyama, 2018): logit + <embed(y), features>. An auxiliary class head
on D's features (Odena et al.'s ACGAN) is independent of either. Joining the label at
every layer rather than the input alone: on mnist5k at 2,000 steps, conditional accuracy
0.748 against 0.563 (experiments/README.md).
"""

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
G_CONDITIONING = ("none", "concat", "cbn")
D_CONDITIONING = ("none", "concat", "projection")


def one_hot(labels: Array, num_classes: int, dtype=jnp.float32) -> Array:
  return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def join_noise(z: Array, labels: Array | None, num_classes: int, conditioning: str
               ) -> Array:
  """z, with the one-hot label appended when G is conditioned by concatenation."""
  if conditioning != "concat":
    return z
  return jnp.concatenate([z, one_hot(labels, num_classes, z.dtype)], axis=-1)


def join_image(x: Array, labels: Array | None, num_classes: int, conditioning: str
               ) -> Array:
  """The image, with one constant map per class appended (one-hot) for "concat"."""
  if conditioning != "concat":
    return x
  maps = one_hot(labels, num_classes, x.dtype)[:, None, None, :]
  return jnp.concatenate([x, jnp.broadcast_to(maps, (*x.shape[:3], num_classes))], axis=-1)


class ConditionalBatchNorm(nn.Module):
  """Batch norm without its own scale and offset, then a learned per-class scale
  (starting at 1) and offset (starting at 0)."""

  num_classes: int
  use_running_average: bool
  momentum: float = 0.99
  epsilon: float = 1e-5
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, labels: Array) -> Array:
    x = nn.BatchNorm(use_running_average=self.use_running_average, momentum=self.momentum,
                     epsilon=self.epsilon, use_scale=False, use_bias=False,
                     dtype=self.dtype)(x)
    features = x.shape[-1]
    scale = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones,
                     name="scale")(labels)
    offset = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                      name="offset")(labels)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (features,)
    return (x * scale.reshape(shape) + offset.reshape(shape)).astype(x.dtype)


def batch_norm(conditioning: str, num_classes: int, labels: Array | None, train: bool,
               dtype, **options) -> Callable[[], Callable[[Array], Array]]:
  """A factory of G's normalisation layers: plain batch norm, or conditional for "cbn"."""
  if conditioning == "cbn":
    return lambda: lambda x: ConditionalBatchNorm(
        num_classes, not train, dtype=dtype, momentum=options.get("momentum", 0.99),
        epsilon=options.get("epsilon", 1e-5))(x, labels)
  return lambda: nn.BatchNorm(use_running_average=not train, dtype=dtype, **options)


def discriminator_outputs(features: Array, logit: Array, labels: Array | None,
                          num_classes: int, conditioning: str, aux_classes: int,
                          dtype=jnp.float32) -> dict[str, Array]:
  """D's outputs from its last features [B, F] and its unconditional logit [B]:
  {"logit", "features"} and, with an auxiliary head, "class_logits" [B, aux_classes]."""
  outputs = {"logit": logit, "features": features}
  if conditioning == "projection":
    embedding = nn.Embed(num_classes, features.shape[-1],
                         embedding_init=nn.initializers.normal(0.02),
                         name="projection")(labels)
    outputs["logit"] = logit + jnp.sum(embedding * features, axis=-1).astype(logit.dtype)
  if aux_classes:
    outputs["class_logits"] = nn.Dense(aux_classes, dtype=dtype, name="class_head")(features)
  return outputs
