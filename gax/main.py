"""Command line: python -m gax.main --config=configs/NAME.py[:arg] --workdir=DIR.

With --population=FILE (see gax/training/population.py) it trains the file's members as one
vmapped program instead; their relative workdirs are taken under --workdir.

Several hosts: run the same command on each with --jax_distributed (and, outside a
cluster that JAX detects, --coordinator_address, --num_processes, --process_id). The
mesh spans every process's devices; process 0 writes metrics, samples and config.json,
and every process writes its part of each checkpoint.
"""

from pathlib import Path

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from gax import cli
from gax.training import population, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.DEFINE_string("population", None,
                    "JSON file of population members: their workdirs and overrides.")
flags.DEFINE_bool("jax_distributed", False,
                  "Call jax.distributed.initialize() first: one process per host (or "
                  "per GPU), all running this same command.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (else detected "
                    "from the cluster environment, e.g. SLURM).")
flags.DEFINE_integer("num_processes", None, "Processes in the job (else detected).")
flags.DEFINE_integer("process_id", None, "This process's index (else detected).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

  def command():
    if FLAGS.jax_distributed:
      jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                 FLAGS.process_id)
    logging.info("JAX process %d of %d, local devices: %s", jax.process_index(),
                 jax.process_count(), jax.local_devices())
    if FLAGS.population:
      members = population.read_population_file(FLAGS.population)
      population.train_population(FLAGS.config, [(Path(FLAGS.workdir) / workdir, overrides)
                                                 for workdir, overrides in members])
    else:
      train.train_and_evaluate(FLAGS.config, FLAGS.workdir)

  cli.run_command(command)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
