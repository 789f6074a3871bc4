"""Population versus sequential training throughput; prints one JSON line.

  python benchmarks/population.py --config=configs/dcgan_mnist.py --members=8 \\
      --batch_size=64 --steps=20

Times, in one process, the compiled step of a population of `members` seeds in both
forms (`population_step` "vmap" and "unroll", each one program) and the step of each
member trained alone, one after the other (as a sweep on one device would). All exclude
compilation; the speedups are ratios of model steps per second against sequential.
`--rounds=R` times every form R times in turn (the median counts), so drift in the
machine's speed falls on all of them alike. For the A/Bs behind two choices gax makes,
`--forms` may also name "unroll_stacked" (the unrolled step over the stacked state, where
gax carries the members' states apart) and "sequential_donated" (each member alone with
its state donated, as gax does on accelerators but not on CPU).

`--mesh_members=R` also times the population on a (R, devices / R) `member` × `data`
mesh, its state split over the R rows ("member_mesh"), beside the replicated layout
that the forms above use (every device holds every member and a slice of each batch).
On CPU, force devices first: XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import dataclasses
import json
import statistics
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from gax.training import population, sharding, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.")
flags.DEFINE_integer("members", 8, "Models in the population (seeds 0..members-1).")
flags.DEFINE_integer("batch_size", None, "Batch size of each model (default: config's).")
flags.DEFINE_integer("steps", 20, "Timed steps after the warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_integer("rounds", 1, "Rounds of --steps steps of every form in turn; the "
                     "median round counts.")
flags.DEFINE_integer("mesh_members", 0, "> 0: also time the population on a mesh of "
                     "this many member rows.")
flags.DEFINE_list("forms", ["vmap", "unroll"], "Replicated population forms to time: "
                  "population_step values, unroll_stacked or sequential_donated.")
flags.DEFINE_bool("sequential", True, "Also time each member alone, one after another.")
flags.mark_flags_as_required(["config"])


STACKED = "unroll_stacked"
SEQUENTIAL_DONATED = "sequential_donated"


@dataclasses.dataclass(frozen=True)
class StackedLayout(population.PopulationLayout):
  """The unrolled population carrying one stacked state (gax carries the members apart)."""

  def splits_members(self) -> bool:
    return False


@dataclasses.dataclass(frozen=True)
class DonatedLayout(sharding.SingleLayout):
  """One model whose step donates its state, as on accelerators."""

  def donates(self) -> bool:
    return True


def population_run(config, members, form: str) -> train.Run:
  config.population_step = "unroll" if form == STACKED else form
  run = population.create_run(config, members)
  if form == STACKED:
    run = dataclasses.replace(run, layout=StackedLayout(**vars(run.layout)), compiled={})
  return run


def donated(run: train.Run) -> train.Run:
  return dataclasses.replace(run, layout=DonatedLayout(run.mesh), compiled={})


class StepTimer:
  """A run's step, compiled and warmed up; `time()` runs --steps more and returns
  seconds per step, one step per call."""

  def __init__(self, run: train.Run):
    self.state = run.layout.carry(train.initial_state(run))
    self.data = lambda: train.step_data(run, 0, 1)
    start = time.perf_counter()
    self.compiled = train.step_fn(run, 1).lower(self.state, self.data()).compile()
    self.compile_s = time.perf_counter() - start
    for _ in range(FLAGS.warmup):
      self.state, _ = self.compiled(self.state, self.data())
    jax.block_until_ready(self.state)

  def time(self) -> float:
    start = time.perf_counter()
    for _ in range(FLAGS.steps):
      self.state, metrics = self.compiled(self.state, self.data())
    jax.block_until_ready((self.state, metrics))
    return (time.perf_counter() - start) / FLAGS.steps


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  members = population.member_configs(config, [{"seed": s} for s in range(FLAGS.members)])
  timers = {}  # form -> timers whose step times add up to one step of every member
  for form in FLAGS.forms:
    if form == SEQUENTIAL_DONATED:
      timers[form] = [StepTimer(donated(train.create_run(m))) for m in members]
    else:
      timers[form] = [StepTimer(population_run(config, members, form))]
  if FLAGS.mesh_members:
    config.population_step = "auto"
    config.mesh.members = FLAGS.mesh_members
    timers["member_mesh"] = [StepTimer(population.create_run(config, members))]
    config.mesh.members = 1
  if FLAGS.sequential:
    timers["sequential"] = [StepTimer(train.create_run(m)) for m in members]
  # Rounds alternate the forms, so the machine's drift falls on all of them alike.
  rounds = {form: [] for form in timers}
  for _ in range(FLAGS.rounds):
    for form, form_timers in timers.items():
      rounds[form].append(sum(timer.time() for timer in form_timers))
  rates = {form: FLAGS.members / statistics.median(times) for form, times in rounds.items()}
  compile_times = {form: sum(t.compile_s for t in form_timers)
                   for form, form_timers in timers.items()}
  speedups = {}
  if FLAGS.sequential:
    speedups = {f"{form}_speedup": round(rate / rates["sequential"], 3)
                for form, rate in rates.items() if form != "sequential"}
    speedups.update({f"{form}_speedup_by_round": [
        round(seq / t, 3) for seq, t in zip(rounds["sequential"], times)]
        for form, times in rounds.items() if form != "sequential"})
  if FLAGS.mesh_members:
    best_replicated = max(rates[form] for form in FLAGS.forms if form != SEQUENTIAL_DONATED)
    speedups["member_mesh_over_replicated"] = round(rates["member_mesh"] / best_replicated, 3)
  device = jax.devices()[0]
  print(json.dumps({
      "model": config.model.name,
      "members": FLAGS.members,
      "batch_size": config.batch_size,
      "devices": jax.device_count(),
      "mesh_members": FLAGS.mesh_members,
      **{f"{form}_model_steps_per_s": round(rate, 3) for form, rate in rates.items()},
      **speedups,
      **{f"{form}_compile_s": round(t, 2) for form, t in compile_times.items()},
      "device": f"{jax.default_backend()}:{device.device_kind}",
      "dtype": config.dtype,
      "steps": FLAGS.steps,
      "rounds": FLAGS.rounds,
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
