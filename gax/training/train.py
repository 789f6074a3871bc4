"""Training: small functions around one record of what a run is made of, and
`train_and_evaluate(config, workdir)` that runs them.

`create_run` checks the config and builds the `Run`: its mesh, batches, variant, keys,
hyperparameters and layout. `initial_state` creates the train state already laid out on
the mesh, `restore_state` takes the newest intact checkpoint instead, `step_fn` compiles
the shared update (gax/training/update.py) fed by the run's batches, and `run_loop` steps
it and writes through the run's outputs (gax/training/outputs.py). A population
(gax/training/population.py) is a Run whose layout stacks its members.
"""

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging
from jax.sharding import Mesh

from gax import errors, memory, variants
from gax.data import in_memory, pipeline
from gax.storage import files
from gax.training import health, optim, sharding, signals
from gax.training import update as update_lib
from gax.training.outputs import RunOutputs, check_workdir
from gax.variants import ema as ema_lib

NETWORKS = ("generator", "discriminator")


def stream_keys(seed: int) -> dict[str, jax.Array]:
  """Independent PRNG streams derived from the seed."""
  root = jax.random.PRNGKey(seed)
  return {name: jax.random.fold_in(root, i)
          for i, name in enumerate(("init", "train", "data", "samples"))}


def create_train_state(variant, optimizers, keys, hparams, with_ema: bool = False
                       ) -> update_lib.TrainState:
  """The plain-dict train state: step, the keys, hparams, params, batch_stats, opt_state,
  and (`with_ema`) the average of G (gax/variants/ema.py)."""
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


def with_batches(update: update_lib.StepFn, batches: in_memory.TrainBatches,
                 constrain) -> update_lib.StepFn:
  """The update fed from `data`: the step's batches gathered from the resident dataset
  (or handed over from the host), cropped, flipped and scaled, then placed on the mesh."""

  def step(state, data):
    raw = batches.gather(data, state["step"], state["data_key"]) if batches.on_device else data
    batch = batches.prepare(raw, state["step"], state["data_key"])
    return update(state, jax.tree.map(constrain, batch))

  return step


@dataclasses.dataclass(frozen=True)
class Run:
  """What a run is made of before its first step; its compiled steps are kept in
  `compiled`, by the number of steps per call."""

  config: ml_collections.ConfigDict
  mesh: Mesh
  batches: in_memory.TrainBatches
  variant: Any
  keys: dict[str, jax.Array]
  hparams: dict[str, jax.Array]
  layout: Any  # sharding.SingleLayout, or a population's
  compiled: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)


def initial_state(run: Run) -> update_lib.TrainState:
  """A fresh train state, created directly with its sharding."""
  optimizers = optim.create_optimizers(run.config)
  create = lambda keys, hparams: create_train_state(
      run.variant, optimizers, keys, hparams, ema_lib.enabled(run.config))
  return jax.jit(run.layout.vmap(create), out_shardings=run.layout.state_sharding())(
      run.keys, run.hparams)


def step_fn(run: Run, count: int) -> update_lib.StepFn:
  """The jitted function of `count` steps: (carried state, data) -> (carried state,
  metrics), the state as the layout carries it."""
  if count not in run.compiled:
    config, layout, on_device = run.config, run.layout, run.batches.on_device
    update = update_lib.make_update_fn(
        run.variant, lambda hparams: optim.create_optimizers(config, hparams),
        config.d_steps, config.nan_policy, config.inject_nan_at_step, config.g_step_fake,
        config.ema.decay, config.ema.start_step, config.ema.rampup)
    fed = with_batches(update, run.batches, lambda x: sharding.constrain_batch(run.mesh, x, 1))
    run.compiled[count] = update_lib.make_train_step(
        layout.batched(fed, on_device), count, on_device, layout.state_sharding(),
        layout.data_sharding(on_device), layout.metrics_sharding(), layout.donates())
  return run.compiled[count]


def step_data(run: Run, step: int, count: int):
  """The step function's data for steps [step, step + count): the resident dataset, or
  those steps' batches."""
  batches, layout = run.batches, run.layout
  if batches.on_device:
    if "resident" not in run.compiled:
      run.compiled["resident"] = sharding.global_array(batches.arrays, layout.replicated)
    return run.compiled["resident"]
  host = layout.host_batches(batches, run.keys["data"], step, count)
  data_sharding = layout.data_sharding(False)
  if batches.rows_per_process < batches.batch_size:
    # This process read only its devices' rows of each batch.
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(data_sharding, x),
                        host)
  return sharding.global_array(host, data_sharding)


def check_memory(run: Run) -> None:
  """Refuses sizes the machine cannot hold before anything is allocated: the train state
  (the old one lives through the step unless donated), the resident data, the sample
  grid's forward pass and the evaluation's images."""
  state = jax.eval_shape(lambda: initial_state(run))
  resident = run.batches.num_bytes if run.batches.on_device else 0
  memory.check_training(state, 2 if run.layout.donates() else 3, resident,
                        run.batches.info.field_shapes)
  memory.check(health.grid_bytes(run, state), f"the sample grid of num_samples = "
               f"{run.config.num_samples}", memory.device_bytes(), "the device")
  if run.config.eval_every:
    memory.check_evaluation(run.config.eval.num_samples, run.batches.info.field_shapes)


def load_batches(config: ml_collections.ConfigDict, num_members: int = 1
                 ) -> in_memory.TrainBatches:
  """The variant's training data, in the run's order."""
  return pipeline.create_batches(config.data, variants.batch_spec(config),
                                 config.batch_size, config.d_steps, config.variant,
                                 whole_batches=num_members > 1)


def create_mesh(config: ml_collections.ConfigDict, num_members: int = 1) -> Mesh:
  """The run's (member, data) mesh; `num_members` models must divide over its rows."""
  variants.validate(config)  # before the mesh: a bad num_devices is one line too
  mesh = sharding.create_mesh(config.num_devices, config.mesh.members, config.mesh.data)
  rows = mesh.shape["member"]
  if num_members == 1 and rows > 1:
    raise errors.ConfigError(
        f"config.mesh.members = {rows}: a single run is one model; mesh rows beyond 1 "
        "are for populations (gax.main --population, gax.sweep --population)")
  if num_members % rows:
    allowed = [m for m in sharding.divisors(num_members) if mesh.devices.size % m == 0]
    raise errors.ConfigError(
        f"a population of {num_members} members does not divide over config.mesh.members"
        f" = {rows} mesh rows; allowed: {', '.join(map(str, allowed))}")
  variants.validate(config, mesh.shape["data"])
  logging.info("Training on %d %s device(s), a %s mesh (%s): %s", mesh.devices.size,
               jax.default_backend(), " × ".join(map(str, mesh.devices.shape)),
               " × ".join(mesh.axis_names), mesh.devices.tolist())
  return mesh


def create_run(config: ml_collections.ConfigDict, num_members: int = 1,
               check: bool = True) -> Run:
  """Checks the config, loads the data and builds the variant: one model's run, or
  (`num_members` > 1, unchecked) the parts a population stacks."""
  mesh = create_mesh(config, num_members)
  batches = load_batches(config, num_members)
  variant = variants.create(config, batches.info)
  if config.g_step_fake == "reuse" and not variant.reuses_fake:
    raise errors.ConfigError(
        f"config.g_step_fake = 'reuse' needs a variant whose G step trains on one fake "
        f"batch; the {config.variant!r} variant does not: use 'fresh'")
  run = Run(config, mesh, batches, variant, stream_keys(config.seed),
            hyperparameters(config), sharding.SingleLayout(mesh))
  if check:
    check_memory(run)
  return run


def _crossed(previous_step: int, step: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (previous_step, step]."""
  return step // every > previous_step // every


def restore_state(run: Run, outputs) -> update_lib.TrainState:
  """The newest intact checkpoint, or a fresh state. `hparams` and `data_key` always come
  from the config, as they would on a fresh start, so a resumed run takes the
  hyperparameters it is given."""
  initial = initial_state(run)
  restored = outputs.restore(run.layout.checkpoint_like(initial))
  if restored is None:
    return initial
  return jax.device_put({**restored, "hparams": initial["hparams"],
                         "data_key": initial["data_key"]}, run.layout.state_sharding())


def run_loop(run: Run, outputs, stop: signals.StopSignals) -> None:
  """Trains from the newest checkpoint to `num_train_steps`, writing through `outputs`
  (a RunOutputs, or a population's wrapper of them)."""
  config, layout = run.config, run.layout
  state = restore_state(run, outputs)
  start_step = int(np.asarray(jax.device_get(state["step"])).flat[0])
  if start_step:
    logging.info("Resumed from the checkpoint of step %d", start_step)
  outputs.open(start_step, {"devices_used": run.mesh.devices.size,
                            "data_info": run.batches.info.to_json()})
  samples, health_scores = health.grid_sampler(run), health.real_scorer(run)
  if start_step == 0:
    outputs.write_samples(0, samples(state), health_scores(state))
  num_steps = config.num_train_steps
  if start_step >= num_steps:
    logging.info("The checkpoint is at step %d: nothing to train up to num_train_steps = %d",
                 start_step, num_steps)
  step, saved_step = start_step, start_step
  carried = layout.carry(state)
  timer_step, timer_start = step, time.perf_counter()
  while step < num_steps:
    if stop.received:
      if saved_step != step:
        outputs.save_checkpoint(step, layout.uncarry(carried))
      logging.warning("Stopped by %s after step %d; the checkpoint is saved. Run the "
                      "same command again to continue.", stop.received, step)
      return
    count = min(config.steps_per_dispatch, num_steps - step)
    carried, metrics = step_fn(run, count)(carried, step_data(run, step, count))
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
    state = layout.uncarry(carried)
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


def run_in_workdirs(run: Run, outputs, workdirs: list[Path]) -> None:
  """Locks the workdirs (process 0), then runs the loop; outputs are closed however it
  ends."""
  with contextlib.ExitStack() as stack:
    if jax.process_index() == 0:
      for workdir in workdirs:
        stack.enter_context(files.WorkdirLock(workdir))
    outputs.check_resumable()
    stop = stack.enter_context(signals.StopSignals())
    stack.callback(outputs.close)
    stack.callback(run.batches.close)
    run_loop(run, outputs, stop)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains (resuming from the newest intact checkpoint in `workdir`); returns the last
  logged metrics. SIGTERM or SIGINT stop it after the current step with a checkpoint."""
  workdir = Path(workdir)
  check_workdir(workdir)
  run = create_run(config)
  workdir.mkdir(parents=True, exist_ok=True)
  outputs = RunOutputs(workdir, config, run.variant, jax.process_index() == 0,
                       monitor=health.create_monitor(config, run.variant,
                                                     health.grid_reference(run)))
  run_in_workdirs(run, outputs, [workdir])
  return outputs.last_metrics
