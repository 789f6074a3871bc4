"""Every command refuses bad input in one line, with its exit code and no traceback,
before its work starts, and leaves an existing workdir as it was.

The cases are tests/bad_input_cases.py's `command_cases`. Each is checked here in-process
(the gax error the command's function raises, which the command line turns into its one
line), and a few per command through the command line itself; `python
tests/bad_input_cases.py` runs all of them through the command line and prints the table.
"""

import subprocess
import sys

import pytest
from bad_input_cases import command_cases
from helpers import ROOT

from gax import errors
from gax.evaluation import feature_sets
from gax.launch import sweeps
from gax.trained import inference, sampling
from gax.trained import run as trained_run
from gax.training import population

COMMANDS = ("gax.main", "gax.evaluate", "gax.sample", "gax.infer", "gax.fid", "gax.sweep")
# Cases run through the command line in CI, by name; the rest run in-process below.
THROUGH_THE_COMMAND_LINE = (
    "gax.main --workdir is a file", "gax.main with data.workers=1000",
    "gax.main --population with a same workdir",
    "gax.evaluate --num_samples=1000000000", "gax.evaluate on a config.json edited to cgan",
    "gax.sample --num_images=1000000000", "gax.sample --reconstruct with a damaged encoder "
    "file", "gax.infer --batch_size=100000000", "gax.infer --steps=0",
    "gax.fid on statistics with not psd", "gax.fid --save_stats onto a directory named .npz",
    "gax.sweep with a sweep file that raises inside sweep(add)",
    "gax.sweep with a trial that fails")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A tiny trained run of the quick start's networks."""
  workdir = tmp_path_factory.mktemp("trained") / "run"
  result = subprocess.run(
      [sys.executable, "-m", "gax.main", "--config=configs/dcgan_mnist.py:recipe=radford",
       f"--workdir={workdir}", "--config.batch_size=8", "--config.num_train_steps=2",
       "--config.log_every=1", "--config.checkpoint_every=2", "--config.num_samples=4"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir


@pytest.fixture(scope="module")
def cases(trained, tmp_path_factory):
  return {what: (argv, message, code) for what, argv, message, code in command_cases(
      tmp_path_factory.mktemp("cases"), trained)}


def _snapshot(workdir):
  return {p: p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()
          and p.name != "lock"}


def test_every_command_has_its_cases(cases):
  for command in COMMANDS:
    assert sum(argv[2] == command for argv, _, _ in cases.values()) >= 5, command
  assert set(THROUGH_THE_COMMAND_LINE) <= set(cases)


def test_bad_input_through_the_command_line_is_one_line(cases, trained):
  before = _snapshot(trained)
  for what in THROUGH_THE_COMMAND_LINE:
    argv, message, code = cases[what]
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
    assert result.returncode == code, (what, result.stderr[-2000:])
    assert len(lines) == 1 and message in lines[0], (what, lines)
    assert "Traceback" not in result.stderr, (what, result.stderr[-2000:])
  assert _snapshot(trained) == before


def _refused(call, message: str):
  with pytest.raises((errors.ConfigError, errors.DataError)) as raised:
    call()
  assert message in str(raised.value) and "\n" not in str(raised.value)


def _flag(argv: list[str], name: str) -> str:
  return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


@pytest.mark.parametrize("kind", ["gax.fid", "gax.sweep",
                                  "gax.main --population", "gax.evaluate", "gax.sample",
                                  "gax.infer"])
def test_each_case_is_refused_by_its_command_function(kind, cases, trained):
  """The function behind each command raises gax's error for each case: what the error
  boundary (gax/cli.py) prints as the case's one line."""
  before, checked = _snapshot(trained), 0
  for what, (argv, message, code) in cases.items():
    if not what.startswith(kind) or code != 2 or "--launcher" in " ".join(argv):
      continue
    if kind == "gax.fid" and "--save_stats" in argv:
      call = lambda argv=argv: feature_sets.save_statistics(
          argv[-2], argv[-1], "--save_features" in argv, None)
    elif kind == "gax.fid":
      call = lambda argv=argv: feature_sets.read_set(argv[3])
    elif kind == "gax.sweep":
      call = lambda argv=argv: sweeps.run_sweep(_flag(argv, "config"), _flag(argv, "sweep"),
                                                _flag(argv, "workdir"))
    elif kind == "gax.main --population":
      call = lambda argv=argv: population.read_population_file(_flag(argv, "population"))
    elif kind == "gax.evaluate":
      number = int(_flag(argv, "num_samples")) if "--num_samples=" in " ".join(argv) else 0
      step = _flag(argv, "step") if "--step=" in " ".join(argv) else None
      call = lambda argv=argv, number=number, step=step: trained_run.evaluate_workdir(
          _flag(argv, "workdir"), step, number)
    elif kind == "gax.sample":
      if "--reconstruct" in argv:
        call = lambda argv=argv: sampling.reconstruct_run(_flag(argv, "workdir"), None,
                                                          100, 8, 10, None)
      else:
        options = dict(num_images=100, labels=None, out=None)
        for name in options:
          if f"--{name}=" in " ".join(argv):
            options[name] = _flag(argv, name)
        call = lambda argv=argv, o=options: sampling.sample_run(
            _flag(argv, "workdir"), None, int(o["num_images"]), o["labels"], 8, 10, 0,
            o["out"])
    else:
      recipe = inference.InferenceRecipe(**{name: type(getattr(
          inference.InferenceRecipe, name))(_flag(argv, name)) for name in (
              "batch_size", "steps", "learning_rate") if f"--{name}=" in " ".join(argv)})
      step = _flag(argv, "step") if "--step=" in " ".join(argv) else None
      call = lambda argv=argv, recipe=recipe, step=step: inference.run_inference(
          _flag(argv, "workdir"), step, recipe)
    _refused(call, message)
    checked += 1
  assert checked >= 3, kind
  assert _snapshot(trained) == before
