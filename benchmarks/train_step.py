"""Times the real training step of any config and prints one JSON line.

  python benchmarks/train_step.py --config=configs/dcgan64.py:dataset=fake,channels=3 \\
      --batch_size=64 --steps=20 [--dtype=bfloat16] [--config.field=value ...]

The step is the one `gax.main` runs (same experiment, same compiled update, data on the
device), timed after compilation. FLOPs come from XLA's own cost analysis.
"""

import json
import time

import jax
from absl import app, flags
from ml_collections import config_flags

from gax import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: the config's).")
flags.DEFINE_integer("steps", 20, "Timed steps after the warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_string("dtype", None, "Compute dtype: float32 or bfloat16.")
flags.DEFINE_integer("steps_per_dispatch", 1, "Steps per compiled call.")
flags.mark_flags_as_required(["config"])

# Dense peak FLOP/s by device kind and compute dtype (vendor figures).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 495e12},  # fp32 via TF32
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 495e12},
}


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  if FLAGS.dtype:
    config.dtype = FLAGS.dtype
  config.steps_per_dispatch = FLAGS.steps_per_dispatch
  experiment = train.create_experiment(config)
  runner = experiment.step_runner()
  state = experiment.initial_state()
  count = FLAGS.steps_per_dispatch

  start = time.perf_counter()
  compiled = runner.step_fn(count).lower(state, runner.data_for(state, count)).compile()
  compile_s = time.perf_counter() - start
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  # XLA counts a while loop's body once, so a scanned call reports one step's FLOPs.
  flops_per_step = float(cost.get("flops", 0.0))

  for _ in range(FLAGS.warmup):
    state, metrics = compiled(state, runner.data_for(state, count))
  jax.block_until_ready(state)
  dispatches = max(1, FLAGS.steps // count)
  start = time.perf_counter()
  for _ in range(dispatches):
    state, metrics = compiled(state, runner.data_for(state, count))
  jax.block_until_ready((state, metrics))
  elapsed = time.perf_counter() - start

  steps = dispatches * count
  step_s = elapsed / steps
  device = jax.devices()[0]
  peak = PEAK_FLOPS.get(device.device_kind, {}).get(config.dtype)
  achieved = flops_per_step / step_s
  print(json.dumps({
      "model": config.model.name,
      "dataset": config.dataset,
      "images_per_s": round(config.batch_size / step_s, 2),
      "step_ms": round(step_s * 1e3, 3),
      "compile_s": round(compile_s, 2),
      "device": f"{jax.default_backend()}:{device.device_kind}",
      "num_devices": experiment.mesh.devices.size,
      "dtype": config.dtype,
      "batch_size": config.batch_size,
      "steps": steps,
      "steps_per_dispatch": count,
      "gflop_per_image": round(flops_per_step / config.batch_size / 1e9, 3),
      "tflops": round(achieved / 1e12, 4),
      "share_of_peak": round(achieved / peak, 4) if peak else None,
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
