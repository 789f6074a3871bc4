"""Every command refuses bad input in one line, with its exit code and no traceback,
before its work starts, and leaves an existing workdir as it was (the cases:
tests/bad_input_cases.py's `command_cases`; `python tests/bad_input_cases.py` prints the
table of all of them)."""

import subprocess
import sys

import pytest
from bad_input_cases import command_cases
from helpers import ROOT

COMMANDS = ("gax.main", "gax.evaluate", "gax.sample", "gax.infer", "gax.fid", "gax.sweep")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny trained run of the quick start's networks, and a snapshot of its files."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  result = subprocess.run(
      [sys.executable, "-m", "gax.main", "--config=configs/dcgan_mnist.py:recipe=radford",
       f"--workdir={workdir}", "--config.batch_size=8", "--config.num_train_steps=2",
       "--config.log_every=1", "--config.checkpoint_every=2", "--config.num_samples=4"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


def _snapshot(workdir):
  return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()
          and p.name != "lock"}


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_to_each_command_is_one_line_and_changes_nothing(command, trained,
                                                                   tmp_path):
  before = _snapshot(trained)
  cases = [c for c in command_cases(tmp_path, trained) if c[1][2] == command]
  assert len(cases) >= 5, command
  for what, argv, message, code in cases:
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
    assert result.returncode == code, (what, result.stderr[-2000:])
    assert len(errors) == 1 and message in errors[0], (what, errors)
    assert "Traceback" not in result.stderr, (what, result.stderr[-2000:])
    assert not list(tmp_path.rglob("*.partial*")), what
  assert _snapshot(trained) == before
