"""Population versus sequential training throughput; prints one JSON line.

  python benchmarks/population.py --config=configs/dcgan_mnist.py --members=8 \\
      --batch_size=64 --steps=20

Times the compiled step of a population of `members` seeds (one vmapped program) and,
in the same process, the step of each member trained alone, one after the other (as a
sweep on one device would). Both exclude compilation; `speedup` is the ratio of model
steps per second.
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
  runner = experiment.step_runner()
  state = experiment.initial_state()
  start = time.perf_counter()
  compiled = runner.step_fn(1).lower(state, runner.data_for(state, 1)).compile()
  compile_s = time.perf_counter() - start
  for _ in range(FLAGS.warmup):
    state, _ = compiled(state, runner.data_for(state, 1))
  jax.block_until_ready(state)
  start = time.perf_counter()
  for _ in range(FLAGS.steps):
    state, metrics = compiled(state, runner.data_for(state, 1))
  jax.block_until_ready((state, metrics))
  return compile_s, (time.perf_counter() - start) / FLAGS.steps


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  members = population.member_configs(config, [{"seed": s} for s in range(FLAGS.members)])
  population_compile_s, population_step_s = time_steps(
      train.create_experiment(config, members))
  sequential_compile_s, sequential_step_s = 0.0, 0.0
  for member in members:
    compile_s, step_s = time_steps(train.create_experiment(member))
    sequential_compile_s += compile_s
    sequential_step_s += step_s
  population_rate = FLAGS.members / population_step_s
  sequential_rate = FLAGS.members / sequential_step_s
  device = jax.devices()[0]
  print(json.dumps({
      "model": config.model.name,
      "members": FLAGS.members,
      "batch_size": config.batch_size,
      "population_model_steps_per_s": round(population_rate, 3),
      "sequential_model_steps_per_s": round(sequential_rate, 3),
      "speedup": round(population_rate / sequential_rate, 3),
      "population_images_per_s": round(population_rate * config.batch_size, 1),
      "population_compile_s": round(population_compile_s, 2),
      "sequential_compile_s": round(sequential_compile_s, 2),
      "device": f"{jax.default_backend()}:{device.device_kind}",
      "dtype": config.dtype,
      "steps": FLAGS.steps,
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
