"""The interface of a variant: what gax asks of it, and what it is built from.

A variant is one module, `gax/variants/NAME.py`, registered by name in
`gax/variants/__init__.py`. From the config alone the module says which config fields are
its own (`add_defaults`, and `HPARAMS`, its continuous loss weights), checks them
(`validate`), shrinks them for tests (`tiny`) and says what its batch holds
(`batch_spec`); `create` then builds the `Variant` from the config and the data's
shapes. The rest of gax asks that object for everything else: its networks' initial
parameters, its two losses, its sample grids, how to draw images from it, its evaluator
and the metric that picks the best checkpoint.

Losses are `(params, batch_stats, batch, key) -> (loss, (new batch_stats, metrics))`.
`params` and `batch_stats` are dicts over the two optimised groups, "generator" and
"discriminator" (`batch_stats` may hold more: whatever state a variant keeps beside its
networks, such as CycleGAN's image pools or ADA's augmentation probability); the new
batch_stats returned need only hold the groups the loss changed. `batch` is a dict of
arrays in model range: images in [-1, 1], labels as integers. A loss that needs D's
input gradient (a gradient penalty) takes it inside, from D closed over its step's
inputs; the update factory differentiates the whole loss once more.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import jax
import ml_collections
import numpy as np

from gax.data import datasets as data_lib

Array = jax.Array
Pytree = Any
Batch = dict[str, Array]
LossOutput = tuple[Array, tuple[dict, dict[str, Array]]]
# A train state -> the evaluation's results (metrics, and anything JSON can hold).
Evaluator = Callable[[dict[str, Any]], dict[str, Any]]
# (field name, count) -> that many fixed uint8 examples of a batch field, for grids.
ExampleSource = Callable[[str, int], np.ndarray]


@dataclasses.dataclass(frozen=True)
class BestMetric:
  """The evaluation result that picks the best checkpoint, and which way is better."""

  name: str
  higher_is_better: bool = False

  def improves(self, value: float, best: float | None) -> bool:
    if best is None:
      return True
    return value > best if self.higher_is_better else value < best


class Sampler(Protocol):
  """A variant that draws images from noise (and a class label, when conditional)."""

  noise_dim: int
  num_classes: int  # 0: unconditional

  def sample_noise(self, key: Array, count: int) -> Array: ...

  def draw(self, params: Pytree, batch_stats: Pytree, noise: Array,
           labels: Array | None) -> Array:
    """Images in [-1, 1] for the noise vectors (and labels); G in inference mode."""


class Scorer(Protocol):
  """A variant whose D scores one image with one number (gax/training/health.py's signals)."""

  loss: Any  # a losses.AdversarialLoss: D's threshold, its floor and its loss at chance
  adversarial_metric: str  # the logged metric that holds D's loss of that kind

  def score(self, params: Pytree, batch_stats: Pytree, images: Array,
            labels: Array | None) -> Array:
    """D's raw outputs for images in [-1, 1], in inference mode, without augmentation."""


class Variant(Protocol):
  name: str
  best_metric: BestMetric
  # Whether the G step may train on the last D step's fake batch (g_step_fake="reuse");
  # such a variant is also a `FakeReuse`.
  reuses_fake: bool
  # How to draw images from noise, for `gax.sample`; None where the variant does not
  # (CycleGAN translates images instead).
  sampler: Sampler | None
  # How D scores single images, for the health signals; None where it does not.
  scorer: Scorer | None

  def with_hparams(self, hparams: dict[str, Array]) -> "Variant":
    """Itself, with the (possibly traced) loss weights of the train state's hparams."""

  def init(self, key: Array) -> tuple[Pytree, Pytree]:
    """(params, batch_stats), each a dict over "generator" and "discriminator"."""

  def discriminator_loss(self, params: Pytree, batch_stats: Pytree, batch: Batch,
                         key: Array, fake: Batch | None = None,
                         iteration: Array | int = 0) -> LossOutput:
    """D's loss; on `fake` (from `generate`) when given, else on fakes of its own.
    `iteration` counts the D updates before this one, for terms taken every N updates
    (a lazy gradient penalty)."""

  def generator_loss(self, params: Pytree, batch_stats: Pytree, batch: Batch,
                     key: Array) -> LossOutput: ...

  def sample_inputs(self, key: Array, count: int, examples: ExampleSource) -> Pytree:
    """The fixed inputs of the sample grids (noise, labels, or real images)."""

  def sample(self, params: Pytree, batch_stats: Pytree, inputs: Pytree) -> Array:
    """The sample grid's images, in [-1, 1], for `sample_inputs`."""

  def grid_columns(self, count: int) -> int | None:
    """Columns of the grid of `count` sample inputs (None: as square as it gets)."""

  def create_evaluator(self, config: ml_collections.ConfigDict) -> Evaluator:
    """Its evaluation: train state -> metrics; the real side comes from the held-out
    split (`config.eval.split`)."""


class FakeReuse(Protocol):
  """What a variant with `reuses_fake` adds: its fake batch, and G's loss on it."""

  def generate(self, params: Pytree, batch_stats: Pytree, batch: Batch, key: Array
               ) -> tuple[Batch, dict]:
    """A training fake batch ({"image": ...} and whatever conditions it) and G's new
    batch statistics."""

  def generator_loss_on_fake(self, params: Pytree, batch_stats: Pytree, fake: Batch,
                             key: Array) -> LossOutput:
    """G's loss as a function of a fake batch, D fixed."""


class VariantModule(Protocol):
  """What a registered variant module provides."""

  # Continuous hyperparameters of the variant's losses: config path -> name in the
  # train state's hparams. Population members may differ in them.
  HPARAMS: Mapping[str, str]

  def add_defaults(self, config: ml_collections.ConfigDict, **options) -> None:
    """Adds the variant's own fields (`config.model`, `config.loss`, ...) to a base
    config, at their defaults."""

  def validate(self, config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the first of the variant's own fields (its networks,
    losses, batch fields) whose value it cannot train with."""

  def tiny(self, config: ml_collections.ConfigDict) -> None:
    """Shrinks the variant's networks (and what their sizes need) to a few CPU-seconds
    per step, for tests and smoke runs (gax.variants.tiny sets the run-wide sizes)."""

  def batch_spec(self, config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
    """What the training batch holds, field by field."""

  def create(self, config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> Variant:
    """The variant for data of these shapes (and classes)."""
