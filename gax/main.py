"""Command line: python -m gax.main --config=configs/NAME.py[:arg] --workdir=DIR."""

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from gax import cli, train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

  def command():
    logging.info("JAX process %d of %d, local devices: %s", jax.process_index(),
                 jax.process_count(), jax.local_devices())
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)

  cli.run_command(command)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
