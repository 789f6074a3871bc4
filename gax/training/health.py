"""Training-health signals, logged with every sample grid, and warnings when training
fails in the ways GAN users most often meet.

- `health/r_t_train`, `health/r_t_held_out`: E[sign(D(x) - threshold)] over fixed sets of
  `health.real_examples` training and held-out real images, D in inference mode without
  augmentation. Both near 1 with a gap between them is D memorising its training images
  (the overfitting that ADA's r_t measures on the training batches; Karras et al. 2020).
- `health/grid_diversity`: the mean pairwise distance between the grid's images over the
  same for as many training images: about 1 for a generator as varied as the data, near 0
  when it has collapsed onto a few images.
- `health/grid_modes`: how many classes the digit classifier finds in the grid, where the
  dataset has labels and evaluation uses that classifier: by default where the run
  evaluates during training (the classifier is loaded then anyway; `health.grid_modes`).
The sample grids these are measured on are drawn here too (`grid_sampler`), from fixed
inputs, with G's average where there is one. Warnings, one line each and once until the
run recovers: D's loss within
`health.d_loss_near_floor` of the way from its floor to its value at chance for
`health.patience` logs in a row (D wins, G learns nothing), and two grids in a row (after
step 0) whose diversity is below `health.min_diversity` or that show fewer than half the
classes (collapse).
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from gax import errors, memory
from gax.data import datasets as data
from gax.evaluation import classifier
from gax.training import sharding
from gax.variants import ema


def mean_pairwise_distance(images: np.ndarray) -> float:
  """The mean L2 distance between two different images of the set (pixels in [0, 1])."""
  flat = np.asarray(images, np.float64).reshape(len(images), -1)
  if flat.max() > 1.5:  # uint8
    flat = flat / 255.0
  squared = np.sum(flat ** 2, axis=1)
  gram = squared[:, None] + squared[None, :] - 2 * flat @ flat.T
  distances = np.sqrt(np.maximum(gram, 0.0))
  count = len(flat)
  return float(distances.sum() / max(count * (count - 1), 1))


def loss_at_chance(loss) -> float:
  """D's loss when it outputs its threshold on every image (it cannot tell them apart)."""
  at = jnp.full((1,), loss.threshold, jnp.float32)
  return float(loss.discriminator(at, at))


@dataclasses.dataclass
class Monitor:
  """One run's health bookkeeping: the grid's signals, and when to warn."""

  config: ml_collections.ConfigDict  # the run's `health` fields
  label: str = ""  # a population member's prefix for log lines
  floor: float | None = None  # D's loss at perfect discrimination (None: unbounded)
  chance: float | None = None  # D's loss at chance
  loss_metric: str = "d_loss"  # the logged metric that holds D's adversarial loss
  reference_distance: float | None = None  # of as many real training images as the grid
  classify: Callable[[np.ndarray], np.ndarray] | None = None  # uint8 images -> classes
  num_classes: int = 0
  _streak: int = 0
  _collapsed_grids: int = 0
  _warned: set = dataclasses.field(default_factory=set)

  def _warn(self, kind: str, message: str) -> None:
    if kind not in self._warned:
      self._warned.add(kind)
      logging.warning("%s%s", self.label, message)

  def after_log(self, step: int, d_loss: float) -> None:
    """Counts logs with D's loss at its floor; warns after `patience` in a row."""
    if self.floor is None or self.chance is None:
      return
    near = d_loss - self.floor < self.config.d_loss_near_floor * (self.chance - self.floor)
    self._streak = self._streak + 1 if near else 0
    if not near:
      self._warned.discard("floor")
    elif self._streak >= self.config.patience:
      self._warn("floor", f"step {step}: D's loss ({d_loss:.4g}) has been at its floor "
                 f"({self.floor:g}; {self.chance:.3g} at chance) for {self._streak} logs in a "
                 "row: D tells real from fake outright and G gets little to learn from. "
                 "Try spectral norm (model.d_spectral_norm), a gradient penalty "
                 "(loss.penalty) or augmentation (augment.name)")

  def grid_signals(self, step: int, grid: np.ndarray) -> dict[str, float]:
    """The grid's diversity (and classes), with a warning when it has collapsed."""
    signals = {}
    if self.reference_distance:
      signals["health/grid_diversity"] = (mean_pairwise_distance(grid)
                                          / self.reference_distance)
    if self.classify is not None:
      signals["health/grid_modes"] = float(len(np.unique(self.classify(grid))))
    diversity = signals.get("health/grid_diversity", np.inf)
    modes = signals.get("health/grid_modes", np.inf)
    # An untrained G draws near-constant images: only trained grids count, two in a row.
    collapsed = step > 0 and (diversity < self.config.min_diversity
                              or 2 * modes < self.num_classes)
    self._collapsed_grids = self._collapsed_grids + 1 if collapsed else 0
    if self._collapsed_grids >= 2:
      found = [f"diversity {diversity:.3f} (real images: 1)" if np.isfinite(diversity) else "",
               f"{modes:.0f} of {self.num_classes} classes" if np.isfinite(modes) else ""]
      self._warn("collapse", f"step {step}: the sample grid looks collapsed ("
                 f"{', '.join(filter(None, found))}) for two grids in a row: G draws a few "
                 "images whatever z is. Try spectral norm, a gradient penalty, a lower G "
                 "learning rate or an average of G (ema.decay)")
    elif not collapsed:
      self._warned.discard("collapse")
    return signals


def create_monitor(config: ml_collections.ConfigDict, variant, reference: np.ndarray | None,
                   label: str = "") -> Monitor:
  """A run's monitor: the loss's floor from the variant's scorer, the grid's reference
  from `reference` (uint8 training images), and the digit classifier where it applies."""
  scorer = variant.scorer
  monitor = Monitor(config.health, label)
  if scorer is not None:
    monitor.floor, monitor.chance = scorer.loss.floor, loss_at_chance(scorer.loss)
    monitor.loss_metric = scorer.adversarial_metric
  if reference is not None and len(reference) > 1:
    monitor.reference_distance = mean_pairwise_distance(reference)
  modes = config.health.grid_modes
  if modes == "auto":
    modes = "yes" if config.eval_every else "no"
  if modes == "yes" and variant.sampler is not None and (
      config.eval.features == "digit_classifier"):
    train = data.load_source(config.data, data.Source(config.dataset, "train"))
    held_out = data.load_source(config.data, data.Source(config.dataset, config.eval.split))
    if train.labels is not None and held_out.labels is not None:
      network = classifier.load_or_train(
          train, held_out, classifier.recipe_of(config.eval),
          config.eval.cache_dir)
      monitor.classify, monitor.num_classes = network.predict, network.num_classes
  return monitor


def grid_reference(run) -> np.ndarray | None:
  """As many real training images as the sample grid has: the grid's diversity is
  measured against theirs. `run` is a gax.training.train.Run."""
  if "image" not in run.batches.spec:
    return None
  return run.batches.fixed_examples("image", run.config.num_samples)


def _sample_inputs(run):
  """The grid's fixed inputs (noise, labels or real images), one set per member."""
  return run.layout.each(lambda key: run.variant.sample_inputs(
      key, run.config.num_samples, run.batches.fixed_examples), run.keys["samples"])


def grid_bytes(run, state) -> int:
  """What the grid's forward pass holds at most, from the shapes of `state`."""
  inputs = jax.eval_shape(lambda: _sample_inputs(run))
  return memory.intermediate_bytes(run.layout.vmap(run.variant.sample), state["params"],
                                   state["batch_stats"], inputs)


def grid_sampler(run):
  """A function from the train state to the sample grid's images (on the host), drawn
  from the average of G where there is one and `eval.use_ema`."""
  replicated = run.layout.replicated
  inputs = sharding.global_array(jax.device_get(_sample_inputs(run)), replicated)
  sample = jax.jit(run.layout.vmap(run.variant.sample), out_shardings=replicated)
  return lambda state: jax.device_get(sample(
      *ema.generator_state(ema.chosen(state, run.config)), inputs))


def real_sets(run) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
  """Fixed training and held-out real images (uint8) with their labels where the batch
  has them: what D's r_t is measured on."""
  count, spec, batches = run.config.health.real_examples, run.batches.spec, run.batches
  if not count or run.variant.scorer is None or "image" not in spec:
    return {}
  labelled = "label" in spec
  sets = {"train": (batches.fixed_examples("image", count),
                    batches.fixed_examples("label", count) if labelled else None)}
  try:  # lazy: only the first `count` held-out images are decoded
    held_out = data.load_source(run.config.data, data.Source(
        spec["image"].source.dataset, run.config.eval.split), lazy=True)
  except errors.DataError as e:
    logging.info("No held-out r_t: %s", e)
    return sets
  if held_out.images.shape[1:] == batches.info.field_shapes["image"]:
    sets["held_out"] = (held_out.images[:count],
                        held_out.labels[:count] if labelled else None)
  return sets


def real_scorer(run):
  """A function from the train state to D's r_t = E[sign(D(x) - threshold)] on each set
  of real images (on the host)."""
  sets = real_sets(run)
  if not sets:
    return lambda state: {}
  scorer = run.variant.scorer

  def score(params, batch_stats, sets):
    return {f"health/r_t_{name}": jnp.mean(jnp.sign(
        scorer.score(params, batch_stats, data.to_model_range(images), labels)
        - scorer.loss.threshold)) for name, (images, labels) in sets.items()}

  replicated = run.layout.replicated
  sets = sharding.global_array(sets, replicated)
  scores = jax.jit(lambda params, batch_stats, sets: run.layout.vmap(
      lambda p, b: score(p, b, sets))(params, batch_stats), out_shardings=replicated)
  return lambda state: jax.device_get(scores(state["params"], state["batch_stats"], sets))
