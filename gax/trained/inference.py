"""Learned approximate inference (Goodfellow et al., 2014, future work): an encoder
E: x -> z for a trained generator, trained afterwards with G held fixed.

  python -m gax.infer --workdir=W [--step=N|best] [--steps=1000]

E minimises, on each step's fresh noise z and a batch of real training images x,
  mean ||E(G(z)) - z||^2  +  feature_weight * mean ||phi(G(E(x))) - phi(x)||^2,
latent regression on G's own images, and reconstruction of real images in the feature
space of gax's digit classifier phi (the one that gives FID its features), so that G(E(x))
keeps what the classifier reads in x rather than its exact pixels. A conditional G is
given x's label. Randomness is fold_in(seed key, step), as in training.

Writes W/inference/encoder.msgpack and W/inference/result.json, which holds what E was
trained for (the run's step, the recipe) and its evaluation on the held-out split:
`inference_label_agreement`, the share of G(E(x)) that the classifier reads as x's
label; `inference_l1`, the mean absolute pixel difference between x and G(E(x)) on a
[0, 1] scale. `gax.sample --reconstruct` draws x beside G(E(x)) and walks between two
real images through E.
"""

import dataclasses
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import serialization

from gax import errors, memory
from gax.data import datasets as data_lib
from gax.evaluation import batching, classifier
from gax.storage import files
from gax.trained import run as trained_run
from gax.variants import ema as ema_lib

Array = jax.Array
ENCODER_FILE, RESULT_FILE = "encoder.msgpack", "result.json"


@dataclasses.dataclass(frozen=True)
class InferenceRecipe:
  steps: int = 1000
  batch_size: int = 64
  learning_rate: float = 1e-3
  feature_weight: float = 1.0
  seed: int = 0

  def check(self) -> None:
    for name in ("steps", "batch_size"):
      if getattr(self, name) < 1:
        raise errors.ConfigError(f"--{name}={getattr(self, name)} must be >= 1")
    if not self.learning_rate > 0 or self.feature_weight < 0:
      raise errors.ConfigError("--learning_rate must be > 0 and --feature_weight "
                                    ">= 0")


class Encoder(nn.Module):
  """Image in [-1, 1] -> z: two stride-2 convolutions, then two dense layers."""

  noise_dim: int
  width: int = 32

  @nn.compact
  def __call__(self, images: Array) -> Array:
    x = images
    for multiple in (1, 2):
      x = nn.leaky_relu(nn.Conv(self.width * multiple, (4, 4), (2, 2))(x), 0.2)
    x = nn.leaky_relu(nn.Dense(8 * self.width)(x.reshape((x.shape[0], -1))), 0.2)
    return nn.Dense(self.noise_dim)(x)


def inference_dir(workdir: Path) -> Path:
  return Path(workdir) / "inference"


@dataclasses.dataclass(frozen=True)
class Inference:
  """A trained run's generator with an encoder beside it."""

  run: trained_run.TrainedRun
  encoder: Encoder

  @property
  def sampler(self):
    return self.run.variant.sampler

  def generator_state(self):
    return ema_lib.generator_state(ema_lib.chosen(self.run.state, self.run.config))

  def encode(self, encoder_params, images: Array) -> Array:
    return self.encoder.apply({"params": encoder_params}, images)

  def reconstruct(self, encoder_params, images: Array, labels: Array | None) -> Array:
    """G(E(x)), G in inference mode; labels for a conditional G."""
    params, batch_stats = self.generator_state()
    return self.sampler.draw(params, batch_stats, self.encode(encoder_params, images),
                             labels)


def _digit_features(digits: classifier.DigitClassifier):
  """phi: images in [-1, 1] -> the digit classifier's features, differentiably."""
  network = classifier.DigitCNN(digits.num_classes)
  return lambda images: network.apply({"params": digits.params}, (images + 1.0) * 127.5)[0]


def encoder_loss(inference: Inference, features, feature_weight: float, encoder_params,
                 real: Array, real_labels: Array | None, key: Array
                 ) -> tuple[Array, dict[str, Array]]:
  """Latent regression on G's images plus feature reconstruction of real images."""
  sampler = inference.sampler
  params, batch_stats = inference.generator_state()
  count = real.shape[0]
  noise = sampler.sample_noise(key, count)
  fake_labels = (jax.random.randint(jax.random.fold_in(key, 1), (count,), 0,
                                    sampler.num_classes) if sampler.num_classes else None)
  fake = sampler.draw(params, batch_stats, noise, fake_labels)
  latent = jnp.mean((inference.encode(encoder_params, fake) - noise) ** 2)
  rebuilt = inference.reconstruct(encoder_params, real, real_labels)
  feature = jnp.mean((features(rebuilt) - jax.lax.stop_gradient(features(real))) ** 2)
  return latent + feature_weight * feature, {"latent_loss": latent, "feature_loss": feature}


def digit_classifier(run: trained_run.TrainedRun, train: data_lib.ImageDataset,
                     held_out: data_lib.ImageDataset) -> classifier.DigitClassifier:
  """The run's evaluation classifier (cached; trained on the train split if absent)."""
  recipe = classifier.recipe_of(run.config.eval)
  return classifier.load_or_train(train, held_out, recipe, run.config.eval.cache_dir)


def check_run(run: trained_run.TrainedRun) -> None:
  if run.variant.sampler is None:
    raise errors.ConfigError(
        f"the {run.variant.name!r} variant translates images and draws nothing from "
        "noise, so there is no z to infer")
  if run.config.eval.features != "digit_classifier":
    raise errors.ConfigError(
        "the inference network reconstructs in the digit classifier's feature space; "
        f"this run evaluates with {run.config.eval.features!r} (a labelled digit dataset "
        "is needed)")


def check_step_memory(inference: Inference, recipe: InferenceRecipe, params,
                      train: data_lib.ImageDataset, conditional: bool) -> None:
  """Refuses a `--batch_size` whose encoder step the device cannot hold (traced, not
  run; with the digit classifier's shapes, before it is trained)."""
  num_classes = train.num_classes or int(train.labels.max()) + 1
  network = classifier.DigitCNN(num_classes)
  shapes = jax.eval_shape(network.init, jax.random.PRNGKey(0),
                          jnp.zeros((1, *train.image_shape), jnp.uint8))["params"]
  untrained = classifier.DigitClassifier(
      jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes), num_classes, 0.0)
  features = _digit_features(untrained)
  real = jax.ShapeDtypeStruct((recipe.batch_size, *train.image_shape), jnp.float32)
  labels = jax.ShapeDtypeStruct((recipe.batch_size,), jnp.int32) if conditional else None
  gradient = jax.grad(lambda p, x, y: encoder_loss(
      inference, features, recipe.feature_weight, p, x, y, jax.random.PRNGKey(0))[0])
  memory.check(memory.intermediate_bytes(gradient, params, real, labels),
               f"--batch_size = {recipe.batch_size} (the encoder's training step)",
               memory.device_bytes(), "the device")


def train_encoder(run: trained_run.TrainedRun, recipe: InferenceRecipe
                  ) -> tuple[Any, list[dict[str, float]]]:
  """E's parameters after `recipe.steps` steps, and its logged losses."""
  check_run(run)
  recipe.check()
  train = data_lib.load_dataset(run.config.data, run.config.dataset, "train")
  if train.labels is None:
    raise errors.DataError(
        f"the inference network reconstructs in the digit classifier's features, which "
        f"gax trains on class labels, and {run.config.dataset!r} has none")
  inference = Inference(run, Encoder(run.variant.sampler.noise_dim))
  conditional = bool(inference.sampler.num_classes)
  key = jax.random.PRNGKey(recipe.seed)
  params = inference.encoder.init(jax.random.fold_in(key, 2**31 - 1),
                                  jnp.zeros((1, *train.image_shape)))["params"]
  check_step_memory(inference, recipe, params, train, conditional)
  features = _digit_features(digit_classifier(run, train, held_out_examples(run)))
  optimizer = optax.adam(recipe.learning_rate)
  opt_state = optimizer.init(params)
  images = jnp.asarray(train.images)
  labels = jnp.asarray(train.labels) if conditional else None

  @jax.jit
  def step(params, opt_state, number):
    step_key = jax.random.fold_in(key, number)
    index = jax.random.randint(jax.random.fold_in(step_key, 2), (recipe.batch_size,), 0,
                               len(images))
    real = data_lib.to_model_range(images[index])
    grads, metrics = jax.grad(lambda p: encoder_loss(
        inference, features, recipe.feature_weight, p, real,
        None if labels is None else labels[index], step_key), has_aux=True)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  logged = []
  for number in range(recipe.steps):
    params, opt_state, metrics = step(params, opt_state, number)
    if (number + 1) % max(1, recipe.steps // 10) == 0 or number + 1 == recipe.steps:
      logged.append({"step": number + 1, **{k: float(v) for k, v in metrics.items()}})
      logging.info("encoder step %d/%d  latent %.4f  feature %.4f", number + 1,
                   recipe.steps, logged[-1]["latent_loss"], logged[-1]["feature_loss"])
  return params, logged


def held_out_examples(run: trained_run.TrainedRun) -> data_lib.ImageDataset:
  return data_lib.load_dataset(run.config.data, run.config.dataset, run.config.eval.split)


def evaluate_encoder(run: trained_run.TrainedRun, encoder_params, batch_size: int = 500
                     ) -> dict[str, float]:
  """Classifier agreement and L1 between held-out x and G(E(x))."""
  held_out = held_out_examples(run)
  if held_out.labels is None:
    raise errors.DataError(f"the inference evaluation needs labels in "
                             f"{run.config.dataset!r} ({run.config.eval.split!r})")
  inference = Inference(run, Encoder(run.variant.sampler.noise_dim))
  conditional = bool(inference.sampler.num_classes)
  rebuild = jax.jit(lambda x, y: inference.reconstruct(encoder_params, x, y))
  rebuilt = batching.in_batches(lambda rows: rebuild(
      data_lib.to_model_range(held_out.images[rows]),
      jnp.asarray(held_out.labels[rows]) if conditional else None), len(held_out), batch_size)
  digits = digit_classifier(
      run, data_lib.load_dataset(run.config.data, run.config.dataset, "train"), held_out)
  real = held_out.images
  return {
      "inference_label_agreement": float(np.mean(
          digits.predict(data_lib.to_uint8(rebuilt)) == held_out.labels)),
      "inference_l1": float(np.mean(np.abs(
          (rebuilt + 1.0) / 2.0 - real.astype(np.float32) / 255.0))),
      "classifier_accuracy_on_x": float(np.mean(digits.predict(real) == held_out.labels)),
      "num_examples": len(held_out),
  }


def save(run: trained_run.TrainedRun, encoder_params, recipe: InferenceRecipe,
         logged: list[dict], result: dict[str, float]) -> Path:
  directory = inference_dir(run.workdir)
  files.write_atomically(directory / ENCODER_FILE, serialization.to_bytes(encoder_params))
  files.write_json(directory / RESULT_FILE, {
      "run_step": run.step, "recipe": dataclasses.asdict(recipe), "losses": logged,
      "evaluation": result})
  return directory


def load(run: trained_run.TrainedRun) -> tuple[Inference, Any]:
  """The run's trained encoder, or a clear error saying how to train one."""
  path = inference_dir(run.workdir) / ENCODER_FILE
  if not path.exists():
    raise errors.ConfigError(
        f"{run.workdir} has no inference network; train one first with "
        f"`python -m gax.infer --workdir={run.workdir}`")
  inference = Inference(run, Encoder(run.variant.sampler.noise_dim))
  image_shape = held_out_examples(run).image_shape
  template = inference.encoder.init(jax.random.PRNGKey(0),
                                    jnp.zeros((1, *image_shape)))["params"]
  try:
    params = serialization.from_bytes(template, path.read_bytes())
    if jax.tree.structure(params) != jax.tree.structure(template):
      raise ValueError("its parameters are not this encoder's")
  except Exception as e:  # noqa: BLE001 (msgpack raises many types for damaged bytes)
    raise errors.ConfigError(
        f"{path} cannot be read as this run's encoder ({type(e).__name__}: "
        f"{str(e).splitlines()[0][:200] if str(e) else 'damaged'}); train it again with "
        f"`python -m gax.infer --workdir={run.workdir}`") from None
  return inference, params


def run_inference(workdir: str, step: str | None, recipe: InferenceRecipe) -> dict:
  run = trained_run.load(workdir, step)
  params, logged = train_encoder(run, recipe)
  result = evaluate_encoder(run, params)
  directory = save(run, params, recipe, logged, result)
  logging.info("Inference network of step %d: %s; written to %s", run.step, result,
               directory)
  return result
