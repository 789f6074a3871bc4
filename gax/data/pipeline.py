"""Where a run's batches come from: the dataset decoded whole and held in memory
(gax/data/in_memory.py), or decoded as read by grain worker processes
(gax/data/streaming.py). Both read the same seeded order."""

import math
import os

from absl import logging

from gax import errors, memory
from gax.data import datasets as data_lib
from gax.data import in_memory, streaming


def check_workers(data_config, bytes_per_batch: int) -> None:
  """Refuses more decoding processes than the machine runs (twice its CPUs), or buffers
  (workers x prefetch batches) larger than its memory."""
  cpus = os.cpu_count() or 1
  if data_config.workers > 2 * cpus:
    raise errors.ConfigError(
        f"config.data.workers = {data_config.workers} decoding processes on a machine of "
        f"{cpus} CPUs; allowed: 0 to {2 * cpus} (twice the CPUs)")
  memory.check(max(data_config.workers, 1) * data_config.prefetch * bytes_per_batch,
               f"the streaming buffers (data.workers = {data_config.workers} x "
               f"data.prefetch = {data_config.prefetch} batches)", memory.host_bytes())


def create_batches(data_config, spec: data_lib.BatchSpec, batch_size: int,
                   batches_per_step: int, wanted_by: str, whole_batches: bool = False
                   ) -> in_memory.TrainBatches:
  """Loads the spec's sources and decides where the data lives: streamed from the host
  (`data.pipeline`, gax/data/streaming.py), or in memory on the device or the host
  (`data.on_device`). `whole_batches`: every process streams whole batches (a
  population's), not only its devices' rows."""

  datasets = data_lib.load_batch_fields(data_config, spec, wanted_by,
                                        lazy=data_config.pipeline != "memory")
  decoded_bytes = sum(d.images.nbytes * (1 + (d.images_b is not None))
                      for d in datasets.values())
  lazy = [s.dataset for s, d in datasets.items() if data_lib.is_lazy(d.images)]
  stream = data_config.pipeline == "stream" or (
      data_config.pipeline == "auto" and lazy and decoded_bytes > data_config.max_memory_bytes)
  if stream and len(lazy) < len(datasets):
    held = [s.dataset for s, d in datasets.items() if not data_lib.is_lazy(d.images)]
    raise errors.DataError(
        f"data.pipeline = 'stream' reads folder:, arrayrecord: and TFDS datasets; "
        f"{', '.join(held)} is built in memory: use data.pipeline = 'memory' or 'auto'")
  if not stream:
    datasets = {s: data_lib.materialize(data_config, d) for s, d in datasets.items()}
  arrays = {name: datasets[field.source].feature(field.feature)
            for name, field in spec.items()}
  labelled = [datasets[f.source].num_classes for f in spec.values() if f.feature == "label"]
  num_classes = max(labelled) if labelled else None
  if stream:
    check_workers(data_config, sum(math.prod(a.shape[1:]) for a in arrays.values())
                  * batch_size * batches_per_step)
    first_row, rows = (0, batch_size) if whole_batches else streaming.process_rows(batch_size)
    logging.info("Input pipeline: streaming %.1f MB of decoded images from the host, "
                 "%d worker process(es), %d batches of prefetch each; rows %d to %d of "
                 "each batch of %d in this process", decoded_bytes / 2 ** 20,
                 data_config.workers, data_config.prefetch, first_row, first_row + rows - 1,
                 batch_size)
    batches = streaming.StreamedBatches(
        spec, arrays, batch_size, batches_per_step, False, data_config.crop_size,
        data_config.random_flip, num_classes, data_config.workers, data_config.prefetch,
        data_config.read_threads, (first_row, rows))
    _log_fields(batches)
    return batches
  num_bytes = sum(array.nbytes for array in arrays.values())
  if data_config.on_device == "auto":
    on_device = num_bytes <= data_config.max_device_bytes
  else:
    on_device = data_config.on_device == "yes"
  logging.info("Input pipeline: %.1f MB in memory, kept on the %s", num_bytes / 2 ** 20,
               "device" if on_device else "host")
  batches = in_memory.TrainBatches(spec, arrays, batch_size, batches_per_step, on_device,
                                   data_config.crop_size, data_config.random_flip,
                                   num_classes)
  _log_fields(batches)
  return batches


def _log_fields(batches: in_memory.TrainBatches) -> None:
  for name, field in batches.spec.items():
    logging.info("Batch field %r: %s of %s (%s), %d examples of shape %s, kept on the %s",
                 name, field.feature, field.source.dataset, field.source.split,
                 len(batches.arrays[name]), batches.arrays[name].shape[1:],
                 "device" if batches.on_device else "host")
