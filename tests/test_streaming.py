"""The streaming input path (gax/data/streaming.py): the in-memory path's batches, read in
grain worker processes; exact resume; the automatic choice; ArrayRecord and TFDS
sources; files that break after the scan."""

import io
import logging
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from array_record.python.array_record_module import ArrayRecordWriter
from helpers import ROOT, load_config, read_metrics, restore_params, straight_and_resumed, tiny
from image_files import class_folder, digits
from PIL import Image

from gax import variants
from gax.data import pipeline, streaming
from gax.training import train


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
  return class_folder(tmp_path_factory.mktemp("digits"), 400)


def _config(dataset, steps, pipeline="stream", workers=2):
  config = tiny(load_config("dcgan_mnist", f"recipe=radford,dataset={dataset}"), steps)
  config.data.pipeline, config.data.workers = pipeline, workers
  return config


def _batches(config):
  return pipeline.create_batches(config.data, variants.batch_spec(config),
                                       config.batch_size, config.d_steps, config.variant)


def test_streamed_batches_are_the_in_memory_batches(digit_folder):
  streamed = _batches(_config(f"folder:{digit_folder}", 1))
  in_memory = _batches(_config(f"folder:{digit_folder}", 1, pipeline="memory"))
  assert isinstance(streamed, streaming.StreamedBatches)
  assert not isinstance(in_memory, streaming.StreamedBatches)
  key = train.stream_keys(0)["data"]
  try:
    # Across an epoch's end (about 45 batches of 8), and from later starts.
    for first, count in ((0, 50), (44, 3), (7, 2)):
      got = streamed.host_batches(key, first, count)
      want = in_memory.host_batches(key, first, count)
      np.testing.assert_array_equal(got["image"], want["image"])
  finally:
    streamed.close()


def test_a_streamed_run_in_worker_processes_resumes_bit_for_bit(digit_folder, tmp_path):
  dataset = f"folder:{digit_folder}"
  straight, resumed = straight_and_resumed(lambda steps: _config(dataset, steps), tmp_path,
                                           6, 3)
  in_memory = tmp_path / "in_memory"
  train.train_and_evaluate(_config(dataset, 6, pipeline="memory"), str(in_memory))
  assert read_metrics(resumed) == read_metrics(straight)
  for other in (resumed, in_memory):
    for a, b in zip(jax.tree.leaves(restore_params(straight, 6)),
                    jax.tree.leaves(restore_params(other, 6))):
      np.testing.assert_array_equal(a, b)


def test_auto_streams_only_what_is_larger_than_the_memory_allowed(digit_folder, caplog):
  caplog.set_level(logging.INFO, logger="absl")
  config = _config(f"folder:{digit_folder}", 1, pipeline="auto")
  assert not isinstance(_batches(config), streaming.StreamedBatches)
  assert "in memory" in caplog.text
  config.data.max_memory_bytes = 1000
  batches = _batches(config)
  assert isinstance(batches, streaming.StreamedBatches)
  assert "streaming" in caplog.text
  batches.close()
  # A dataset built in memory cannot stream: one clear error.
  with pytest.raises(ValueError, match="'stream' reads folder"):
    _batches(_config("mnist5k", 1))


def test_array_record_files_of_encoded_images_stream(tmp_path):
  images, _ = digits(64)
  path = tmp_path / "digits.array_record"
  writer = ArrayRecordWriter(str(path), "group_size:1")
  for image in images:
    encoded = io.BytesIO()
    Image.fromarray(image).save(encoded, format="PNG")
    writer.write(encoded.getvalue())
  writer.close()
  config = _config(f"arrayrecord:{path}", 2, workers=1)
  batches = _batches(config)
  try:
    got = batches.host_batches(train.stream_keys(0)["data"], 0, 1)["image"]
    assert got.shape == (1, 1, 8, 28, 28, 1)
    assert all(any(np.array_equal(g[..., 0], im) for im in images) for g in got[0, 0])
  finally:
    batches.close()


def test_a_tfds_data_source_streams_under_mock_data(tmp_path, caplog):
  # Streamed and in memory, the same examples in the same order: the same training.
  caplog.set_level(logging.INFO, logger="absl")
  for path in ("stream", "memory"):
    config = _config("mnist", 2, path, workers=0)  # mock data lives in this process only
    with tfds.testing.mock_data(num_examples=32):
      train.train_and_evaluate(config, str(tmp_path / path))
  assert "Input pipeline: streaming" in caplog.text
  assert read_metrics(tmp_path / "stream") == read_metrics(tmp_path / "memory")
  for a, b in zip(jax.tree.leaves(restore_params(tmp_path / "stream", 2)),
                  jax.tree.leaves(restore_params(tmp_path / "memory", 2)), strict=True):
    np.testing.assert_array_equal(a, b)


def test_a_file_that_breaks_after_the_scan_is_replaced_with_a_warning(tmp_path, caplog):
  images, _ = digits(16)
  (tmp_path / "train").mkdir()
  for i, image in enumerate(images):
    Image.fromarray(image).save(tmp_path / "train" / f"{i:02d}.png")
  batches = _batches(_config(f"folder:{tmp_path}", 1, workers=0))
  broken = tmp_path / "train" / "03.png"
  broken.write_bytes(broken.read_bytes()[:150])  # the header still reads
  try:
    got = batches.host_batches(train.stream_keys(0)["data"], 0, 2)["image"]
  finally:
    batches.close()
  assert got.shape[:3] == (2, 1, 8)
  assert "03.png" in caplog.text and "in its place" in caplog.text


class _CountingReader:
  """A reader that counts the examples decoded through it."""

  def __init__(self, reader):
    self.reader, self.reads = reader, 0

  def __getattr__(self, name):
    return getattr(self.reader, name)

  def __len__(self):
    return len(self.reader)

  def read(self, index):
    self.reads += 1
    return self.reader.read(index)


def test_the_pipeline_reads_ahead_only_its_prefetch(digit_folder):
  config = _config(f"folder:{digit_folder}", 1, workers=0)
  config.data.prefetch = 2
  batches = _batches(config)
  counting = batches.arrays["image"].reader = _CountingReader(batches.arrays["image"].reader)
  try:
    batches.host_batches(train.stream_keys(0)["data"], 0, 3)
    time.sleep(1.0)  # time enough for the read-ahead to fill its buffer
  finally:
    batches.close()
  # Memory follows batch x prefetch: 3 batches taken, at most a few more decoded.
  assert 3 * 8 <= counting.reads <= (3 + 2 + 2) * 8


def _descendants(pid: int) -> set[int]:
  """The pids of every process below `pid` (Linux /proc)."""
  children = {}
  for entry in Path("/proc").iterdir():
    if not entry.name.isdigit():
      continue
    try:
      parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
      continue
    children.setdefault(parent, []).append(int(entry.name))
  found, pending = set(), [pid]
  while pending:
    for child in children.get(pending.pop(), []):
      found.add(child)
      pending.append(child)
  return found


def _alive(pid: int) -> bool:
  try:
    state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
  except OSError:
    return False
  return state != "Z"


def test_no_decoding_worker_outlives_a_killed_streaming_run(digit_folder, tmp_path):
  process = subprocess.Popen(
      [sys.executable, "-m", "gax.main", "--config=configs/dcgan_mnist.py:recipe=radford",
       f"--workdir={tmp_path / 'run'}", f"--config.dataset=folder:{digit_folder}",
       "--config.data.pipeline=stream", "--config.data.workers=2",
       "--config.batch_size=8", "--config.num_train_steps=100000", "--config.log_every=1"],
      cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  metrics, deadline = tmp_path / "run" / "metrics.jsonl", time.monotonic() + 300
  while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
    assert process.poll() is None and time.monotonic() < deadline, "it never trained"
    time.sleep(0.1)
  workers = _descendants(process.pid)
  assert len(workers) >= 2  # the decoding workers (and multiprocessing's helpers)
  process.kill()
  process.wait()
  deadline = time.monotonic() + 10
  while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
    time.sleep(0.1)
  assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed run"
