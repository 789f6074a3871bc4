"""Populations on a `member` × `data` mesh: each row of devices trains its own members,
which end where their separate runs end, and no collective crosses rows."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
from helpers import ROOT

from gax import errors
from gax.training import sharding

EIGHT_DEVICES = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, "tests")
    import jax
    import numpy as np
    from helpers import (ONE_STEP_BOUND, population_config, population_members,
                         restore_params, update_differences)
    from gax.training import outputs, population, sharding, train
    assert jax.device_count() == 8
    root = Path(sys.argv[1])

    def population_run(size, shape, form, devices=0):
      config = population_config()
      config.mesh.members, config.mesh.data = shape
      config.population_step, config.num_devices = form, devices
      overrides = [o for _, o in population_members(root, range(size))]
      return config, population.create_run(config, population.member_configs(config,
                                                                              overrides))

    # Each step of each population, from the same state, against each member's own run's
    # step. A member of a (2, 4) mesh splits its batch over 4 devices: its own run is
    # one on 4 devices.
    # 8 members on 8 rows; 2 vmapped per row on 4; 2 on (2, 4). (All on one device:
    # tests/test_population.py.)
    for size, shape, form, devices in [(8, (8, 1), "auto", 0), (8, (4, 1), "vmap", 4),
                                       (2, (2, 4), "unroll", 0)]:
      config, run = population_run(size, shape, form, devices)
      alone_config = population_config()
      alone_config.num_devices = shape[1]
      alone = train.create_run(alone_config)
      state, worst = train.initial_state(run), 0.0
      if shape[0] > 1:
        assert state["params"]["generator"]["Dense_0"]["kernel"].sharding.spec[0] == "member"
      for step in range(2):
        carried, _ = train.step_fn(run, 1)(run.layout.carry(state),
                                           train.step_data(run, step, 1))
        after = jax.device_get(run.layout.uncarry(carried))
        for index in range(size):
          own = jax.device_put(population.member(jax.device_get(state), index),
                               alone.layout.replicated)
          own_after, _ = train.step_fn(alone, 1)(own, train.step_data(alone, step, 1))
          worst = max(worst, *update_differences(own, own_after,
                                                 population.member(after, index)).values())
        state = jax.device_put(after, run.layout.state_sharding())
      assert worst < ONE_STEP_BOUND, worst
      hlo = train.step_fn(run, 1).lower(run.layout.carry(train.initial_state(run)),
                                        train.step_data(run, 0, 1)).compile().as_text()
      crossing = sharding.cross_member_collectives(hlo, run.mesh)
      assert not crossing, crossing
      print(f"{size} members on {shape}: each step as its members' own, {worst:.2e}; "
            "no cross-member collective")

    # Saved on 8 devices, restored on 4 and on 1: every member's state as it was saved.
    halfway = population_members(root / "halfway", range(8))
    config, _ = population_run(8, (8, 1), "auto")
    config.num_train_steps = 2
    population.train_population(config, halfway)
    for devices in (4, 1):
      config, run = population_run(8, (devices, 1), "auto", devices)
      saved = population.PopulationOutputs([outputs.RunOutputs(w, config, run.variant, False)
                                            for w, _ in halfway])
      restored = jax.device_get(train.restore_state(run, saved))
      saved.close()
      assert int(restored["step"][0]) == 2
      for index, (workdir, _) in enumerate(halfway):
        for a, b in zip(jax.tree.leaves(population.member(restored["params"], index)),
                        jax.tree.leaves(restore_params(workdir, 2)), strict=True):
          np.testing.assert_array_equal(a, b)
      print(f"restored on {devices} devices: as saved")
""")


def test_populations_on_a_member_mesh_match_their_separate_runs(tmp_path):
  environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  result = subprocess.run([sys.executable, "-c", EIGHT_DEVICES, str(tmp_path)], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count("no cross-member collective") == 3, result.stdout
  assert result.stdout.count("as saved") == 2


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
    from helpers import load_config
    from gax import errors
    from gax.training import sharding, train
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
      except errors.ConfigError as e:
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
  with pytest.raises(errors.ConfigError, match=r"choose members × data = 8: \(1, 8\), "
                     r"\(2, 4\), \(4, 2\), \(8, 1\)"):
    sharding.mesh_shape(8, 3, 2)
  with pytest.raises(errors.ConfigError, match="does not divide the 8 devices"):
    sharding.mesh_shape(8, 3, 0)
  assert sharding.mesh_shape(8, 2, 0) == (2, 4)
