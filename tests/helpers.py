"""What many tests share: configs at tiny sizes, reading a workdir back, and comparing two
computations of one training step."""

import json
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from gax import config_base, variants
from gax.training import train

ROOT = Path(__file__).resolve().parents[1]

# float32's unit roundoff, 2**-24: the relative error of one rounded operation.
FLOAT32_ROUNDOFF = 2.0 ** -24
# The bound on how far one training step computed two ways (1 against 8 devices, a
# population against its members' own runs) may move apart, by `update_differences`:
# 2**10 roundoffs (6.1e-5). The tiny steps' largest sums run over about 1,600 terms
# (DCGAN-28's D kernel gradients: batch x 14 x 14), whose rounding grows as sqrt(n)
# roundoffs, about 40, compounded over the few layers of each network. A step that
# computes another function (batch statistics per device, another step's rows) moves
# the state by 1e-2 and more (tests/test_sweep_and_devices.py).
ONE_STEP_BOUND = 2 ** 10 * FLOAT32_ROUNDOFF


def update_differences(before, after, other) -> dict[str, float]:
  """How far `other` lies from `after`, both one step from the train state `before`: per
  group of the state (each network's params, batch statistics, G's average), the L2 norm
  of their difference over the L2 norm of `after`'s update of the group.

  One step from the same state keeps the measure at the step's own rounding: over
  several steps, training amplifies float32 rounding by a factor that depends on which
  CPU kernels XLA picks, and two layouts of one computation drift apart.
  """
  before, after, other = jax.device_get((before, after, other))
  found = {}
  for part in ("params", "batch_stats", "ema"):
    for group in after.get(part, {}):
      moved = [np.asarray(a, np.float64) - np.asarray(b, np.float64) for a, b in
               zip(jax.tree.leaves(after[part][group]), jax.tree.leaves(before[part][group]))]
      apart = [np.asarray(a, np.float64) - np.asarray(b, np.float64) for a, b in
               zip(jax.tree.leaves(after[part][group]), jax.tree.leaves(other[part][group]),
                   strict=True)]
      if not moved:
        continue
      update = np.sqrt(sum(np.sum(m * m) for m in moved))
      distance = np.sqrt(sum(np.sum(d * d) for d in apart))
      found[f"{part}/{group}"] = (0.0 if distance == 0 else
                                  float(distance / update) if update else np.inf)
  return found


def load_config(name: str, arg: str | None = None):
  return config_base.load_config_file(ROOT / "configs" / f"{name}.py", arg)


def tiny(config, steps=3):
  """Shrinks a config to a few CPU-seconds per step, keeping its model and loss (its
  variant says how: gax.variants.tiny)."""
  config.num_train_steps = steps
  return variants.tiny(config)


def read_metrics(workdir: Path) -> list[dict]:
  """metrics.jsonl without the wall-clock speed, which differs run to run."""
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k != "steps_per_s"} for r in records]


def restore_params(workdir: Path, step: int):
  """A checkpoint's params as numpy arrays, whatever devices saved them."""
  path = (workdir / "checkpoints" / str(step) / "state").absolute()
  checkpointer = ocp.PyTreeCheckpointer()
  metadata = checkpointer.metadata(path)
  tree = getattr(metadata, "item_metadata", metadata)
  tree = getattr(tree, "tree", tree)
  as_numpy = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
  return checkpointer.restore(path, restore_args=as_numpy)["params"]


def straight_and_resumed(make_config, tmp_path: Path, steps: int, stop: int
                         ) -> tuple[Path, Path]:
  """Workdirs of `make_config(steps)` trained straight, and trained to `stop` then run
  again to `steps`."""
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  train.train_and_evaluate(make_config(steps), str(straight))
  train.train_and_evaluate(make_config(stop), str(resumed))
  train.train_and_evaluate(make_config(steps), str(resumed))
  return straight, resumed


SEEDS = range(8)


def population_config(steps=3):
  """The populations' tiny recipe: the MLP GAN at SGD."""
  config = tiny(load_config("gan_mnist"), steps=steps)
  # SGD: Adam divides by sqrt(v), which turns float-rounding differences in near-zero
  # gradients (vmapped and plain matmuls round differently) into full-size steps.
  config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.05
  config.health.real_examples = 16  # each member's r_t, vmapped, as its separate run's
  return config


def population_members(workdir, seeds=SEEDS):
  """(workdir, overrides) of members that differ in seed and D's learning rate."""
  return [(workdir / f"seed{seed}", {"seed": seed,
                                     "optimizer.d_learning_rate": 0.02 + 0.01 * seed,
                                     "optimizer.b1": 0.5})
          for seed in seeds]


def member_config(overrides, steps=3):
  """A member's own config: its separate run's."""
  config = population_config(steps)
  config_base.apply_overrides(config, overrides)
  return config


def assert_close(params_a, params_b, rtol):
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
    scale = np.max(np.abs(b)) + 1e-12
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) / scale < rtol
