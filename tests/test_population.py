"""Populations: one vmapped program trains what separate runs train, workdir for workdir."""

import csv
import math
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from test_train import ROOT, load_config, read_metrics, restore_params, tiny

from gax import config_base, population, train, variants

SEEDS = range(8)


def _config(steps=3):
  config = tiny(load_config("gan_mnist"), steps=steps)
  # SGD: Adam divides by sqrt(v), which turns float-rounding differences in near-zero
  # gradients (vmapped and plain matmuls round differently) into full-size steps.
  config.optimizer.name, config.optimizer.learning_rate = "sgd", 0.05
  config.health.real_examples = 16  # each member's r_t, vmapped, as its separate run's
  return config


def _members(workdir, seeds=SEEDS):
  return [(workdir / f"seed{seed}", {"seed": seed,
                                     "optimizer.d_learning_rate": 0.02 + 0.01 * seed,
                                     "optimizer.b1": 0.5})
          for seed in seeds]


def _member_config(overrides, steps=3):
  config = _config(steps)
  config_base.apply_overrides(config, overrides)
  return config


def _assert_close(params_a, params_b, rtol):
  for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_b), strict=True):
    scale = np.max(np.abs(b)) + 1e-12
    assert np.max(np.abs(np.asarray(a) - np.asarray(b))) / scale < rtol


def _assert_same_metrics(workdir_a, workdir_b):
  records_a, records_b = read_metrics(workdir_a), read_metrics(workdir_b)
  assert [r["step"] for r in records_a] == [r["step"] for r in records_b]
  for a, b in zip(records_a, records_b):
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(b)],
                               rtol=1e-4, atol=1e-6)


@pytest.fixture(scope="module")
def separate_runs(tmp_path_factory):
  """The eight members, each trained alone: {member name: workdir}."""
  root = tmp_path_factory.mktemp("alone")
  runs = {}
  for workdir, overrides in _members(root):
    train.train_and_evaluate(_member_config(overrides), str(workdir))
    runs[workdir.name] = workdir
  return runs


@pytest.mark.parametrize("form", ["vmap", "unroll"])
def test_a_population_of_eight_seeds_matches_eight_separate_runs(tmp_path, separate_runs,
                                                                 form):
  members = _members(tmp_path / "population")
  config = _config()
  config.population_step = form
  final = population.train_population(config, members)
  assert len(final) == 8 and len({m["g_loss"] for m in final}) == 8
  for workdir, overrides in members:
    alone = separate_runs[workdir.name]
    _assert_close(restore_params(workdir, 3), restore_params(alone, 3), rtol=1e-5)
    _assert_same_metrics(workdir, alone)  # the health records too: r_t, vmapped
    assert any("health/r_t_held_out" in r for r in read_metrics(workdir))
    saved, _ = variants.read_run_config(workdir / "config.json")
    assert saved.seed == overrides["seed"]
    assert saved.optimizer.d_learning_rate == overrides["optimizer.d_learning_rate"]
    assert (workdir / "samples" / "step_000003.png").exists()


def test_a_resumed_population_ends_where_an_uninterrupted_one_ends(tmp_path):
  straight = _members(tmp_path / "straight", seeds=(0, 1))
  population.train_population(_config(steps=4), straight)
  resumed = _members(tmp_path / "resumed", seeds=(0, 1))
  population.train_population(_config(steps=2), resumed)
  population.train_population(_config(steps=4), resumed)
  for (a, _), (b, _) in zip(straight, resumed):
    _assert_close(restore_params(a, 4), restore_params(b, 4), rtol=1e-6)
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
  config = _config()
  config.population_step = "unroll"
  members = population.member_configs(config, [o for _, o in _members(tmp_path, (0, 1, 2))])
  experiment = population.create_experiment(config, members)
  state = experiment.initial_state()
  carried = experiment.carry(state)
  hlo = experiment.step_fn(1).lower(carried, experiment.data_for(0, 1)).compile().as_text()
  state_elements = sum(leaf.size for leaf in jax.tree.leaves(state))
  assert _copied_elements(hlo) < 0.01 * state_elements
  for restacked, stacked in zip(jax.tree.leaves(experiment.uncarry(carried)),
                                jax.tree.leaves(state)):
    np.testing.assert_array_equal(restacked, stacked)


def test_members_may_differ_only_in_population_fields(tmp_path):
  with pytest.raises(config_base.ConfigError, match="not in batch_size"):
    population.train_population(_config(), [(tmp_path / "a", {"seed": 1}),
                                       (tmp_path / "b", {"batch_size": 16})])
  assert not (tmp_path / "a").exists()


def test_population_file_errors_say_what_is_expected(tmp_path):
  bad = tmp_path / "members.json"
  bad.write_text('{"members": [{"overrides": {}}]}')
  with pytest.raises(config_base.ConfigError, match="expected JSON"):
    population.read_population_file(str(bad))
  bad.write_text('{"members": [{"workdir": "a"}, {"workdir": "a"}]}')
  with pytest.raises(config_base.ConfigError, match="share a workdir"):
    population.read_population_file(str(bad))


SWEEP = """
TINY = {"batch_size": 8, "num_train_steps": 2, "log_every": 1, "sample_every": 2,
        "checkpoint_every": 2, "num_samples": 4, "optimizer.name": "sgd"}

def sweep(add):
  for seed in (0, 1):
    for lr in (0.01, 0.02):
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
  assert len(lines) == 2, dry.stderr[-2000:]  # a population of 4, and d_steps=2 alone
  assert "--population=" in lines[0] and "--population=" not in lines[1]

  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  with (tmp_path / "sweep" / "summary.csv").open() as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 5 and all(row["step"] == "2" for row in rows)
  assert len({row["g_loss"] for row in rows}) == 5
  rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert "2 finished already, 0 to run" in rerun.stderr
