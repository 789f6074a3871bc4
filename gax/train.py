"""Training: small pure functions, and `train_and_evaluate(config, workdir)` that runs them.

The orchestrator builds an `Experiment` (mesh, data, variant, compiled step), restores or
creates the train state, and runs `run_loop`, which writes through the run's
`RunOutputs` (gax/outputs.py). A population (gax/population.py) wraps both: a stacked
experiment and one output per member, through the same loop.
"""

import contextlib
import dataclasses
import math
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
from jax.sharding import Mesh

from gax import config_base, files, health, input_pipeline, memory, optim, sharding, variants
from gax import data as data_lib
from gax import ema as ema_lib
from gax import update as update_lib
from gax.outputs import RunOutputs

NETWORKS = ("generator", "discriminator")


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """Independent PRNG streams derived from the seed."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, i)
          for i, name in enumerate(("init", "train", "data", "samples"))}


def create_train_state(variant, optimizers, keys, hparams, with_ema: bool = False
                       ) -> update_lib.TrainState:
  """The plain-dict train state: step, the keys, hparams, params, batch_stats, opt_state,
  and (`with_ema`) the average of G (gax/ema.py)."""
  params, batch_stats = variant.init(keys["init"])
  state = {  # copies: the state may be donated to the step, the caller's keys live on
      "step": jnp.zeros((), jnp.int32),
      "key": jnp.copy(keys["train"]),
      "data_key": jnp.copy(keys["data"]),
      "hparams": hparams,
      "params": params,
      "batch_stats": batch_stats,
      "opt_state": {name: optimizers[name].init(params[name]) for name in NETWORKS},
  }
  if with_ema:
    state["ema"] = ema_lib.initial(params, batch_stats)
  return state


def hyperparameters(config: ml_collections.ConfigDict) -> dict[str, jax.Array]:
  return optim.hyperparameters(config, variants.hparam_fields(config))


def with_batches(update: update_lib.StepFn, batches: input_pipeline.TrainBatches,
                 constrain) -> update_lib.StepFn:
  """The update fed from `data`: the step's batches gathered from the resident dataset
  (or handed over from the host), cropped, flipped and scaled, then placed on the mesh."""

  def step(state, data):
    raw = batches.gather(data, state["step"], state["data_key"]) if batches.on_device else data
    batch = batches.prepare(raw, state["step"], state["data_key"])
    return update(state, jax.tree.map(constrain, batch))

  return step


@dataclasses.dataclass
class Experiment:
  """What a run builds from its config before the first step: the mesh, the data, the
  variant, and (compiled on first use) its step."""

  config: ml_collections.ConfigDict
  mesh: Mesh
  batches: input_pipeline.TrainBatches
  variant: Any
  keys: dict[str, jax.Array]
  hparams: dict[str, jax.Array]
  _compiled: dict = dataclasses.field(default_factory=dict)

  @property
  def replicated(self):
    return sharding.replicated(self.mesh)

  def state_sharding(self):
    """How the train state lies on the mesh: replicated (a population on several mesh
    rows splits it along `member`)."""
    return self.replicated

  def metrics_sharding(self):
    return self.replicated

  def checkpoint_like(self, state):
    """What the run's checkpoints restore into: the state itself."""
    return state

  def optimizers(self, hparams=None) -> dict[str, optax.GradientTransformation]:
    return optim.create_optimizers(self.config, hparams)

  def create_state(self, keys, hparams) -> update_lib.TrainState:
    return create_train_state(self.variant, self.optimizers(), keys, hparams,
                              ema_lib.enabled(self.config))

  def initial_state(self) -> update_lib.TrainState:
    """A fresh train state, created directly with its sharding."""
    return jax.jit(lambda: self.create_state(self.keys, self.hparams),
                   out_shardings=self.state_sharding())()

  def update_fn(self) -> update_lib.StepFn:
    """One step, (state, data) -> (state, metrics), uncompiled."""
    config = self.config
    update = update_lib.make_update_fn(self.variant, self.optimizers, config.d_steps,
                                       config.nan_policy, config.inject_nan_at_step,
                                       config.g_step_fake, config.ema.decay,
                                       config.ema.start_step, config.ema.rampup)
    return with_batches(update, self.batches,
                        lambda x: sharding.constrain_batch(self.mesh, x, 1))

  def data_sharding(self):
    return self.replicated if self.batches.on_device else sharding.batch_sharding(
        self.mesh, 2)

  def donates_state(self) -> bool:
    """Whether each step's new state takes over the old one's buffers: on accelerators,
    where memory is short. XLA's CPU backend runs the step faster with fresh buffers
    (the aliased outputs cost it copies), and host memory is plentiful."""
    return jax.default_backend() != "cpu"

  def carry(self, state: update_lib.TrainState):
    """The state in the form `step_fn` carries it from step to step: the state itself
    (a population may split it by member)."""
    return state

  def uncarry(self, carried) -> update_lib.TrainState:
    """The state that `carry` was given, from what the step carries."""
    return carried

  def step_fn(self, count: int) -> update_lib.StepFn:
    """The jitted function that runs `count` steps: (carried state, data) -> (carried
    state, metrics), the state as `carry` gives it."""
    if count not in self._compiled:
      self._compiled[count] = update_lib.make_train_step(
          self.update_fn(), count, self.batches.on_device, self.state_sharding(),
          self.data_sharding(), self.metrics_sharding(), self.donates_state())
    return self._compiled[count]

  def host_batches(self, step: int, count: int):
    return self.batches.host_batches(self.keys["data"], step, count)

  def data_for(self, step: int, count: int):
    """The step function's data argument for steps [step, step + count): the resident
    dataset, or those steps' batches."""
    if self.batches.on_device:
      if "resident" not in self._compiled:
        self._compiled["resident"] = sharding.global_array(self.batches.arrays,
                                                           self.replicated)
      return self._compiled["resident"]
    host = self.host_batches(step, count)
    if self.batches.rows_per_process < self.batches.batch_size:
      # This process read only its devices' rows of each batch.
      return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
          self.data_sharding(), x), host)
    return sharding.global_array(host, self.data_sharding())

  def sample_inputs(self):
    return self.variant.sample_inputs(self.keys["samples"], self.config.num_samples,
                                      self.batches.fixed_examples)

  def check_memory(self) -> None:
    """Refuses sizes the machine cannot hold, before anything is allocated: the train
    state (with its gradients), the resident data, the sample grid's forward pass and the
    evaluation's images."""
    config = self.config
    state = jax.eval_shape(self.initial_state)
    data = self.batches.num_bytes if self.batches.on_device else 0
    states = 2 if self.donates_state() else 3  # the old state lives through the step
    memory.check(states * memory.tree_bytes_per_device(state) + data,
                 "the train state, its gradients and the resident data (model.*, "
                 f"data.image_size, batch fields {self.batches.info.field_shapes})",
                 memory.device_bytes(), "the device")
    inputs = jax.eval_shape(self.sample_inputs)
    grid = memory.intermediate_bytes(self.sample, state["params"],
                                     state["batch_stats"], inputs)
    memory.check(grid, f"the sample grid of num_samples = {config.num_samples}",
                 memory.device_bytes(), "the device")
    if config.eval_every:
      image = max(math.prod(shape) for shape in self.batches.info.field_shapes.values())
      memory.check(4 * image * config.eval.num_samples,
                   f"evaluating eval.num_samples = {config.eval.num_samples} images",
                   memory.host_bytes())

  def sample(self, params, batch_stats, inputs):
    """The sample grid's images for `sample_inputs`."""
    return self.variant.sample(params, batch_stats, inputs)

  def real_sets(self) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Fixed training and held-out real images (uint8) with their labels where the batch
    has them: what D's r_t is measured on (gax/health.py)."""
    count, spec = self.config.health.real_examples, self.batches.spec
    if not count or self.variant.scorer is None or "image" not in spec:
      return {}
    labelled = "label" in spec
    sets = {"train": (self.batches.fixed_examples("image", count),
                      self.batches.fixed_examples("label", count) if labelled else None)}
    try:  # lazy: only the first `count` held-out images are decoded
      held_out = data_lib.load_source(self.config.data, data_lib.Source(
          spec["image"].source.dataset, self.config.eval.split), lazy=True)
    except data_lib.DataError as e:
      logging.info("No held-out r_t: %s", e)
      return sets
    if held_out.images.shape[1:] == self.batches.info.field_shapes["image"]:
      sets["held_out"] = (held_out.images[:count],
                          held_out.labels[:count] if labelled else None)
    return sets

  def score_real(self, params, batch_stats, sets) -> dict[str, jax.Array]:
    """D's r_t = E[sign(D(x) - threshold)] on each set of real images."""
    scorer = self.variant.scorer
    return {f"health/r_t_{name}": jnp.mean(jnp.sign(
        scorer.score(params, batch_stats, data_lib.to_model_range(images), labels)
        - scorer.loss.threshold)) for name, (images, labels) in sets.items()}

  def health_scores(self):
    """A function from the train state to D's r_t on the real sets (on the host)."""
    sets = self.real_sets()
    if not sets:
      return lambda state: {}
    sets = sharding.global_array(sets, self.replicated)
    score = jax.jit(self.score_real, out_shardings=self.replicated)
    return lambda state: jax.device_get(score(state["params"], state["batch_stats"], sets))

  def grid_reference(self) -> np.ndarray | None:
    """As many real training images as the sample grid has: the grid's diversity is
    measured against theirs."""
    if "image" not in self.batches.spec:
      return None
    return self.batches.fixed_examples("image", self.config.num_samples)

  def samples(self):
    """A function from the train state to the sample grid's images (on the host), drawn
    from the average of G where there is one and `eval.use_ema`."""
    inputs = sharding.global_array(jax.device_get(self.sample_inputs()), self.replicated)
    sample = jax.jit(self.sample, out_shardings=self.replicated)
    return lambda state: jax.device_get(sample(
        *ema_lib.generator_state(ema_lib.chosen(state, self.config)), inputs))


def load_batches(config: ml_collections.ConfigDict, num_members: int = 1
                 ) -> input_pipeline.TrainBatches:
  """The variant's training data, in the run's order; logs where it lives."""
  batches = input_pipeline.create_batches(config.data, variants.batch_spec(config),
                                          config.batch_size, config.d_steps, config.variant,
                                          whole_batches=num_members > 1)
  for name, field in batches.spec.items():
    logging.info("Batch field %r: %s of %s (%s), %d examples of shape %s, kept on the %s",
                 name, field.feature, field.source.dataset, field.source.split,
                 len(batches.arrays[name]), batches.arrays[name].shape[1:],
                 "device" if batches.on_device else "host")
  return batches


def create_mesh(config: ml_collections.ConfigDict, num_members: int = 1) -> Mesh:
  """The run's (member, data) mesh; `num_members` models must divide over its rows."""
  variants.validate(config)  # before the mesh: a bad num_devices is one line too
  mesh = sharding.create_mesh(config.num_devices, config.mesh.members, config.mesh.data)
  rows = mesh.shape["member"]
  if num_members == 1 and rows > 1:
    raise config_base.ConfigError(
        f"config.mesh.members = {rows}: a single run is one model; mesh rows beyond 1 "
        "are for populations (gax.main --population, gax.sweep --population)")
  if num_members % rows:
    allowed = [m for m in sharding.divisors(num_members) if mesh.devices.size % m == 0]
    raise config_base.ConfigError(
        f"a population of {num_members} members does not divide over config.mesh.members"
        f" = {rows} mesh rows; allowed: {', '.join(map(str, allowed))}")
  variants.validate(config, mesh.shape["data"])
  logging.info("Training on %d %s device(s), a %s mesh (%s): %s", mesh.devices.size,
               jax.default_backend(), " × ".join(map(str, mesh.devices.shape)),
               " × ".join(mesh.axis_names), mesh.devices.tolist())
  return mesh


def create_experiment(config: ml_collections.ConfigDict, num_members: int = 1
                      ) -> Experiment:
  """Validates the config, loads the data and builds the variant; `num_members` > 1
  builds the mesh for a population of that many (gax/population.py stacks it)."""
  mesh = create_mesh(config, num_members)
  batches = load_batches(config, num_members)
  variant = variants.create(config, batches.info)
  if config.g_step_fake == "reuse" and not variant.reuses_fake:
    raise config_base.ConfigError(
        f"config.g_step_fake = 'reuse' needs a variant whose G step trains on one fake "
        f"batch; the {config.variant!r} variant does not: use 'fresh'")
  experiment = Experiment(config, mesh, batches, variant, stream_keys(config.seed),
                          hyperparameters(config))
  experiment.check_memory()
  return experiment


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


def _crossed(previous_step: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (previous_step, step]."""
  return step // every > previous_step // every


def restore_state(experiment: Experiment, outputs) -> update_lib.TrainState:
  """The newest intact checkpoint, or a fresh state. `hparams` and `data_key` always come
  from the config, as they would on a fresh start, so a resumed run takes the
  hyperparameters it is given."""
  initial = experiment.initial_state()
  restored = outputs.restore(experiment.checkpoint_like(initial))
  if restored is None:
    return initial
  return jax.device_put({**restored, "hparams": initial["hparams"],
                         "data_key": initial["data_key"]}, experiment.state_sharding())


def run_loop(experiment: Experiment, outputs, stop: StopSignals) -> None:
  """Trains from the newest checkpoint to `num_train_steps`, writing through `outputs`
  (a RunOutputs, or a population's wrapper of them)."""
  config = experiment.config
  state = restore_state(experiment, outputs)
  start_step = int(np.asarray(jax.device_get(state["step"])).flat[0])
  if start_step:
    logging.info("Resumed from the checkpoint of step %d", start_step)
  outputs.open(start_step, {"devices_used": experiment.mesh.devices.size,
                            "data_info": experiment.batches.info.to_json()})
  samples, health_scores = experiment.samples(), experiment.health_scores()
  if start_step == 0:
    outputs.write_samples(0, samples(state), health_scores(state))
  num_steps = config.num_train_steps
  if start_step >= num_steps:
    logging.info("The checkpoint is at step %d: nothing to train up to num_train_steps = %d",
                 start_step, num_steps)
  step, saved_step = start_step, start_step
  carried = experiment.carry(state)
  timer_step, timer_start = step, time.perf_counter()
  while step < num_steps:
    if stop.received:
      if saved_step != step:
        outputs.save_checkpoint(step, experiment.uncarry(carried))
      logging.warning("Stopped by %s after step %d; the checkpoint is saved. Run the "
                      "same command again to continue.", stop.received, step)
      return
    count = min(config.steps_per_dispatch, num_steps - step)
    carried, metrics = experiment.step_fn(count)(carried, experiment.data_for(step, count))
    previous_step, step = step, step + count
    metrics = jax.device_get(metrics)  # small: a few scalars per step (and member)
    outputs.check_finite(metrics, previous_step + 1, saved_step)
    logged = [s for s in range(previous_step + 1, step + 1)
              if s % config.log_every == 0 or s == num_steps]
    if logged:
      elapsed = time.perf_counter() - timer_start
      steps_per_s = (step - timer_step) / max(elapsed, 1e-9)
      timer_step, timer_start = step, time.perf_counter()
      outputs.log(logged, metrics, previous_step + 1, steps_per_s)
    on_schedule = _crossed(previous_step, step, config.sample_every)
    checkpoint_due = _crossed(previous_step, step, config.checkpoint_every)
    eval_due = config.eval_every and _crossed(previous_step, step, config.eval_every)
    if not (on_schedule or checkpoint_due or eval_due or step == num_steps):
      continue
    state = experiment.uncarry(carried)
    if on_schedule or step == num_steps:
      # Health signals follow the schedule alone (not the last step's grid), so a run
      # extended later logs what a straight run logs.
      outputs.write_samples(step, samples(state),
                            health_scores(state) if on_schedule else None)
    if checkpoint_due or step == num_steps:
      outputs.save_checkpoint(step, state)
      saved_step = step
    if config.eval_every and (eval_due or step == num_steps):
      outputs.evaluate(step, state)
  outputs.finish()


def run(experiment: Experiment, outputs, workdirs: list[Path]) -> None:
  """Locks the workdirs (process 0), then runs the loop; outputs are closed however it
  ends."""
  with contextlib.ExitStack() as stack:
    if jax.process_index() == 0:
      for workdir in workdirs:
        stack.enter_context(files.WorkdirLock(workdir))
    outputs.check_resumable()
    stop = stack.enter_context(StopSignals())
    stack.callback(outputs.close)
    stack.callback(experiment.batches.close)
    run_loop(experiment, outputs, stop)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the newest intact checkpoint in `workdir`); returns the last
  logged metrics. SIGTERM or SIGINT stop it after the current step with a checkpoint."""
  experiment = create_experiment(config)
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  outputs = RunOutputs(workdir, config, experiment.variant, jax.process_index() == 0,
                       monitor=health.create_monitor(config, experiment.variant,
                                                     experiment.grid_reference()))
  run(experiment, outputs, [workdir])
  return outputs.last_metrics
