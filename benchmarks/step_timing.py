"""Step times of several configs measured side by side: every round times a few steps of
each in turn, so a load that comes and goes on the machine falls on all of them alike.
What `benchmarks/train_step.py --ab` reports, and how experiments give every cell of a
study the same CPU time."""

import statistics
import time

import jax
import ml_collections

from gax.training import train


def interleaved_step_ms(configs: dict[str, ml_collections.ConfigDict], steps: int,
                        rounds: int, warmup: int = 1) -> dict[str, list[float]]:
  """Milliseconds per compiled training step of each config, one entry per round
  (compilation and `warmup` steps excluded)."""
  steppers = {}
  for name, config in configs.items():
    run = train.create_run(config)
    state, step, data = (train.initial_state(run), train.step_fn(run, 1),
                         train.step_data(run, 0, 1))
    for _ in range(warmup + 1):  # the first call compiles
      state, _ = step(state, data)
    jax.block_until_ready(state)
    steppers[name] = [state, step, data]
  times = {name: [] for name in steppers}
  for _ in range(rounds):
    for name, stepper in steppers.items():
      start = time.perf_counter()
      for _ in range(steps):
        stepper[0], _ = stepper[1](stepper[0], stepper[2])
      jax.block_until_ready(stepper[0])
      times[name].append(1e3 * (time.perf_counter() - start) / steps)
  return times


def median_step_ms(configs: dict[str, ml_collections.ConfigDict], steps: int, rounds: int,
                   warmup: int = 1) -> dict[str, float]:
  return {name: statistics.median(ms)
          for name, ms in interleaved_step_ms(configs, steps, rounds, warmup).items()}
