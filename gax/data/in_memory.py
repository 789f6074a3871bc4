"""The training data in the run's seeded order, as dict batches.

Batch b of a source is slice b mod (N // B) of a permutation drawn from
fold_in(key, b // (N // B)); the key is the run's data key when the batch reads one
source, and fold_in(data key, i) for the i-th of several. The order depends only on the
seed and the step, so a resumed run reads exactly what an uninterrupted one would,
whether the data lives on the device (gathered inside the compiled step), on the host
(handed to each dispatch) or on disk (streamed by gax/data/streaming.py in the same order).
Fields of one source share its order (an image and its label, the two images of a
pair), and random crops and flips, taken inside the step on every path, are drawn per
source and example, so both images of a pair get the same one.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from gax import errors
from gax.data import datasets as data_lib

Array = jax.Array
_AUGMENT_STREAM = 0x61756700  # "aug": the crops' and flips' stream of a source's key


def batch_indices(data_key: Array, batch_number: Array | int, num_examples: int,
                  batch_size: int) -> Array:
  """Example indices of the run's `batch_number`-th batch (traceable)."""
  batches_per_epoch = num_examples // batch_size
  epoch = batch_number // batches_per_epoch
  position = batch_number % batches_per_epoch
  order = jax.random.permutation(jax.random.fold_in(data_key, epoch), num_examples)
  return jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))


@functools.partial(jax.jit, static_argnums=(2, 3))
def _host_indices(data_key, numbers, num_examples, batch_size):
  return jax.vmap(lambda n: batch_indices(data_key, n, num_examples, batch_size))(numbers)


@dataclasses.dataclass(frozen=True)
class TrainBatches:
  """The batches of every step: {field: [batches_per_step, batch_size, ...]}.

  `arrays` holds every example of each field of `spec` (uint8 images, int32 labels).
  On the device they are an argument of the compiled step, which gathers its own
  batches (`gather`); on the host, `host_batches` hands each dispatch its batches. Either
  way `prepare`, inside the step, crops, flips and scales the images to [-1, 1].
  """

  spec: data_lib.BatchSpec
  arrays: dict[str, np.ndarray]
  batch_size: int
  batches_per_step: int
  on_device: bool
  crop_size: int = 0  # > 0: a random crop_size x crop_size window of each image
  random_flip: bool = False  # mirror each image left-right with probability 1/2
  num_classes: int | None = None  # of the labelled sources

  def __post_init__(self):
    for source in self.sources:
      count = self.num_examples(source)
      if self.batch_size > count:
        raise errors.DataError(
            f"batch_size {self.batch_size} is larger than the dataset "
            f"{source.dataset!r} ({count} images)")
      sizes = {self.arrays[f].shape[1:3] for f in self._image_fields(source)}
      if len(sizes) > 1:
        raise errors.DataError(f"the images read from {source.dataset!r} differ in size "
                                 f"({sorted(sizes)}); a pair must share one size")
      if sizes and self.crop_size > min(next(iter(sizes))):
        height, width = next(iter(sizes))
        raise errors.DataError(f"data.crop_size {self.crop_size} is larger than the "
                                 f"images ({height}x{width})")

  @property
  def sources(self) -> tuple[data_lib.Source, ...]:
    """The distinct sources, in the order the spec names them."""
    return tuple(dict.fromkeys(field.source for field in self.spec.values()))

  def _fields(self, source: data_lib.Source) -> list[str]:
    return [name for name, field in self.spec.items() if field.source == source]

  def _image_fields(self, source: data_lib.Source) -> list[str]:
    return [name for name in self._fields(source) if self.spec[name].feature != "label"]

  def num_examples(self, source: data_lib.Source) -> int:
    return len(self.arrays[self._fields(source)[0]])

  @property
  def num_bytes(self) -> int:
    return sum(array.nbytes for array in self.arrays.values())

  @property
  def info(self) -> data_lib.DataInfo:
    """Each field's shape per example as the model sees it (after any crop), and the
    number of classes."""
    shapes = {}
    for name, array in self.arrays.items():
      shape = array.shape[1:]
      if self.spec[name].feature != "label" and self.crop_size:
        shape = (self.crop_size, self.crop_size, *shape[2:])
      shapes[name] = tuple(shape)
    return data_lib.DataInfo(shapes, self.num_classes)

  def source_key(self, data_key: Array, source: data_lib.Source) -> Array:
    if len(self.sources) == 1:
      return data_key
    return jax.random.fold_in(data_key, self.sources.index(source))

  def _numbers(self, step):
    return step * self.batches_per_step + jnp.arange(self.batches_per_step)

  def gather(self, data: dict[str, Array], step: Array, data_key: Array
             ) -> dict[str, Array]:
    """Inside the compiled step: this step's raw batches from the resident `data`."""
    numbers = self._numbers(step)
    batches = {}
    for source in self.sources:
      key = self.source_key(data_key, source)
      index = jax.vmap(lambda n, key=key, source=source: batch_indices(
          key, n, self.num_examples(source), self.batch_size))(numbers)
      for name in self._fields(source):
        batches[name] = jnp.take(data[name], index, axis=0)
    return batches

  def host_batches(self, data_key: Array, first_step: int, num_steps: int
                   ) -> dict[str, np.ndarray]:
    """On the host: raw batches for steps [first_step, first_step + num_steps),
    {field: [num_steps, batches_per_step, batch_size, ...]}."""
    numbers = (first_step * self.batches_per_step
               + np.arange(num_steps * self.batches_per_step))
    batches = {}
    for source in self.sources:
      index = np.asarray(_host_indices(self.source_key(data_key, source), numbers,
                                       self.num_examples(source), self.batch_size))
      for name in self._fields(source):
        picked = self.arrays[name][index]
        batches[name] = picked.reshape(num_steps, self.batches_per_step, *picked.shape[1:])
    return batches

  def _augment(self, images: list[Array], key: Array, numbers: Array) -> list[Array]:
    """The same random crop and flip of each example for every image field given."""
    height, width = (self.crop_size or images[0].shape[2],
                     self.crop_size or images[0].shape[3])

    def one(key, *examples):
      crop_key, flip_key = jax.random.split(key)
      top = jax.random.randint(crop_key, (), 0, examples[0].shape[0] - height + 1)
      left = jax.random.randint(jax.random.fold_in(crop_key, 1), (), 0,
                                examples[0].shape[1] - width + 1)
      flip = jax.random.uniform(flip_key) < 0.5
      out = []
      for example in examples:
        example = jax.lax.dynamic_slice(example, (top, left, 0),
                                        (height, width, example.shape[2]))
        if self.random_flip:
          example = jnp.where(flip, example[:, ::-1], example)
        out.append(example)
      return out

    augment_key = jax.random.fold_in(key, _AUGMENT_STREAM)
    keys = jax.vmap(lambda n: jax.random.split(jax.random.fold_in(augment_key, n),
                                               self.batch_size))(numbers)
    return jax.vmap(jax.vmap(one))(keys, *images)

  def prepare(self, raw: dict[str, Array], step: Array, data_key: Array
              ) -> dict[str, Array]:
    """Inside the step: crops and flips (when configured), images scaled to [-1, 1];
    labels pass unchanged."""
    batch = dict(raw)
    if self.crop_size or self.random_flip:
      numbers = self._numbers(step)
      for source in self.sources:
        names = self._image_fields(source)
        if names:
          augmented = self._augment([batch[n] for n in names],
                                    self.source_key(data_key, source), numbers)
          batch.update(zip(names, augmented))
    return {name: data_lib.to_model_range(value) if self.spec[name].feature != "label"
            else value for name, value in batch.items()}

  @property
  def rows_per_process(self) -> int:
    """Rows of each batch that `host_batches` gives this process: all of them."""
    return self.batch_size

  def close(self) -> None:
    """Batches held in memory keep no worker processes or files to release."""

  def fixed_examples(self, name: str, count: int) -> np.ndarray:
    """`count` examples of a field in a fixed order independent of the seed, center
    cropped to the training size: the fixed inputs of sample grids."""
    array = self.arrays[name]
    chosen = np.random.default_rng(0).permutation(len(array))[:count]
    examples = array[chosen]
    if self.spec[name].feature != "label" and self.crop_size:
      top = (examples.shape[1] - self.crop_size) // 2
      left = (examples.shape[2] - self.crop_size) // 2
      examples = examples[:, top:top + self.crop_size, left:left + self.crop_size]
    return examples
