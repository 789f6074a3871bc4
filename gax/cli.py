"""What gax's commands share: flag parsing and bad input reported in one line."""

import errno
import logging as std_logging
import sys
from collections.abc import Callable

from absl import flags, logging

from gax import config_base, files, outputs
from gax import data as data_lib

_STORAGE_ERRORS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT,
                   errno.ENOTDIR)


class QuietLibraries(std_logging.Filter):
  """Keeps orbax's per-save chatter out of the console; its warnings still show."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or "/orbax/" not in record.pathname


def fail(message: str, exit_code: int = 2) -> None:
  print(f"gax: error: {message}", file=sys.stderr)
  sys.exit(exit_code)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file or argument reported in one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = str(e).strip().splitlines()[-1].strip()
  except (AttributeError, KeyError) as e:  # ml_collections' answer to an unknown field
    message = (f"unknown config field {str(e).strip(chr(34))} in a --config.* override; "
               "gax/config_base.py lists every field")
  fail(message)


def run_command(command: Callable[[], None]) -> None:
  """Runs a command's body; bad input (config or data) ends in one line and exit 2."""
  logging.get_absl_handler().addFilter(QuietLibraries())
  try:
    command()
  except (config_base.ConfigError, data_lib.DataError, files.WorkdirBusyError) as e:
    fail(str(e))
  except outputs.NonFiniteError as e:
    fail(str(e), exit_code=3)
  except OSError as e:
    if e.errno not in _STORAGE_ERRORS:
      raise
    # Every write gax makes is atomic, so a failed one leaves the old file in place.
    fail(f"{e.strerror or e} ({e.filename or 'workdir'}); nothing already written was "
         "changed")
