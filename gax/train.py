"""Training: small pure functions, and `train_and_evaluate(config, workdir)` that runs them."""

import contextlib
import dataclasses
import json
import shutil
import signal
import threading
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
from gax import config_base, evaluation, files, optim, population, variants, writers
from gax import data as data_lib
from gax import images as images_lib
from gax import update as update_lib

NETWORKS = ("generator", "discriminator")


def create_mesh(num_devices: int = 0) -> Mesh:
  """A one-axis ("data") mesh over the first `num_devices` devices (0: all).

  With several processes (`jax.distributed.initialize()`), the mesh spans every
  process's devices and `num_devices` must be 0.
  """
  devices = jax.devices()
  if jax.process_count() > 1 and num_devices not in (0, len(devices)):
    raise config_base.ConfigError(
        f"config.num_devices = {num_devices}: with {jax.process_count()} processes the "
        f"mesh uses all {len(devices)} devices (set 0)")
  if num_devices > len(devices):
    raise config_base.ConfigError(
        f"config.num_devices = {num_devices} but only {len(devices)} devices are visible")
  return Mesh(np.array(devices[:num_devices or len(devices)]), ("data",))


def global_array(host_tree, sharding: NamedSharding):
  """Host arrays, identical in every process, as global arrays laid out by `sharding`.

  Each process copies only the pieces its own devices hold (its shard of a batch).
  """
  return jax.tree.map(lambda x: jax.make_array_from_callback(
      np.shape(x), sharding, lambda index: np.asarray(x)[index]), host_tree)


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """Independent PRNG streams derived from the seed."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, i)
          for i, name in enumerate(("init", "train", "data", "samples"))}


def create_train_state(variant, optimizers, keys, image_shape, hparams
                       ) -> update_lib.TrainState:
  """The plain-dict train state: step, the keys, hparams, params, batch_stats, opt_state."""
  params, batch_stats = variant.init(keys["init"], image_shape)
  return {  # copies: the state is donated to the step, the caller's keys live on
      "step": jnp.zeros((), jnp.int32),
      "key": jnp.copy(keys["train"]),
      "data_key": jnp.copy(keys["data"]),
      "hparams": hparams,
      "params": params,
      "batch_stats": batch_stats,
      "opt_state": {name: optimizers[name].init(params[name]) for name in NETWORKS},
  }


def keeps_data_on_device(data_config: ml_collections.ConfigDict, num_bytes: int) -> bool:
  if data_config.on_device == "auto":
    return num_bytes <= data_config.max_device_bytes
  return data_config.on_device == "yes"


def create_batches(config: ml_collections.ConfigDict, data_key: jax.Array):
  """The training data in its seeded order: TrainBatches, or UnpairedBatches for the
  two domains of an unpaired variant."""
  if config.variant in variants.UNPAIRED:
    sources = data_lib.domain_sources(config.dataset, config.get("dataset_b"), "train")
  else:
    sources = {"": (config.dataset, "train")}
  datasets = {domain: data_lib.load_dataset(config.data, name, split)
              for domain, (name, split) in sources.items()}
  on_device = keeps_data_on_device(config.data,
                                   sum(d.images.nbytes for d in datasets.values()))
  batches = {domain: data_lib.TrainBatches(
      dataset.images, data_lib.domain_key(data_key, domain) if domain else data_key,
      config.batch_size, config.d_steps, on_device, config.data.crop_size,
      config.data.random_flip) for domain, dataset in datasets.items()}
  for domain, dataset in datasets.items():
    logging.info("Dataset %s%s: %d images of shape %s, kept on the %s", dataset.name,
                 f" (domain {domain.upper()})" if domain else "", len(dataset),
                 dataset.image_shape, "device" if on_device else "host")
  return batches[""] if "" in batches else data_lib.UnpairedBatches(batches)


def _format_duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours:d}:{minutes:02d}:{seconds:02d}"


def _save_config(config: ml_collections.ConfigDict, workdir: Path, num_devices: int) -> None:
  """The resolved config, plus the number of devices the run actually uses."""
  resolved = json.loads(config.to_json_best_effort())
  files.write_json(workdir / "config.json", {**resolved, "devices_used": num_devices})


_CONSOLE_METRICS = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)",
                    "d_fake": "D(G(z))"}


def _format_console_metrics(metrics: dict[str, float]) -> str:
  return "  ".join(f"{label} {metrics[key]:.4f}" for key, label in _CONSOLE_METRICS.items()
                   if key in metrics)


def _crossed(previous_step: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (previous_step, step]."""
  return step // every > previous_step // every


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What a run builds from its config before the first step.

  A population (`members` configs) stacks the per-model `keys` and `hparams` along a
  leading axis, and so does its train state.
  """

  config: ml_collections.ConfigDict
  mesh: Mesh
  batches: data_lib.TrainBatches | data_lib.UnpairedBatches
  variant: Any
  keys: dict[str, jax.Array]
  hparams: dict[str, jax.Array]
  members: tuple[ml_collections.ConfigDict, ...] = ()

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, PartitionSpec())

  def optimizers(self, hparams=None) -> dict[str, optax.GradientTransformation]:
    return optim.create_optimizers(self.config, hparams)

  def initial_state(self) -> update_lib.TrainState:
    """A fresh train state, created directly with its (replicated) sharding."""
    def create(keys, hparams):
      return create_train_state(self.variant, self.optimizers(), keys,
                                self.batches.image_shape, hparams)
    create = jax.vmap(create) if self.members else create
    return jax.jit(lambda: create(self.keys, self.hparams),
                   out_shardings=self.replicated)()

  def step_runner(self) -> "StepRunner":
    return StepRunner(self)


class StepRunner:
  """Advances the train state `count` steps per compiled call (one program per count)."""

  def __init__(self, experiment: Experiment):
    self._batches = experiment.batches
    self._replicated = experiment.replicated
    self._data_keys = experiment.keys["data"] if experiment.members else None
    batch_sharding = NamedSharding(experiment.mesh, PartitionSpec(None, "data"))
    update = update_lib.make_update_fn(
        experiment.variant, experiment.optimizers, experiment.batches,
        lambda batch: jax.lax.with_sharding_constraint(batch, batch_sharding),
        experiment.config.nan_policy, experiment.config.inject_nan_at_step,
        experiment.config.g_step_fake)
    if experiment.members:  # the dataset is shared; host batches come one set per member
      update = population.batched(update, len(experiment.members),
                                  shared_data=self._batches.on_device,
                                  vectorize=population.vectorizes(experiment.config))
    self._update = update
    if self._batches.on_device:
      self._data_sharding = self._replicated
      self._data = global_array(experiment.batches.images, self._replicated)
    else:
      batch_axis = (None,) * (3 if experiment.members else 2)
      self._data_sharding = NamedSharding(experiment.mesh, PartitionSpec(*batch_axis, "data"))
    self._compiled = {}

  def step_fn(self, count: int) -> update_lib.StepFn:
    """The jitted function that runs `count` steps: (state, data) -> (state, metrics)."""
    if count not in self._compiled:
      self._compiled[count] = update_lib.make_train_step(
          self._update, count, self._batches.on_device, self._replicated,
          self._data_sharding)
    return self._compiled[count]

  def data_for(self, state: update_lib.TrainState, count: int) -> jax.Array:
    """The step function's data argument: the resident dataset, or this call's batches
    (for a population: [count, member, ...])."""
    if self._batches.on_device:
      return self._data
    step = int(jax.device_get(state["step"]).flat[0])
    if self._data_keys is None:
      batches = self._batches.host_batches(step, count)
    else:
      batches = jax.tree.map(lambda *members: np.stack(members, axis=1), *(
          self._batches.with_data_key(key).host_batches(step, count)
          for key in self._data_keys))
    return global_array(batches, self._data_sharding)

  def __call__(self, state: update_lib.TrainState, count: int):
    return self.step_fn(count)(state, self.data_for(state, count))


class PeriodicEvaluator:
  """Evaluates during training: eval/* in metrics.jsonl, eval/step_N.json, and the best
  state by FID kept in `best_checkpoint/` and named in `best.json`."""

  def __init__(self, config: ml_collections.ConfigDict, variant, workdir: Path,
               writer: writers.MetricWriter, is_writer: bool, start_step: int):
    self._config, self._variant, self._workdir = config, variant, workdir
    self._writer, self._is_writer = writer, is_writer
    self._evaluate = None  # built at the first evaluation: it may train a classifier
    self._best_checkpointer = None
    best_file = workdir / "best.json"
    self.best = json.loads(best_file.read_text()) if best_file.exists() else None
    if self.best is not None and self.best["step"] > start_step and is_writer:
      # From steps this resumed run will redo: they will be evaluated again.
      best_file.unlink()
      shutil.rmtree(workdir / "best_checkpoint", ignore_errors=True)
      self.best = None

  def evaluate(self, state: update_lib.TrainState, step: int) -> dict[str, Any]:
    if self._evaluate is None:
      self._evaluate = evaluation.create_evaluation(self._config, self._variant)
    start = time.perf_counter()
    result = {"step": step, **self._evaluate(state)}
    logging.info("eval at step %d (%.1f s): %s", step, time.perf_counter() - start,
                 "  ".join(f"{k} {v:.4g}" for k, v in evaluation.scalars(result).items()))
    if not self._is_writer:
      return result
    self._writer.write_scalars(step, evaluation.scalars(result))
    files.write_json(self._workdir / "eval" / f"step_{step}.json", result)
    fid = evaluation.headline_fid(result)
    if self.best is None or fid < self.best["fid"]:
      if self._best_checkpointer is None:
        self._best_checkpointer = checkpoint_lib.Checkpointer(
            self._workdir / "best_checkpoint", max_to_keep=1)
      self._best_checkpointer.save(step, state)
      self._best_checkpointer.wait()
      self.best = {"step": step, "fid": fid,
                   "checkpoint": f"best_checkpoint/{step}"}
      files.write_json(self._workdir / "best.json", self.best)
    return result

  def close(self) -> None:
    if self._best_checkpointer is not None:
      self._best_checkpointer.close()


def create_experiment(config: ml_collections.ConfigDict,
                      members: list[ml_collections.ConfigDict] | None = None) -> Experiment:
  """Validates the config, loads the data and builds the variant.

  `members`: the configs of a population's models (see gax/population.py), which share
  everything of `config` but their seeds and continuous hyperparameters.
  """
  mesh = create_mesh(config.num_devices)
  for member_config in [config, *(members or [])]:
    config_base.validate(member_config, mesh.devices.size)
  logging.info("Training on %d %s device(s): %s", mesh.devices.size,
               jax.default_backend(), mesh.devices.tolist())
  batches = create_batches(config, stream_keys(config.seed)["data"])
  variant = variants.create_variant(config, batches.image_shape, jnp.dtype(config.dtype),
                                    batches.images)
  if config.g_step_fake == "reuse" and not update_lib.supports_fake_reuse(variant):
    raise config_base.ConfigError(
        f"config.g_step_fake = 'reuse' needs a variant whose G step trains on one fake "
        f"batch; the {config.variant!r} variant does not: use 'fresh'")
  if not members:
    return Experiment(config, mesh, batches, variant, stream_keys(config.seed),
                      optim.hyperparameters(config))
  logging.info("A population of %d models, one vmapped program", len(members))
  return Experiment(config, mesh, batches, variant,
                    population.stack([stream_keys(m.seed) for m in members]),
                    population.stack([optim.hyperparameters(m) for m in members]),
                    tuple(members))


class NonFiniteError(RuntimeError):
  """A loss or gradient went NaN or infinite; the message names the step and quantity."""


def check_finite(metrics: dict[str, np.ndarray], first_step: int) -> str | None:
  """None if every guarded metric is finite, else what went wrong and where."""
  for offset in range(len(next(iter(metrics.values())))):
    for name in update_lib.GUARDED_METRICS:
      if name in metrics and not np.isfinite(metrics[name][offset]):
        network = "discriminator" if name.startswith("d_") else "generator"
        return (f"step {first_step + offset}: the {network}'s {name} is "
                f"{metrics[name][offset]}")
  return None


class StopSignals:
  """Turns SIGTERM and SIGINT into a request to stop after the current step."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received = None
    self._previous = {}

  def __enter__(self) -> "StopSignals":
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    self.received = signal.Signals(signum).name

  def __exit__(self, *exc_info) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the newest intact checkpoint in `workdir`); returns the last
  logged metrics. SIGTERM or SIGINT stop it after the current step with a checkpoint."""
  return _run(create_experiment(config), [Path(workdir)])[0]


def train_population(config: ml_collections.ConfigDict,
                     members: list[tuple[Path, dict[str, Any]]]) -> list[dict[str, Any]]:
  """Trains each (workdir, overrides) member as `train_and_evaluate` would, all of them in
  one vmapped program; returns each member's last logged metrics."""
  configs = population.member_configs(config, [overrides for _, overrides in members])
  return _run(create_experiment(config, configs), [Path(w) for w, _ in members])


def _run(experiment: Experiment, workdirs: list[Path]) -> list[dict[str, Any]]:
  is_writer = jax.process_index() == 0  # the others compute, and write only checkpoints
  with contextlib.ExitStack() as stack:
    for workdir in workdirs:
      workdir.mkdir(parents=True, exist_ok=True)
      if is_writer:
        stack.enter_context(files.WorkdirLock(workdir))
    return _train(experiment, workdirs, is_writer, stack.enter_context(StopSignals()))


def restore_state(experiment: Experiment, checkpointers: list[checkpoint_lib.Checkpointer]
                  ) -> update_lib.TrainState:
  """The newest intact checkpoint (for a population: every member's, of one step), or a
  fresh state. `hparams` and `data_key` always come from the config, as they would on a
  fresh start, so a resumed run takes the hyperparameters it is given."""
  initial = experiment.initial_state()
  if not experiment.members:
    restored = checkpointers[0].restore_latest(initial)
  else:
    like = population.member(initial, 0)
    latest = [checkpointer.restore_latest(like) for checkpointer in checkpointers]
    steps = [0 if state is None else int(state["step"]) for state in latest]
    restored = population.stack(latest) if min(steps) == max(steps) > 0 else None
    if min(steps) != max(steps):  # stopped between two members' saves of one step
      try:
        restored = population.stack([c.restore(min(steps), like) for c in checkpointers])
      except ValueError:
        logging.warning("The members' checkpoints have no step in common (%s): starting "
                        "again from step 0", steps)
  if restored is None:
    return initial
  return jax.device_put({**restored, "hparams": initial["hparams"],
                         "data_key": initial["data_key"]}, experiment.replicated)


def _train(experiment: Experiment, workdirs: list[Path], is_writer: bool,
           stop: StopSignals) -> list[dict[str, Any]]:
  config, variant = experiment.config, experiment.variant
  configs = experiment.members or (config,)
  pick = population.member if experiment.members else lambda tree, index: tree
  labels = [f"{w.name}: " if experiment.members else "" for w in workdirs]
  checkpointers = [checkpoint_lib.Checkpointer(w / "checkpoints", config.keep_checkpoints)
                   for w in workdirs]
  state = restore_state(experiment, checkpointers)
  start_step = int(pick(state, 0)["step"])
  if start_step:
    logging.info("Resumed from the checkpoint of step %d", start_step)
  if is_writer:
    for member_config, workdir in zip(configs, workdirs):
      _save_config(member_config, workdir, experiment.mesh.devices.size)
  metric_writers = [writers.MetricWriter(w, start_step, enabled=is_writer) for w in workdirs]
  evaluators = [PeriodicEvaluator(c, variant, w, writer, is_writer, start_step)
                for c, w, writer in zip(configs, workdirs, metric_writers)]
  train_steps = experiment.step_runner()

  if experiment.members:
    sample_inputs = population.stack([variant.sample_inputs(key, config.num_samples)
                                      for key in experiment.keys["samples"]])
  else:
    sample_inputs = variant.sample_inputs(experiment.keys["samples"], config.num_samples)
  sample_inputs = global_array(jax.device_get(sample_inputs), experiment.replicated)
  sample_fn = jax.jit(jax.vmap(variant.sample) if experiment.members else variant.sample,
                      out_shardings=experiment.replicated)

  def write_samples(state, step):
    generated = jax.device_get(sample_fn(state["params"], state["batch_stats"],
                                         sample_inputs))
    for index, (workdir, writer) in enumerate(zip(workdirs, metric_writers)):
      grid = images_lib.make_grid(data_lib.to_uint8(pick(generated, index)),
                                  getattr(variant, "grid_columns", None))
      images_lib.save_png(workdir / "samples" / f"step_{step:06d}.png", grid)
      writer.write_image(step, "samples", grid)

  def save_checkpoints(step, state):
    for index, checkpointer in enumerate(checkpointers):
      checkpointer.save(step, pick(state, index))

  if is_writer and start_step == 0:
    write_samples(state, 0)

  num_steps = config.num_train_steps
  if start_step >= num_steps:
    logging.info("The checkpoint is at step %d: nothing to train up to num_train_steps = %d",
                 start_step, num_steps)
  step, saved_step, last_metrics = start_step, start_step, [{} for _ in workdirs]
  timer_step, timer_start = step, time.perf_counter()
  try:
    while step < num_steps:
      if stop.received:
        if saved_step != step:
          save_checkpoints(step, state)
        logging.warning("Stopped by %s after step %d; the checkpoint is saved. Run the "
                        "same command again to continue.", stop.received, step)
        return last_metrics
      count = min(config.steps_per_dispatch, num_steps - step)
      state, metrics = train_steps(state, count)
      previous_step, step = step, step + count
      metrics = jax.device_get(metrics)  # small: a few scalars per step (and member)
      member_metrics = [{k: v[:, index] for k, v in metrics.items()} if experiment.members
                        else metrics for index in range(len(workdirs))]
      for label, values in zip(labels, member_metrics):
        if (problem := check_finite(values, previous_step + 1)) is None:
          continue
        if config.nan_policy == "stop":
          raise NonFiniteError(
              f"{label}non-finite value at {problem}; stopped without saving, the last "
              f"good checkpoint (step {saved_step}) is untouched. Lower the learning "
              "rate, or set --config.nan_policy=skip to skip such steps")
        logging.warning("%sSkipped the update of %s (config.nan_policy = 'skip')", label,
                        problem)
      logged = [s for s in range(previous_step + 1, step + 1)
                if s % config.log_every == 0 or s == num_steps]
      if logged:
        elapsed = time.perf_counter() - timer_start
        steps_per_s = (step - timer_step) / max(elapsed, 1e-9)
        timer_step, timer_start = step, time.perf_counter()
        for index, values in enumerate(member_metrics):
          for s in logged:
            last_metrics[index] = {k: float(v[s - previous_step - 1])
                                   for k, v in values.items()}
            metric_writers[index].write_scalars(
                s, {**last_metrics[index], "steps_per_s": steps_per_s})
          logging.info("%sstep %d/%d  %s  %.2f steps/s  ETA %s", labels[index], step,
                       num_steps, _format_console_metrics(last_metrics[index]), steps_per_s,
                       _format_duration((num_steps - step) / max(steps_per_s, 1e-9)))
      if is_writer and (_crossed(previous_step, step, config.sample_every)
                        or step == num_steps):
        write_samples(state, step)
      if _crossed(previous_step, step, config.checkpoint_every) or step == num_steps:
        save_checkpoints(step, state)
        saved_step = step
      if config.eval_every and (_crossed(previous_step, step, config.eval_every)
                                or step == num_steps):
        for index, evaluator in enumerate(evaluators):
          # Several processes: each evaluates a host copy by itself; process 0 writes.
          evaluated = pick(state, index)
          evaluator.evaluate(jax.device_get(evaluated) if jax.process_count() > 1
                             else evaluated, step)
  finally:
    for closeable in (*checkpointers, *evaluators, *metric_writers):
      closeable.close()
  if is_writer:
    for workdir in workdirs:
      frames = sorted((workdir / "samples").glob("step_*.png"))
      if frames:
        images_lib.save_gif(frames, workdir / "samples.gif")
  return last_metrics


def _checkpoint_to_evaluate(workdir: Path, step: str | None) -> tuple[Path, int]:
  """(checkpoint directory, step) for --step, with a clear error when it is absent."""
  if step == "best":
    best_file = workdir / "best.json"
    if not best_file.exists():
      raise config_base.ConfigError(
          f"{workdir} has no best.json: the run never evaluated (set config.eval_every)")
    return workdir / "best_checkpoint", json.loads(best_file.read_text())["step"]
  directory = workdir / "checkpoints"
  available = sorted(int(p.name) for p in directory.glob("*") if p.name.isdigit())
  if not available:
    raise config_base.ConfigError(f"no checkpoints in {directory}")
  if step is None:
    return directory, available[-1]
  if not step.isdigit() or int(step) not in available:
    raise config_base.ConfigError(
        f"--step={step} is not a checkpoint of this run; choose 'best' or one of "
        f"{', '.join(map(str, available))}")
  return directory, int(step)


def evaluate_workdir(workdir: str, step: str | None = None,
                     num_samples: int = 0) -> dict[str, Any]:
  """Restores a checkpoint of the run in `workdir`, evaluates it and writes the JSON."""
  workdir = Path(workdir)
  if not (workdir / "config.json").exists():
    raise config_base.ConfigError(f"{workdir} has no config.json: not a gax workdir")
  config = config_base.load_json(workdir / "config.json")
  if num_samples:
    config.eval.num_samples = num_samples
  directory, step_number = _checkpoint_to_evaluate(workdir, step)
  experiment = create_experiment(config)
  checkpointer = checkpoint_lib.Checkpointer(directory, max_to_keep=None)
  state = checkpointer.restore(step_number, experiment.initial_state())
  checkpointer.close()
  result = {"step": step_number,
            **evaluation.create_evaluation(config, experiment.variant)(state)}
  files.write_json(workdir / "eval" / f"step_{step_number}.json", result)
  return result
