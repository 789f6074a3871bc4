"""Training: small pure functions, and `train_and_evaluate(config, workdir)` that runs them."""

import json
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gax import checkpoint as checkpoint_lib
from gax import config_base, optim, variants, writers
from gax import data as data_lib
from gax import images as images_lib
from gax import update as update_lib

NETWORKS = ("generator", "discriminator")


def create_mesh(num_devices: int = 0) -> Mesh:
  """A one-axis ("data") mesh over the first `num_devices` local devices (0: all)."""
  devices = jax.local_devices()
  if num_devices > len(devices):
    raise config_base.ConfigError(
        f"config.num_devices = {num_devices} but only {len(devices)} devices are visible")
  return Mesh(np.array(devices[:num_devices or len(devices)]), ("data",))


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """Independent PRNG streams derived from the seed."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, i)
          for i, name in enumerate(("init", "train", "data", "samples"))}


def create_optimizers(config: ml_collections.ConfigDict) -> dict[str, optax.GradientTransformation]:
  return {name: optim.create_optimizer(config.optimizer, name, config.num_train_steps)
          for name in NETWORKS}


def create_train_state(variant, optimizers, keys, image_shape) -> update_lib.TrainState:
  """The plain-dict train state: step, key, params, batch_stats, opt_state."""
  params, batch_stats = variant.init(keys["init"], image_shape)
  return {
      "step": jnp.zeros((), jnp.int32),
      "key": keys["train"],
      "params": params,
      "batch_stats": batch_stats,
      "opt_state": {name: optimizers[name].init(params[name]) for name in NETWORKS},
  }


def keeps_data_on_device(data_config: ml_collections.ConfigDict,
                         dataset: data_lib.ImageDataset) -> bool:
  if data_config.on_device == "auto":
    return dataset.images.nbytes <= data_config.max_device_bytes
  return data_config.on_device == "yes"


def _format_duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours:d}:{minutes:02d}:{seconds:02d}"


def _save_config(config: ml_collections.ConfigDict, workdir: Path) -> None:
  partial = workdir / "config.json.partial"
  partial.write_text(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")
  partial.replace(workdir / "config.json")


def _crossed(previous_step: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (previous_step, step]."""
  return step // every > previous_step // every


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the newest checkpoint in `workdir`) and returns the last metrics."""
  workdir = Path(workdir)
  mesh = create_mesh(config.num_devices)
  num_devices = mesh.devices.size
  config_base.validate(config, num_devices)
  is_writer = jax.process_index() == 0
  logging.info("Training on %d %s device(s): %s", num_devices, jax.default_backend(),
               mesh.devices.tolist())

  dataset = data_lib.load_dataset(config.data, config.dataset, "train")
  keys = stream_keys(config.seed)
  on_device = keeps_data_on_device(config.data, dataset)
  batches = data_lib.TrainBatches(dataset.images, keys["data"], config.batch_size,
                                  config.d_steps, on_device)
  logging.info("Dataset %s: %d images of shape %s, kept on the %s", config.dataset,
               len(dataset), dataset.image_shape, "device" if on_device else "host")

  dtype = jnp.dtype(config.dtype)
  variant = variants.create_variant(config, dataset.image_shape, dtype)
  optimizers = create_optimizers(config)

  replicated = NamedSharding(mesh, PartitionSpec())
  batch_sharding = NamedSharding(mesh, PartitionSpec(None, "data"))
  state = jax.jit(lambda: create_train_state(variant, optimizers, keys, dataset.image_shape),
                  out_shardings=replicated)()

  workdir.mkdir(parents=True, exist_ok=True)
  checkpointer = checkpoint_lib.Checkpointer(workdir / "checkpoints",
                                             config.keep_checkpoints)
  if (latest := checkpointer.latest_step()) is not None:
    state = checkpointer.restore(latest, state)
    logging.info("Resumed from the checkpoint of step %d", latest)
  start_step = int(state["step"])
  if is_writer:
    _save_config(config, workdir)
  writer = writers.MetricWriter(workdir, start_step, enabled=is_writer)

  update = update_lib.make_update_fn(
      variant, optimizers, batches,
      lambda x: jax.lax.with_sharding_constraint(x, batch_sharding))
  if on_device:
    data = jax.device_put(dataset.images, replicated)
    data_sharding = replicated
  else:
    data = None
    data_sharding = NamedSharding(mesh, PartitionSpec(None, None, "data"))
  compiled_steps = {}

  def train_steps(state, count):
    if count not in compiled_steps:
      compiled_steps[count] = update_lib.make_train_step(
          update, count, on_device, replicated, data_sharding)
    step_data = data if on_device else jax.device_put(
        batches.host_batches(int(state["step"]), count), data_sharding)
    return compiled_steps[count](state, step_data)

  sample_inputs = variant.sample_inputs(keys["samples"], config.num_samples)
  sample_fn = jax.jit(variant.sample)

  def write_samples(state, step):
    generated = sample_fn(state["params"], state["batch_stats"], sample_inputs)
    grid = images_lib.make_grid(data_lib.to_uint8(generated))
    images_lib.save_png(workdir / "samples" / f"step_{step:06d}.png", grid)
    writer.write_image(step, "samples", grid)

  if is_writer and start_step == 0:
    write_samples(state, 0)

  num_steps = config.num_train_steps
  step, last_metrics = start_step, {}
  timer_step, timer_start = step, time.perf_counter()
  while step < num_steps:
    count = min(config.steps_per_dispatch, num_steps - step)
    state, metrics = train_steps(state, count)
    previous_step, step = step, step + count
    logged = [s for s in range(previous_step + 1, step + 1)
              if s % config.log_every == 0 or s == num_steps]
    if logged:
      metrics = jax.device_get(metrics)
      elapsed = time.perf_counter() - timer_start
      steps_per_s = (step - timer_step) / max(elapsed, 1e-9)
      timer_step, timer_start = step, time.perf_counter()
      for s in logged:
        last_metrics = {k: float(v[s - previous_step - 1]) for k, v in metrics.items()}
        writer.write_scalars(s, {**last_metrics, "steps_per_s": steps_per_s})
      logging.info("step %d/%d  d_loss %.4f  g_loss %.4f  D(x) %.3f  D(G(z)) %.3f  "
                   "%.2f steps/s  ETA %s", step, num_steps, last_metrics["d_loss"],
                   last_metrics["g_loss"], last_metrics["d_real"],
                   last_metrics["d_fake"], steps_per_s,
                   _format_duration((num_steps - step) / max(steps_per_s, 1e-9)))
    if is_writer and (_crossed(previous_step, step, config.sample_every)
                      or step == num_steps):
      write_samples(state, step)
    if _crossed(previous_step, step, config.checkpoint_every) or step == num_steps:
      checkpointer.save(step, state)

  checkpointer.close()
  writer.close()
  if is_writer:
    frames = sorted((workdir / "samples").glob("step_*.png"))
    if frames:
      images_lib.save_gif(frames, workdir / "samples.gif")
  return last_metrics
