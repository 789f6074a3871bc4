"""Command line: python -m gax.sweep --config=configs/NAME.py[:arg] --sweep=FILE --workdir=DIR.

Runs every trial of the sweep file (gax/launch/sweeps.py), skipping finished ones;
`--dry_run` prints their commands for a cluster scheduler instead. `--population` runs
the trials that differ only in seed and continuous hyperparameters as one compiled
program per group. `--launcher=slurm` submits the jobs to SLURM as one array job through
submitit (gax/launch/slurm.py; `--slurm.KEY=VALUE` are its options) and waits for them.
"""

from typing import Any

from absl import app, flags

from gax import cli, errors
from gax.launch import slurm, sweeps

FLAGS = flags.FLAGS
flags.DEFINE_string("config", None, "Config file, optionally with :arg.")
flags.DEFINE_string("sweep", None, "Python file defining sweep(add).")
flags.DEFINE_string("workdir", None, "Directory that holds one workdir per trial.")
flags.DEFINE_integer("parallel", 1, "Trials run at once (on GPUs: one GPU each).")
flags.DEFINE_bool("dry_run", False, "Print one command per job and run nothing.")
flags.DEFINE_bool("population", False, "Train trials that differ only in seed and "
                  "continuous hyperparameters as one vmapped program.")
flags.DEFINE_enum("launcher", "local", ["local", "slurm"], "Where jobs run: here, as "
                  "processes, or on SLURM through submitit (options: --slurm.KEY=VALUE).")
flags.mark_flags_as_required(["config", "sweep", "workdir"])
# The --slurm.KEY=VALUE options of this command line (see gax/launch/slurm.py).
SLURM_OPTIONS: dict[str, Any] = {}

def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.run_command(lambda: sweeps.run_sweep(FLAGS.config, FLAGS.sweep, FLAGS.workdir,
                                           FLAGS.parallel, FLAGS.dry_run, FLAGS.population,
                                           FLAGS.launcher, SLURM_OPTIONS))


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flags, with the `--slurm.KEY=VALUE` options taken out first."""
  try:
    argv, options = slurm.split_options(argv)
  except errors.ConfigError as e:
    cli.fail(str(e))
  SLURM_OPTIONS.update(options)
  return cli.parse_flags(argv)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
