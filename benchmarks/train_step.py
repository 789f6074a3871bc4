"""Times the real training step of any config and prints one JSON line.

  python benchmarks/train_step.py --config=configs/dcgan64.py:dataset=fake,channels=3 \\
      --batch_size=64 --steps=20 [--dtype=bfloat16] [--config.field=value ...]

The step is the one `gax.main` runs (same experiment, same compiled update, data on the
device), timed after compilation. FLOPs are counted from the step's jaxpr (benchmarks/flops.py).

`--ab` times variants of the config side by side instead, in one process: each
`name:field=value,...` is the config with those overrides, and every round times
`--steps` steps of the base config and of each variant in turn, so load on the machine
falls on all of them alike. It prints each one's median step time and its ratio to the
base's:

  python benchmarks/train_step.py --config=configs/dcgan64.py --batch_size=64 --steps=10 \
      --rounds=5 --ab="sn:model.d_spectral_norm=True;ema:ema.decay=0.999"
"""

import ast
import collections
import copy
import gzip
import json
import statistics
import tempfile
import time
from pathlib import Path

import flops  # benchmarks/flops.py, beside this script
import jax
import step_timing
from absl import app, flags
from ml_collections import config_flags

from gax import config_base
from gax.training import train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file.")
flags.DEFINE_integer("batch_size", None, "Global batch size (default: the config's).")
flags.DEFINE_integer("steps", 20, "Timed steps after the warm-up.")
flags.DEFINE_integer("warmup", 2, "Untimed steps after compilation.")
flags.DEFINE_string("dtype", None, "Compute dtype: float32 or bfloat16.")
flags.DEFINE_integer("steps_per_dispatch", 1, "Steps per compiled call.")
flags.DEFINE_integer("profile", 0, "Also trace this many dispatches and print the device "
                     "time of the costliest kernels per step, as a JSON line before the "
                     "result (accelerators only).")
flags.DEFINE_string("ab", None, "Variants timed side by side with the config: "
                    "'name:field=value,field=value;name2:...'.")
flags.DEFINE_integer("rounds", 5, "--ab: rounds of --steps steps per variant.")
flags.mark_flags_as_required(["config"])

# Dense peak FLOP/s by device kind and compute dtype (vendor figures).
PEAK_FLOPS = {
    "NVIDIA H100 80GB HBM3": {"bfloat16": 989e12, "float32": 495e12},  # fp32 via TF32
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 495e12},
}


def device_time_by_kernel(run, top: int = 15) -> dict:
  """Traces `run()` with jax.profiler; device ms of its costliest kernels, by name.

  Kernels are the events on the device's stream lines (an H100's trace with JAX 0.11.2
  had one stream line and no line of XLA ops, so kernels are not tied to layers here).
  """
  with tempfile.TemporaryDirectory() as log_dir:
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
      run()
    trace_file = next(Path(log_dir).rglob("perfetto_trace.json.gz"))
    trace = json.load(gzip.open(trace_file))
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  metadata = [e for e in events if e.get("ph") == "M" and "args" in e]
  process = {e["pid"]: e["args"].get("name", "") for e in metadata
             if e["name"] == "process_name"}
  thread = {(e["pid"], e.get("tid")): e["args"].get("name", "") for e in metadata
            if e["name"] == "thread_name"}
  device_pids = {pid for pid, name in process.items() if "/device:" in name or "GPU" in name}
  kernels, lines = collections.Counter(), collections.Counter()
  for event in events:
    if event.get("ph") != "X" or event["pid"] not in device_pids:
      continue
    line = thread.get((event["pid"], event.get("tid")), "")
    lines[line] += event["dur"] / 1e3
    if "Stream" in line:
      kernels[event["name"]] += event["dur"] / 1e3
  return {"processes": sorted(process.values()),
          "lines": {line: round(ms, 2) for line, ms in lines.items()},
          "kernel_ms": sum(kernels.values()), "kernels": kernels.most_common(top)}


def xla_cost_flops(lowered, compiled) -> float | None:
  """XLA's own count, for comparison: before backend passes when it has one."""
  for stage in (lowered, compiled):
    try:
      cost = stage.cost_analysis()
    except Exception:  # backends without cost analysis raise
      cost = None
    cost = cost[0] if isinstance(cost, list) and cost else cost
    if cost and cost.get("flops"):
      return float(cost["flops"])
  return None


def model_name(config) -> str:
  """The networks' name (CycleGAN has one pair of networks, named by its variant)."""
  return config.model.name if "name" in config.model else config.variant


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def parse_ab(text: str) -> dict[str, dict]:
  """'name:field=value,...;name2:...' -> {name: {field: value}}."""
  variants = {}
  for item in filter(None, (part.strip() for part in text.split(";"))):
    name, _, overrides = item.partition(":")
    variants[name] = {field: _literal(value) for field, _, value in
                      (o.partition("=") for o in overrides.split(",") if o)}
  return variants


def compare(config, variants: dict[str, dict]) -> dict:
  """Median step ms of the config and of each variant, timed in interleaved rounds."""
  configs = {}
  for name, overrides in {"base": {}, **variants}.items():
    configs[name] = copy.deepcopy(config)
    config_base.apply_overrides(configs[name], overrides)
  times = step_timing.interleaved_step_ms(configs, FLAGS.steps, FLAGS.rounds, FLAGS.warmup)
  median = {name: statistics.median(ms) for name, ms in times.items()}
  return {"model": model_name(config), "batch_size": config.batch_size,
          "device": f"{jax.default_backend()}:{jax.devices()[0].device_kind}",
          "rounds": FLAGS.rounds, "steps_per_round": FLAGS.steps,
          "step_ms": {name: round(ms, 2) for name, ms in median.items()},
          "overhead": {name: round(ms / median["base"] - 1, 4) for name, ms in median.items()
                       if name != "base"},
          "step_ms_rounds": {name: [round(t, 1) for t in ms] for name, ms in times.items()},
          "variants": variants, "jax": jax.__version__}


def main(argv):
  del argv
  config = FLAGS.config
  if FLAGS.batch_size:
    config.batch_size = FLAGS.batch_size
  if FLAGS.dtype:
    config.dtype = FLAGS.dtype
  config.steps_per_dispatch = FLAGS.steps_per_dispatch
  if FLAGS.ab:
    print(json.dumps(compare(config, parse_ab(FLAGS.ab))))
    return
  run = train.create_run(config)
  state = train.initial_state(run)
  count = FLAGS.steps_per_dispatch
  data = lambda: train.step_data(run, 0, count)

  start = time.perf_counter()
  lowered = train.step_fn(run, count).lower(state, data())
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  flops_per_step = flops.count(train.step_fn(run, count), state,
                               data()) / count
  xla_flops = xla_cost_flops(lowered, compiled)

  for _ in range(FLAGS.warmup):
    state, metrics = compiled(state, data())
  jax.block_until_ready(state)
  dispatches = max(1, FLAGS.steps // count)
  start = time.perf_counter()
  for _ in range(dispatches):
    state, metrics = compiled(state, data())
  jax.block_until_ready((state, metrics))
  elapsed = time.perf_counter() - start

  if FLAGS.profile:
    def run_traced():
      nonlocal state, metrics
      for _ in range(FLAGS.profile):
        state, metrics = compiled(state, data())
      jax.block_until_ready((state, metrics))

    profile = device_time_by_kernel(run_traced)
    per_step = FLAGS.profile * count
    print(json.dumps({
        "profile": model_name(config), "batch_size": config.batch_size, "dtype": config.dtype,
        "trace_processes": profile["processes"], "trace_lines_ms": profile["lines"],
        "kernel_ms_per_step": round(profile["kernel_ms"] / per_step, 3),
        "kernels_ms_per_step": [[name[:100], round(ms / per_step, 4)]
                                for name, ms in profile["kernels"]]}))

  steps = dispatches * count
  step_s = elapsed / steps
  device = jax.devices()[0]
  peak = PEAK_FLOPS.get(device.device_kind, {}).get(config.dtype)
  achieved = flops_per_step / step_s
  print(json.dumps({
      "model": model_name(config),
      "dataset": config.dataset,
      "images_per_s": round(config.batch_size / step_s, 2),
      "step_ms": round(step_s * 1e3, 3),
      "compile_s": round(compile_s, 2),
      "device": f"{jax.default_backend()}:{device.device_kind}",
      "num_devices": run.mesh.devices.size,
      "dtype": config.dtype,
      "default_matmul_precision": jax.config.jax_default_matmul_precision or "default",
      "conv_transpose": config.model.get("conv_transpose"),
      "batch_size": config.batch_size,
      "steps": steps,
      "steps_per_dispatch": count,
      "gflop_per_image": round(flops_per_step / config.batch_size / 1e9, 3),
      "xla_cost_gflop_per_image": (round(xla_flops / count / config.batch_size / 1e9, 3)
                                   if xla_flops else None),
      "tflops": round(achieved / 1e12, 4),
      "share_of_peak": round(achieved / peak, 4) if peak else None,
      "jax": jax.__version__,
  }))


if __name__ == "__main__":
  app.run(main)
