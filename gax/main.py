"""Command line: python -m gax.main --config=configs/NAME.py[:arg] --workdir=DIR."""

import logging as std_logging
import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from gax import config_base, train
from gax import data as data_lib

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.")
config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])


class _QuietLibraries(std_logging.Filter):
  """Keeps orbax's per-save chatter out of the console; its warnings still show."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file or argument reported in one line."""
  try:
    return FLAGS(argv)
  except flags.Error as e:
    message = str(e).strip().splitlines()[-1].strip()
  except (AttributeError, KeyError) as e:  # ml_collections' answer to an unknown field
    message = (f"unknown config field {str(e).strip(chr(34))} in a --config.* override; "
               "gax/config_base.py lists every field")
  print(f"gax: error: {message}", file=sys.stderr)
  sys.exit(2)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  logging.get_absl_handler().addFilter(_QuietLibraries())
  logging.info("JAX process %d of %d, local devices: %s", jax.process_index(),
               jax.process_count(), jax.local_devices())
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  except (config_base.ConfigError, data_lib.DataError) as e:
    # Bad input: one clear line, no traceback.
    print(f"gax: error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
