"""Population versus sequential training throughput; prints one JSON line.

  python benchmarks/population.py --config=configs/dcgan_mnist.py --members=8 \\
      --batch_size=64 --steps=20

Times, in one process, the compiled step of a population of `members` seeds in both
forms (`population_step` "vmap" and "unroll", each one program) and the step of each
member trained alone, one after the other (as a sweep on one device would). All exclude
compilation; the speedups are ratios of model steps per second against sequential.

`--mesh_members=R` also times the population on a (R, devices / R) `member` × `data`
mesh, its state split over the R rows ("member_mesh"), beside the replicated layout
that the forms above use (every device holds every member and a slice of each batch).
On CPU, force devices first: XLA_FLAGS=--xla_force_host_platform_device_count=8.
"""

import json
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from gax import population, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.")
flags.DEFINE_integer("members", 8, "Models in the population (seeds 0..members-1).")
flags.DEFINE_integer("batch_size", None, "Batch size of each model (default: config's).")
flags.DEFINE_integer("steps", 20, "Timed steps after the warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_integer("mesh_members", 0, "> 0: also time the population on a mesh of "
                     "this many member rows.")
flags.DEFINE_list("forms", ["vmap", "unroll"], "Replicated population forms to time "
                  "(population_step values).")
flags.DEFINE_bool("sequential", True, "Also time each member alone, one after another.")
flags.mark_flags_as_required(["config"])


def time_steps(experiment: train.Experiment) -> tuple[float, float]:
  """(compile seconds, seconds per step) of the experiment's step, one step per call."""
  state = experiment.initial_state()
  data = lambda: experiment.data_for(0, 1)
  start = time.perf_counter()
  compiled = experiment.step_fn(1).lower(state, data()).compile()
  compile_s = time.perf_counter() - start
  for _ in range(FLAGS.warmup):
    state, _ = compiled(state, data())
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = compiled(state, data())
  jax.block_until_ready((state, metrics))
  return compile_s, (time.perf_counter() - start) / FLAGS.steps


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  members = population.member_configs(config, [{"seed": s} for s in range(FLAGS.members)])
  rates, compile_times = {}, {}
  for form in FLAGS.forms:
    config.population_step = form
    compile_times[form], step_s = time_steps(population.create_experiment(config, members))
    rates[form] = FLAGS.members / step_s
  if FLAGS.mesh_members:
    config.population_step = "auto"
    config.mesh.members = FLAGS.mesh_members
    compile_times["member_mesh"], step_s = time_steps(
        population.create_experiment(config, members))
    rates["member_mesh"] = FLAGS.members / step_s
    config.mesh.members = 1
  speedups = {}
  if FLAGS.sequential:
    compile_times["sequential"], step_s = 0.0, 0.0
    for member in members:
      member_compile_s, member_step_s = time_steps(train.create_experiment(member))
      compile_times["sequential"] += member_compile_s
      step_s += member_step_s
    rates["sequential"] = FLAGS.members / step_s
    speedups = {f"{form}_speedup": round(rate / rates["sequential"], 3)
                for form, rate in rates.items() if form != "sequential"}
  if FLAGS.mesh_members:
    best_replicated = max(rates[form] for form in FLAGS.forms)
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
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
