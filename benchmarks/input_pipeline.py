"""The streaming input pipeline (gax/data/streaming.py): throughput and peak memory; one JSON
line per measurement.

  python benchmarks/input_pipeline.py --scratch=/tmp/gax-input --mode=throughput
  python benchmarks/input_pipeline.py --scratch=/tmp/gax-input --mode=rss

`throughput`: images/s that the pipeline delivers at 64x64 from a folder of
`--num_images` JPEGs (written on first use: MNIST digits tinted and scaled to 64x64),
with each of `--workers`, beside the images/s that the DCGAN-64 batch-64 training step
consumes on this machine (timed in the same process, data on the device).

`rss`: streams the training split of a folder of `--num_images` JPEGs stored at 256x256
(18,033 images for 20,000: 3.3 GB decoded) at data.image_size 256, and samples the memory
of the whole pipeline every 50 ms: the proportional set size (resident memory, each page
shared between processes counted once) of the training process and its worker
processes, summed. For each batch x prefetch [x batches] of `--rss_settings`; the
consumer spends `--rss_step_s` on each 64 images, as a training step would, so the
workers' buffers fill. Memory
should follow batch x prefetch x workers, stay far below the decoded dataset, and not
grow with the batches streamed.
"""

import json
import os
import threading
import time
from pathlib import Path

import jax
import numpy as np
from absl import app, flags
from PIL import Image

from gax import config_base, variants
from gax.data import datasets, pipeline
from gax.training import train

FLAGS = flags.FLAGS
flags.DEFINE_string("scratch", None, "Folder for the generated JPEG folders.")
flags.DEFINE_enum("mode", "throughput", ["throughput", "rss"], "What to measure.")
flags.DEFINE_integer("num_images", 20000, "Images in each generated folder.")
flags.DEFINE_list("workers", ["1", "2"], "throughput: worker processes to time.")
flags.DEFINE_integer("batches", 280, "throughput: batches timed after the first.")
flags.DEFINE_list("rss_settings", ["64x2x40", "64x2", "64x8", "256x2"],
                  "rss: batch x prefetch [x batches] settings (without batches: one epoch).")
flags.DEFINE_integer("rss_workers", 2, "rss: worker processes.")
flags.DEFINE_float("rss_step_s", 0.05, "rss: seconds the consumer spends on each batch of "
                   "64 (as a training step would), so that the workers' buffers fill.")
flags.mark_flags_as_required(["scratch"])


def jpeg_folder(root: Path, count: int, size: int) -> Path:
  """`count` tinted MNIST digits scaled to size x size, as JPEGs in class folders."""
  if root.is_dir() and sum(1 for _ in root.rglob("*.jpg")) == count:
    return root
  pixels, labels = datasets.mnist5k_arrays()
  rng = np.random.default_rng(0)
  for i in range(count):
    digit = Image.fromarray(pixels[i % len(pixels)].reshape(28, 28).astype(np.uint8))
    grey = np.asarray(digit.resize((size, size), Image.BILINEAR), np.float32)[..., None] / 255
    tint = rng.uniform(0.3, 1.0, 3)
    image = (grey * tint + (1 - grey) * rng.uniform(0, 0.3, 3)) * 255
    path = root / str(labels[i % len(labels)]) / f"{i:06d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.astype(np.uint8)).save(path, quality=90)
  return root


def dcgan64_config(folder: Path, batch_size: int, image_size: int, pipeline: str,
                   workers: int, prefetch: int = 2):
  config = config_base.load_config_file("configs/dcgan64.py", f"dataset=folder:{folder}")
  config.batch_size = batch_size
  config.data.image_size, config.data.channels = image_size, 3
  config.data.pipeline, config.data.workers, config.data.prefetch = pipeline, workers, prefetch
  return config


def batches_for(config):
  return pipeline.create_batches(config.data, variants.batch_spec(config),
                                       config.batch_size, config.d_steps, config.variant)


def stream_rate(config, count: int, step_s: float = 0.0) -> tuple[float, int]:
  """(images/s of `count` batches after the first, which includes the workers' start;
  the examples in the streamed split). `step_s`: seconds spent on each batch of 64."""
  batches = batches_for(config)
  key = train.stream_keys(0)["data"]
  try:
    batches.host_batches(key, 0, 1)
    start = time.perf_counter()
    for step in range(1, count + 1):
      batches.host_batches(key, step, 1)
      time.sleep(step_s * config.batch_size / 64)
    rate = count * config.batch_size / (time.perf_counter() - start)
    return rate, batches.num_examples(batches.sources[0])
  finally:
    batches.close()


def step_consumption(folder: Path) -> float:
  """Images/s that the DCGAN-64 batch-64 step consumes (data on the device)."""
  config = dcgan64_config(folder, 64, 64, "memory", 0)
  config.data.on_device = "yes"
  run = train.create_run(config)
  state = train.initial_state(run)
  step, data = train.step_fn(run, 1), train.step_data(run, 0, 1)
  for _ in range(2):
    state, _ = step(state, data)
  jax.block_until_ready(state)
  start, steps = time.perf_counter(), 10
  for _ in range(steps):
    state, _ = step(state, data)
  jax.block_until_ready(state)
  return steps * 64 / (time.perf_counter() - start)


def _tree_pss_bytes(pid: int) -> int:
  """Proportional set size of a process and all its descendants (Linux /proc): resident
  memory with each shared page (libraries, the batches in shared memory) divided among
  the processes that map it, so the sum counts it once."""
  total, pending = 0, [pid]
  while pending:
    current = pending.pop()
    try:
      rollup = Path(f"/proc/{current}/smaps_rollup").read_text()
      total += int(next(line.split()[1] for line in rollup.splitlines()
                        if line.startswith("Pss:"))) * 1024
      for task in Path(f"/proc/{current}/task").iterdir():
        pending += [int(c) for c in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError, PermissionError, StopIteration):
      continue
  return total


def peak_memory(run):
  """(peak, starting) proportional set size of this process tree while `run()` runs,
  and what `run()` returns."""
  start = _tree_pss_bytes(os.getpid())
  peak, done = [start], threading.Event()

  def sample():
    while not done.is_set():
      peak[0] = max(peak[0], _tree_pss_bytes(os.getpid()))
      time.sleep(0.05)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  try:
    result = run()
  finally:
    done.set()
    sampler.join()
  return peak[0], start, result


def main(argv):
  del argv
  scratch = Path(FLAGS.scratch)
  if FLAGS.mode == "throughput":
    folder = jpeg_folder(scratch / f"jpeg64_{FLAGS.num_images}", FLAGS.num_images, 64)
    rates = {f"stream_{w}_workers_images_per_s": round(stream_rate(
        dcgan64_config(folder, 64, 64, "stream", int(w)), FLAGS.batches)[0], 1)
        for w in FLAGS.workers}
    consumed = step_consumption(folder)
    print(json.dumps({"images": FLAGS.num_images, "image_size": 64, "batch_size": 64,
                      **rates, "dcgan64_step_images_per_s": round(consumed, 1),
                      **{k.replace("images_per_s", "over_step"): round(v / consumed, 2)
                         for k, v in rates.items()},
                      "cpus": os.cpu_count(), "jax": jax.__version__}))
    return
  folder = jpeg_folder(scratch / f"jpeg256_{FLAGS.num_images}", FLAGS.num_images, 256)
  for setting in FLAGS.rss_settings:
    batch_size, prefetch, *batches = map(int, setting.split("x"))
    config = dcgan64_config(folder, batch_size, 256, "stream", FLAGS.rss_workers, prefetch)
    count = batches[0] if batches else (FLAGS.num_images * 9 // 10) // batch_size
    started = time.perf_counter()
    peak, before, (rate, examples) = peak_memory(
        lambda config=config, count=count: stream_rate(config, count, FLAGS.rss_step_s))
    decoded = examples * 256 * 256 * 3
    print(json.dumps({
        "examples": examples, "image_size": 256, "batch_size": batch_size,
        "prefetch": prefetch, "workers": FLAGS.rss_workers, "batches": count + 1,
        "consumer_s_per_64_images": FLAGS.rss_step_s,
        "decoded_dataset_mb": round(decoded / 2 ** 20), "pss_before_mb": round(before / 2 ** 20),
        "peak_pss_mb": round(peak / 2 ** 20), "dataset_over_peak": round(decoded / peak, 2),
        "images_per_s": round(rate),
        "seconds": round(time.perf_counter() - started, 1)}), flush=True)

if __name__ == "__main__":
  app.run(main)
