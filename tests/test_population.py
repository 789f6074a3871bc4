"""Populations: one vmapped program trains what separate runs train, workdir for workdir."""

import csv
import math
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import (
  ONE_STEP_BOUND,
  ROOT,
  assert_close,
  population_config,
  population_members,
  read_metrics,
  restore_params,
  update_differences,
)

from gax import errors
from gax.trained import run as trained_run
from gax.training import checkpoint, population, train


def one_step_each(run, alone, state, step):
  """The population's step from `state`, and each member's own run's step from its slice
  of it: (the population's new state, [each member's new state and metrics])."""
  carried, _ = train.step_fn(run, 1)(run.layout.carry(state), train.step_data(run, step, 1))
  own = [train.step_fn(alone, 1)(population.member(state, index),
                                 train.step_data(alone, step, 1))
         for index in range(run.layout.num_members)]
  return run.layout.uncarry(carried), own


@pytest.mark.parametrize("form", ["vmap", "unroll"])
def test_each_population_step_is_each_members_own_step(tmp_path, form):
  """Every step of a population of 8 seeds moves each member's state as that member's
  own run's step does, to float32 rounding (each step from the same state: see
  tests/helpers.py's update_differences). One single-model run serves every member: its
  keys and hyperparameters travel in the state."""
  config = population_config()
  config.population_step = form
  members = population.member_configs(config, [o for _, o in population_members(tmp_path)])
  run, alone = population.create_run(config, members), train.create_run(population_config())
  state, worst = train.initial_state(run), 0.0
  for step in range(3):
    after, own = one_step_each(run, alone, state, step)
    for index, (own_after, _) in enumerate(own):
      differences = update_differences(population.member(state, index), own_after,
                                       population.member(after, index))
      worst = max(worst, *differences.values())
    state = after
  assert worst < ONE_STEP_BOUND, worst


def test_a_population_writes_each_members_workdir_as_its_own_run_would(tmp_path):
  members = population_members(tmp_path / "population", seeds=(0, 1, 2))
  config = population_config()
  final = population.train_population(config, members)
  assert len({m["g_loss"] for m in final}) == 3
  # Step 1's losses are those of each member's initial networks: its own run's, to
  # float32 rounding (no training yet to amplify it).
  run = population.create_run(config, population.member_configs(
      config, [o for _, o in members]))
  _, own = one_step_each(run, train.create_run(population_config()),
                         train.initial_state(run), 0)
  for (workdir, overrides), (_, own_metrics) in zip(members, own):
    records = read_metrics(workdir)
    assert [r["step"] for r in records if "d_loss" in r] == [1, 2, 3]
    for name in ("d_loss", "g_loss"):
      assert records[1][name] == pytest.approx(float(own_metrics[name][0]), rel=1e-5)
    assert any("health/r_t_held_out" in r for r in records)  # each member's r_t, vmapped
    saved, _ = trained_run.read_run_config(workdir / "config.json")
    assert saved.seed == overrides["seed"]
    assert saved.optimizer.d_learning_rate == overrides["optimizer.d_learning_rate"]
    assert (workdir / "samples" / "step_000003.png").exists()
    assert checkpoint.saved_steps(workdir / "checkpoints") == [2, 3]


def test_a_resumed_population_ends_where_an_uninterrupted_one_ends(tmp_path):
  straight = population_members(tmp_path / "straight", seeds=(0, 1))
  population.train_population(population_config(steps=4), straight)
  resumed = population_members(tmp_path / "resumed", seeds=(0, 1))
  population.train_population(population_config(steps=2), resumed)
  population.train_population(population_config(steps=4), resumed)
  for (a, _), (b, _) in zip(straight, resumed):
    assert_close(restore_params(a, 4), restore_params(b, 4), rtol=1e-6)
    assert read_metrics(a) == read_metrics(b)


def _copied_elements(hlo: str) -> int:
  """Elements written by the copies and concatenations (fused or not) at the top level of
  a compiled program's entry computation."""
  entry = next(c for c in re.split(r"\n(?=\S)", hlo) if c.startswith("ENTRY"))
  shapes = re.findall(r"%\S*(?:copy|concatenate)\S* = \w+\[([\d,]*)\]\{[^}]*\} "
                      r"(?:copy|concatenate|fusion)\(", entry)
  return sum(math.prod(int(d) for d in shape.split(",") if d) for shape in shapes)


def test_an_unrolled_population_step_neither_copies_nor_restacks_its_state(tmp_path):
  # Stacked, the unrolled step sliced each member out and stacked the results back (a
  # copy of the whole state each step); donated as well, XLA also copied the input to
  # keep it readable while the stack was written over it. The step carries the members'
  # states apart instead.
  config = population_config()
  config.population_step = "unroll"
  members = population.member_configs(
      config, [o for _, o in population_members(tmp_path, (0, 1, 2))])
  run = population.create_run(config, members)
  state = train.initial_state(run)
  carried = run.layout.carry(state)
  hlo = train.step_fn(run, 1).lower(carried, train.step_data(run, 0, 1)).compile().as_text()
  state_elements = sum(leaf.size for leaf in jax.tree.leaves(state))
  assert _copied_elements(hlo) < 0.01 * state_elements
  for restacked, stacked in zip(jax.tree.leaves(run.layout.uncarry(carried)),
                                jax.tree.leaves(state)):
    np.testing.assert_array_equal(restacked, stacked)


def test_members_may_differ_only_in_population_fields(tmp_path):
  with pytest.raises(errors.ConfigError, match="not in batch_size"):
    population.train_population(population_config(), [(tmp_path / "a", {"seed": 1}),
                                       (tmp_path / "b", {"batch_size": 16})])
  assert not (tmp_path / "a").exists()


def test_population_file_errors_say_what_is_expected(tmp_path):
  bad = tmp_path / "members.json"
  bad.write_text('{"members": [{"overrides": {}}]}')
  with pytest.raises(errors.ConfigError, match="expected JSON"):
    population.read_population_file(str(bad))
  bad.write_text('{"members": [{"workdir": "a"}, {"workdir": "a"}]}')
  with pytest.raises(errors.ConfigError, match="share a workdir"):
    population.read_population_file(str(bad))


SWEEP = """
TINY = {"batch_size": 8, "num_train_steps": 2, "log_every": 1, "sample_every": 2,
        "checkpoint_every": 2, "num_samples": 4, "optimizer.name": "sgd"}

def sweep(add):
  for seed, lr in ((0, 0.01), (1, 0.02)):
    add(**TINY, **{"seed": seed, "optimizer.learning_rate": lr})
  add(**TINY, **{"seed": 0, "optimizer.learning_rate": 0.01, "d_steps": 2})
"""


def test_sweep_in_population_mode_groups_trials_and_summarizes_each(tmp_path):
  sweep_file = tmp_path / "sweep.py"
  sweep_file.write_text(SWEEP)
  command = [sys.executable, "-m", "gax.sweep", "--config=configs/gan_mnist.py",
             f"--sweep={sweep_file}", f"--workdir={tmp_path / 'sweep'}", "--population"]
  dry = subprocess.run(command + ["--dry_run"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  lines = dry.stdout.strip().splitlines()
  assert len(lines) == 2, dry.stderr[-2000:]  # a population of 2, and d_steps=2 alone
  assert "--population=" in lines[0] and "--population=" not in lines[1]

  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with (tmp_path / "sweep" / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 3 and all(row["step"] == "2" for row in rows)
  assert len({row["g_loss"] for row in rows}) == 3
  rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert "2 finished already, 0 to run" in rerun.stderr
