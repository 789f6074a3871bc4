"""The streaming input path: datasets read by index, decoded in grain worker processes.

For datasets that do not fit in memory (`data.pipeline`: "stream", or "auto" when the
decoded dataset is larger than `data.max_memory_bytes`). Each source is a grain
`MapDataset` whose element k is row k % R of batch b = first + k // R, and whose
example is the one today's in-memory path would gather there: position (b mod E) * B +
row of the permutation of epoch b // E drawn from fold_in(source key, epoch)
(gax/data/in_memory.py's order, E batches per epoch). The permutations are computed in
the main process a window of epochs at a time, written to a temporary .npy file that
the workers map read-only (16 MiB at most, up to 1,024 epochs; a stream past them
starts the next window). Decoding runs in `data.workers` processes
(`mp_prefetch`), each keeping `data.prefetch` batches ahead, so memory grows with
batch x prefetch x workers, not with the dataset. A resumed run starts the pipeline at
its step's batch and reads exactly what an uninterrupted run reads.

In a multi-process run each process decodes only the rows of the batch its own devices
hold (`process_rows`); populations read whole batches in every process.

An example whose file fails to decode in a worker (a truncated file that passed the
header scan, or one replaced by an image of another size) is replaced by the next example
that decodes, with a warning naming it once. Decoding workers end with their parent
process, however it ends.
"""

import atexit
import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path

import grain
import jax
import numpy as np
from absl import flags, logging

from gax import errors
from gax.data import datasets as data_lib
from gax.data import in_memory, readers

_ORDER_WINDOW_INDICES = 2 ** 22  # int32 indices per order file (16 MiB) ...
_ORDER_WINDOW_EPOCHS = 1024  # ... and at most this many epochs
_MAX_SUBSTITUTES = 16


@functools.cache
def _order_dir() -> Path:
  path = Path(tempfile.mkdtemp(prefix="gax-order-"))
  atexit.register(shutil.rmtree, path, ignore_errors=True)
  return path


@functools.partial(jax.jit, static_argnums=(2,))
def _permutations(key, epochs, num_examples):
  return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, e),
                                                   num_examples))(epochs)


def _worker_init(worker_index: int, worker_count: int) -> None:
  """Each decoding worker ends with the process that started it, however that ends."""
  del worker_index, worker_count
  readers.exit_with_parent()


class Rows:
  """The examples of batches [first_batch, first_batch + num_batches), `row_count` rows
  from `row_start` of each, in order: what grain's workers read (picklable)."""

  def __init__(self, reader, fields: dict[str, str], order_path: str, first_epoch: int,
               batches_per_epoch: int, batch_size: int, first_batch: int,
               num_batches: int, row_start: int, row_count: int):
    self.reader, self.fields, self.order_path = reader, fields, order_path
    self.first_epoch, self.batches_per_epoch = first_epoch, batches_per_epoch
    self.batch_size, self.first_batch, self.num_batches = batch_size, first_batch, num_batches
    self.row_start, self.row_count = row_start, row_count
    self._order = None
    self._warned = set()

  def __getstate__(self):
    state = dict(self.__dict__)
    state["_order"] = None  # each worker maps the file itself
    return state

  def __len__(self) -> int:
    return self.num_batches * self.row_count

  def example_index(self, k: int) -> int:
    if self._order is None:
      self._order = np.load(self.order_path, mmap_mode="r")
    batch = self.first_batch + k // self.row_count
    epoch, position = divmod(batch, self.batches_per_epoch)
    return int(self._order[epoch - self.first_epoch,
                           position * self.batch_size + self.row_start + k % self.row_count])

  def _decoded(self, index: int) -> dict[str, np.ndarray]:
    """Example `index`, its images at the dataset's shape; raises what decoding raises, or
    ValueError for an image of another shape (a file replaced since the scan)."""
    example = self.reader.read(index)
    out = {name: np.asarray(example[feature]) for name, feature in self.fields.items()}
    for name, feature in self.fields.items():
      if feature != "label" and out[name].shape != tuple(self.reader.image_shape):
        raise ValueError(f"its image is {out[name].shape}, not the dataset's "
                         f"{tuple(self.reader.image_shape)} (changed since the scan?)")
    return out

  def __getitem__(self, k: int) -> dict[str, np.ndarray]:
    index = self.example_index(k)
    for attempt in range(_MAX_SUBSTITUTES):
      candidate = (index + attempt) % len(self.reader)
      try:
        return self._decoded(candidate)
      except readers.UNREADABLE as e:
        name = self.reader.name(candidate)
        if name not in self._warned:  # once per file, however often it is read
          self._warned.add(name)
          logging.warning("Cannot decode %s (%s); using the next example in its place "
                          "(said once per file)", name, str(e).splitlines()[0][:200])
    raise errors.DataError(f"{_MAX_SUBSTITUTES} examples in a row from "
                           f"{self.reader.name(index)} cannot be decoded; the dataset "
                           "changed while it was read?")


class _SourceStream:
  """One source's batches for one data key, from a batch number on."""

  def __init__(self, batches: "StreamedBatches", source: data_lib.Source, key,
               first_batch: int):
    self.batches, self.source, self.key = batches, source, key
    self.next_batch = first_batch
    self._iterator, self._window_end, self._order_path = None, first_batch, None

  def _start(self):
    batches, source = self.batches, self.source
    num_examples = batches.num_examples(source)
    per_epoch = num_examples // batches.batch_size
    first_epoch = self.next_batch // per_epoch
    window = max(1, min(_ORDER_WINDOW_INDICES // num_examples, _ORDER_WINDOW_EPOCHS))
    order = np.asarray(_permutations(self.key, np.arange(first_epoch, first_epoch + window),
                                     num_examples), np.int32)
    path = self._order_path = _order_dir() / f"order-{id(self)}-{first_epoch}.npy"
    np.save(path, order)
    self._window_end = (first_epoch + window) * per_epoch
    names = batches._fields(source)
    fields = {name: batches.spec[name].feature for name in names}
    reader = batches.arrays[names[0]].reader
    row_start, row_count = batches.process_rows
    rows = Rows(reader, fields, str(path), first_epoch, per_epoch, batches.batch_size,
                self.next_batch, self._window_end - self.next_batch, row_start, row_count)
    dataset = grain.MapDataset.source(rows).batch(row_count).to_iter_dataset(
        grain.ReadOptions(num_threads=batches.read_threads,
                          prefetch_buffer_size=batches.prefetch))
    if batches.num_workers:
      dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(
          num_workers=batches.num_workers, per_worker_buffer_size=batches.prefetch),
          worker_init_fn=_worker_init)
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; a library caller has none
      flags.FLAGS.mark_as_parsed()
    self._iterator = iter(dataset)

  def take(self, count: int) -> list[dict[str, np.ndarray]]:
    out = []
    for _ in range(count):
      if self._iterator is None or self.next_batch >= self._window_end:
        self.close()
        self._start()
      out.append(next(self._iterator))
      self.next_batch += 1
    return out

  def close(self):
    if self._iterator is not None:
      close = getattr(self._iterator, "close", None)
      if close is not None:
        close()
      self._iterator = None
    if self._order_path is not None:
      self._order_path.unlink(missing_ok=True)
      self._order_path = None


def process_rows(batch_size: int) -> tuple[int, int]:
  """(first row, rows) of each batch that this process reads: its devices' share, the
  devices being laid out process by process along the batch."""
  count = jax.process_count()
  if count == 1 or batch_size % count:
    return 0, batch_size
  rows = batch_size // count
  return jax.process_index() * rows, rows


@dataclasses.dataclass(frozen=True)
class StreamedBatches(in_memory.TrainBatches):
  """TrainBatches whose arrays decode on indexing, and whose host batches come from
  grain pipelines (one per source and data key)."""

  num_workers: int = 0
  prefetch: int = 2
  read_threads: int = 1
  process_rows: tuple[int, int] = (0, 0)
  _streams: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

  def host_batches(self, data_key, first_step: int, num_steps: int
                   ) -> dict[str, np.ndarray]:
    first = first_step * self.batches_per_step
    count = num_steps * self.batches_per_step
    out = {}
    for source in self.sources:
      key = self.source_key(data_key, source)
      cache_key = (source, np.asarray(key).tobytes())
      stream = self._streams.get(cache_key)
      if stream is None or stream.next_batch != first:
        if stream is not None:
          stream.close()
        stream = self._streams[cache_key] = _SourceStream(self, source, key, first)
      taken = stream.take(count)
      for name in self._fields(source):
        stacked = np.stack([batch[name] for batch in taken])
        out[name] = stacked.reshape(num_steps, self.batches_per_step, *stacked.shape[1:])
    return out

  @property
  def rows_per_process(self) -> int:
    return self.process_rows[1]

  def close(self):
    for stream in self._streams.values():
      stream.close()
    self._streams.clear()
