"""Population versus sequential training throughput; prints one JSON line.

  python benchmarks/population.py --config=configs/dcgan_mnist.py --members=8 \\
      --batch_size=64 --steps=20

Times, in one process, the compiled step of a population of `members` seeds in both
forms (`population_step` "vmap" and "unroll", each one program) and the step of each
member trained alone, one after the other (as a sweep on one device would). All exclude
compilation; the speedups are ratios of model steps per second against sequential.
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
  for form in ("vmap", "unroll"):
    config.population_step = form
    compile_times[form], step_s = time_steps(population.create_experiment(config, members))
    rates[form] = FLAGS.members / step_s
  compile_times["sequential"], step_s = 0.0, 0.0
  for member in members:
    member_compile_s, member_step_s = time_steps(train.create_experiment(member))
    compile_times["sequential"] += member_compile_s
    step_s += member_step_s
  rates["sequential"] = FLAGS.members / step_s
  device = jax.devices()[0]
  print(json.dumps({
      "model": config.model.name,
      "members": FLAGS.members,
      "batch_size": config.batch_size,
      **{f"{form}_model_steps_per_s": round(rate, 3) for form, rate in rates.items()},
      "vmap_speedup": round(rates["vmap"] / rates["sequential"], 3),
      "unroll_speedup": round(rates["unroll"] / rates["sequential"], 3),
      **{f"{form}_compile_s": round(t, 2) for form, t in compile_times.items()},
      "device": f"{jax.default_backend()}:{device.device_kind}",
      "dtype": config.dtype,
      "steps": FLAGS.steps,
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
