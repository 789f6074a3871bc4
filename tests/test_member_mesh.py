"""Populations on a `member` × `data` mesh: each row of devices trains its own members,
which end where their separate runs end, and no collective crosses rows."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from test_train import ROOT

from gax import config_base, sharding

EIGHT_DEVICES = textwrap.dedent("""
    import shutil, sys
    from pathlib import Path
    sys.path.insert(0, "tests")
    import jax
    from test_population import _config, _members, _member_config, _assert_close
    from test_train import read_metrics, restore_params
    from gax import population, sharding, train
    assert jax.device_count() == 8
    root = Path(sys.argv[1])
    STEPS = 4

    def alone(seeds, devices):
      # Each member's own run on `devices` devices: its keys and hparams through the
      # single-model step that gax.main compiles (one experiment serves every seed).
      config = _config(STEPS)
      config.num_devices = devices
      experiment = train.create_experiment(config)
      params = {}
      for workdir, overrides in _members(root, seeds):
        member = _member_config(overrides, STEPS)
        state = jax.jit(experiment.create_state, out_shardings=experiment.replicated)(
            train.stream_keys(member.seed), train.hyperparameters(member))
        for step in range(STEPS):
          state, _ = experiment.step_fn(1)(state, experiment.data_for(step, 1))
        params[workdir.name] = jax.device_get(state["params"])
      return params

    def population_config(shape, form, steps=STEPS, devices=0):
      config = _config(steps)
      config.mesh.members, config.mesh.data = shape
      config.population_step, config.num_devices = form, devices
      return config

    # A member of a (2, 4) mesh splits its batch over 4 devices: its separate run is
    # one on 4 devices.
    separate = {1: alone(range(16), 1), 4: alone(range(2), 4)}
    for size, shape, form, devices in [(8, (8, 1), "auto", 1), (16, (8, 1), "vmap", 1),
                                       (2, (2, 4), "unroll", 4)]:
      config = population_config(shape, form)
      members = _members(root / f"population{size}_{shape[0]}x{shape[1]}", range(size))
      population.train_population(config, members)
      for workdir, _ in members:
        _assert_close(restore_params(workdir, STEPS), separate[devices][workdir.name],
                      rtol=1e-5)
      experiment = population.create_experiment(
          config, population.member_configs(config, [o for _, o in members]))
      state = experiment.initial_state()
      assert state["params"]["generator"]["Dense_0"]["kernel"].sharding.spec[0] == "member"
      hlo = experiment.step_fn(1).lower(state, experiment.data_for(0, 1)).compile().as_text()
      crossing = sharding.cross_member_collectives(hlo, experiment.mesh)
      assert not crossing, crossing
      print(f"{size} members on {shape}: as separate runs, no cross-member collective")

    # Written on 8 devices, resumed on 4 and on 1: each ends where the straight run (the
    # population of 8 above) ends.
    straight = _members(root / "population8_8x1", range(8))
    halfway = _members(root / "halfway", range(8))
    population.train_population(population_config((8, 1), "auto", steps=STEPS // 2),
                                halfway)
    for devices in (4, 1):
      shutil.copytree(root / "halfway", root / f"resumed_on_{devices}")
      resumed = _members(root / f"resumed_on_{devices}", range(8))
      population.train_population(population_config((devices, 1), "auto", devices=devices),
                                  resumed)
      for (a, _), (b, _) in zip(straight, resumed):
        _assert_close(restore_params(a, STEPS), restore_params(b, STEPS), rtol=1e-6)
        assert read_metrics(a) == read_metrics(b)
      print(f"restored on {devices} devices: as the straight run")
""")


def test_populations_on_a_member_mesh_match_their_separate_runs(tmp_path):
  environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  result = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, str(tmp_path)], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count("no cross-member collective") == 3
  assert result.stdout.count("as the straight run") == 2


@pytest.mark.parametrize("line, crosses", [
    ("x = f32[2] all-reduce(y), replica_groups={{0,1,2,3},{4,5,6,7}}, to_apply=add", False),
    ("x = f32[2] all-reduce(y), replica_groups={{0,4},{1,5},{2,6},{3,7}}, to_apply=add", True),
    ("x = f32[2] all-reduce(y), replica_groups=[2,4]<=[8], to_apply=add", False),
    ("x = f32[2] all-reduce(y), replica_groups=[4,2]<=[2,4]T(1,0), to_apply=add", True),
    ("x = f32[2] all-reduce(y), replica_groups=mesh['axis_0'=2,'axis_1'=4] {'axis_1'}, u",
     False),
    ("x = f32[2] all-reduce(y), replica_groups=mesh['axis_0'=2,'axis_1'=4] {'axis_0'}, u",
     True),
    ("x = f32[8] all-gather(y), replica_groups=mesh['axis_0'=4,'axis_1'=2], "
     "device_ids=([2,4]T(1,0)) {'axis_0'}, dimensions={0}", False),
    ("x = f32[2] collective-permute(y), source_target_pairs={{0,1},{1,2},{2,3},{3,0}}",
     False),
    ("x = f32[2] collective-permute(y), source_target_pairs={{0,4},{4,0}}", True),
    ("x = f32[2] all-reduce(y), replica_groups={}, to_apply=add", True),
    ("x = f32[2] add(y, z)", False),
])
def test_the_hlo_check_reads_every_form_of_replica_groups(line, crosses):
  mesh = jax.sharding.Mesh(np.array(jax.devices() * 8, object).reshape(2, 4),
                           sharding.AXES)
  assert bool(sharding.cross_member_collectives(line, mesh)) == crosses


EIGHT_DEVICE_CHECKS = textwrap.dedent("""
    import sys
    sys.path.insert(0, "tests")
    import jax, jax.numpy as jnp
    from test_train import load_config
    from gax import config_base, sharding, train
    mesh = sharding.create_mesh(0, 2, 4)
    x = jax.device_put(jnp.ones((2, 8)), sharding.batch_sharding(mesh, 1, 0))
    summed = jax.jit(lambda x: jnp.sum(x, axis=0), out_shardings=sharding.replicated(mesh))
    rowwise = jax.jit(lambda x: jnp.sum(x, axis=1), out_shardings=sharding.member_sharding(mesh))
    print(len(sharding.cross_member_collectives(summed.lower(x).compile().as_text(), mesh)),
          len(sharding.cross_member_collectives(rowwise.lower(x).compile().as_text(), mesh)))
    config = load_config("gan_mnist")
    config.mesh.members = 4
    for members in (1, 6):
      try:
        train.create_mesh(config, members)
      except config_base.ConfigError as e:
        print(e)
""")


def test_the_hlo_check_finds_a_sum_over_members_and_uneven_populations_are_refused():
  environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  result = subprocess.run([sys.executable, "-c", EIGHT_DEVICE_CHECKS], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  counts, single, uneven = result.stdout.strip().splitlines()
  crossing, within_rows = map(int, counts.split())
  assert crossing >= 1 and within_rows == 0
  assert single.startswith("config.mesh.members = 4: a single run is one model")
  assert uneven == ("a population of 6 members does not divide over config.mesh.members "
                    "= 4 mesh rows; allowed: 1, 2")


def test_mesh_shapes_that_do_not_fit_say_what_would():
  with pytest.raises(config_base.ConfigError, match=r"choose members × data = 8: \(1, 8\), "
                     r"\(2, 4\), \(4, 2\), \(8, 1\)"):
    sharding.mesh_shape(8, 3, 2)
  with pytest.raises(config_base.ConfigError, match="does not divide the 8 devices"):
    sharding.mesh_shape(8, 3, 0)
  assert sharding.mesh_shape(8, 2, 0) == (2, 4)
