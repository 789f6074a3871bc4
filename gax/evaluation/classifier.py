"""The digit feature network: a small CNN classifier gax trains itself, once per dataset.

Inception weights cannot be downloaded everywhere, so for labelled image datasets
(mnist5k, digits, MNIST from TFDS, ...) gax trains a classifier on the dataset's train
split, deterministically from a seed, and caches it on disk keyed by a hash of the
training data, the image shape, the seed and the recipe. Its penultimate layer gives
the features of FID, KID and precision/recall; its softmax the Inception Score.
"""

import dataclasses
import functools
import hashlib
import json
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from flax import serialization

from gax import errors
from gax.data import datasets as data_lib
from gax.evaluation import batching
from gax.storage import files

Array = jax.Array
RECIPE_VERSION = 1  # bump when the network or its training changes: old caches retire


class DigitCNN(nn.Module):
  """conv16-pool-conv32-pool-dense(feature_dim)-dropout-dense(classes), ReLUs."""

  num_classes: int = 10
  feature_dim: int = 128

  @nn.compact
  def __call__(self, images: Array, train: bool = False) -> tuple[Array, Array]:
    """uint8 images -> (features, logits)."""
    x = images.astype(jnp.float32) / 127.5 - 1.0
    for width in (16, 32):
      x = nn.relu(nn.Conv(width, (3, 3))(x))
      if min(x.shape[1:3]) >= 2:
        x = nn.max_pool(x, (2, 2), (2, 2))
    features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    logits = nn.Dense(self.num_classes)(
        nn.Dropout(0.5, deterministic=not train)(features))
    return features, logits


@dataclasses.dataclass(frozen=True)
class ClassifierRecipe:
  seed: int = 0
  steps: int = 800
  batch_size: int = 128
  learning_rate: float = 1e-3
  shift_fraction: float = 1 / 14  # random translations up to this share of the size


def _shift(images: Array, key: Array, max_shift: int) -> Array:
  """Random translations by up to `max_shift` pixels (zero padding), one per image."""
  if max_shift == 0:
    return images
  height, width = images.shape[1:3]
  padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)))
  offsets = jax.random.randint(key, (images.shape[0], 2), 0, 2 * max_shift + 1)
  crop = lambda image, offset: jax.lax.dynamic_slice(
      image, (offset[0], offset[1], 0), (height, width, image.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def recipe_of(eval_config) -> ClassifierRecipe:
  """The digit classifier a run's `config.eval` asks for."""
  return ClassifierRecipe(seed=eval_config.classifier_seed,
                          steps=eval_config.classifier_steps)


def train_classifier(images: np.ndarray, labels: np.ndarray, num_classes: int,
                     recipe: ClassifierRecipe) -> dict:
  """Trains DigitCNN on uint8 images; returns its params. Deterministic given the recipe."""
  model = DigitCNN(num_classes)
  root = jax.random.PRNGKey(recipe.seed)
  params = model.init(jax.random.fold_in(root, 0), jnp.asarray(images[:1]))["params"]
  steps_per_epoch = len(images) // recipe.batch_size
  max_shift = int(recipe.shift_fraction * min(images.shape[1:3]))
  optimizer = optax.adam(optax.cosine_decay_schedule(recipe.learning_rate, recipe.steps))
  opt_state = optimizer.init(params)

  @jax.jit
  def step(params, opt_state, batch_images, batch_labels, key):
    shift_key, dropout_key = jax.random.split(key)
    batch_images = _shift(batch_images, shift_key, max_shift)

    def loss_fn(params):
      _, logits = model.apply({"params": params}, batch_images, train=True,
                              rngs={"dropout": dropout_key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  data_key, step_key = jax.random.fold_in(root, 1), jax.random.fold_in(root, 2)
  images, labels = jnp.asarray(images), jnp.asarray(labels)
  order = None
  for i in range(recipe.steps):
    epoch, position = divmod(i, steps_per_epoch)
    if position == 0:
      order = jax.random.permutation(jax.random.fold_in(data_key, epoch), len(images))
    index = order[position * recipe.batch_size:(position + 1) * recipe.batch_size]
    params, opt_state = step(params, opt_state, images[index], labels[index],
                             jax.random.fold_in(step_key, i))
  return params


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, images):
  return model.apply({"params": params}, images)


@dataclasses.dataclass(frozen=True)
class DigitClassifier:
  """A trained DigitCNN as a feature extractor: uint8 images -> (features, probs)."""

  params: dict
  num_classes: int
  accuracy: float  # on the held-out split it was checked against
  batch_size: int = 1000

  name = "digit_classifier"

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    model = DigitCNN(self.num_classes)
    features, logits = batching.in_batches(
        lambda rows: _apply(model, self.params, jnp.asarray(images[rows])), len(images),
        self.batch_size)
    return features, np.asarray(jax.nn.softmax(logits), np.float64)

  def predict(self, images: np.ndarray) -> np.ndarray:
    return self(images)[1].argmax(axis=1)


def _cache_key(train: data_lib.ImageDataset, recipe: ClassifierRecipe) -> str:
  digest = hashlib.sha256()
  digest.update(np.ascontiguousarray(train.images).tobytes())
  digest.update(np.ascontiguousarray(train.labels).tobytes())
  digest.update(json.dumps([RECIPE_VERSION, dataclasses.asdict(recipe),
                            train.images.shape]).encode())
  return digest.hexdigest()[:16]


def load_or_train(train: data_lib.ImageDataset, held_out: data_lib.ImageDataset,
                  recipe: ClassifierRecipe = ClassifierRecipe(),
                  cache_dir: Path | None = None) -> DigitClassifier:
  """The cached classifier for this training data and recipe, trained if absent."""
  if train.labels is None or held_out.labels is None:
    raise errors.DataError(
        f"dataset {train.name!r} has no labels, so gax cannot train its digit feature "
        "network on it; give another feature network with "
        "--config.eval.features=inception or =package.module:function (README: Evaluation)")
  num_classes = train.num_classes or int(max(train.labels.max(), held_out.labels.max())) + 1
  shape = "x".join(map(str, train.image_shape))
  path = (Path(cache_dir or files.cache_dir()) / "classifiers"
          / f"{train.name}_{shape}_{_cache_key(train, recipe)}.msgpack")
  with files.exclusive(path.with_suffix(".lock")):  # concurrent runs train it once
    return _load_or_train(train, held_out, recipe, num_classes, path)


def _load_or_train(train: data_lib.ImageDataset, held_out: data_lib.ImageDataset,
                   recipe: ClassifierRecipe, num_classes: int, path: Path
                   ) -> DigitClassifier:
  shape = "x".join(map(str, train.image_shape))
  template = DigitCNN(num_classes).init(jax.random.PRNGKey(0),
                                        jnp.asarray(train.images[:1]))["params"]
  if path.exists():
    try:
      params = serialization.from_bytes(template, path.read_bytes())
      accuracy = json.loads(path.with_suffix(".json").read_text())["accuracy"]
      return DigitClassifier(params, num_classes, accuracy)
    except Exception as e:  # a damaged cache file is rebuilt, never trusted
      logging.warning("Ignoring the unreadable cached classifier %s (%s: %s)", path,
                      type(e).__name__, e)
  logging.info("Training the digit feature network on %s (%d images, %s); cached at %s",
               train.name, len(train), shape, path)
  params = train_classifier(train.images, train.labels, num_classes, recipe)
  classifier = DigitClassifier(params, num_classes, 0.0)
  accuracy = float(np.mean(classifier.predict(held_out.images) == held_out.labels))
  logging.info("Digit feature network: held-out accuracy %.4f", accuracy)
  files.write_json(path.with_suffix(".json"), {
      "accuracy": accuracy, "dataset": train.name, "image_shape": train.image_shape,
      "recipe": dataclasses.asdict(recipe), "version": RECIPE_VERSION})
  files.write_atomically(path, serialization.to_bytes(params))
  return dataclasses.replace(classifier, accuracy=accuracy)
