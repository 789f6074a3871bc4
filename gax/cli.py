"""What gax's commands share: flag parsing and bad input reported in one line."""

import errno
import logging as std_logging
import os
import sys
import traceback
from collections.abc import Callable

from absl import flags, logging

from gax import config_base, errors

_STORAGE_ERRORS = (errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EDQUOT,
                   errno.ENOTDIR)


class QuietLibraries(std_logging.Filter):
  """Keeps orbax's per-save chatter out of the console; its warnings still show, one line
  each. Its errors do not: a failed save or restore also comes back to gax as an
  exception, which gax reports in its own line."""

  def filter(self, record):
    if record.name == "asyncio" and "/orbax/" in record.getMessage():
      return False  # an orbax task's failure, which also reaches gax as an exception
    if "/orbax/" not in record.pathname:
      return True
    record.exc_info, record.exc_text = None, None  # its threads' tracebacks
    return record.levelno == std_logging.WARNING


def _is_closed_loop(kind, value) -> bool:
  return kind is RuntimeError and str(value) == "Event loop is closed"


def _quiet_closed_loops() -> None:
  """After a failed save, tensorstore's callbacks still try to reach orbax's finished
  event loop, and each prints a RuntimeError's traceback (through sys.unraisablehook or
  sys.excepthook); gax's own line says what failed."""
  excepthook, unraisablehook = sys.excepthook, sys.unraisablehook

  def quiet_excepthook(kind, value, trace):
    if not _is_closed_loop(kind, value):
      excepthook(kind, value, trace)

  def quiet_unraisablehook(unraisable):
    if not _is_closed_loop(unraisable.exc_type, unraisable.exc_value):
      unraisablehook(unraisable)

  sys.excepthook, sys.unraisablehook = quiet_excepthook, quiet_unraisablehook


def fail(message: str, exit_code: int = 2) -> None:
  """Says what went wrong in one line and exits now. os._exit, not sys.exit: a failed
  save can leave orbax threads behind that would keep the process from exiting; every
  file gax writes is complete or absent, so nothing is lost by not waiting for them."""
  print(f"gax: error: {message}", file=sys.stderr)
  sys.stdout.flush()
  sys.stderr.flush()
  std_logging.shutdown()
  os._exit(exit_code)


def _config_argument(argv: list[str]) -> str | None:
  """The value of --config in a command line (--config=X or --config X)."""
  for index, item in enumerate(argv):
    if item.startswith("--config="):
      return item.split("=", 1)[1]
    if item == "--config" and index + 1 < len(argv):
      return argv[index + 1]
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a bad config file or argument reported in one line."""
  config_arg = _config_argument(argv)
  if config_arg is not None:
    path, _, arg = config_arg.partition(":")
    try:  # config_flags loads the file again; this only says what is wrong with it
      config_base.load_config_file(path, arg or None)
    except errors.ConfigError as e:
      fail(str(e))
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    message = str(e).strip().splitlines()[-1].strip()
  except (AttributeError, KeyError) as e:  # ml_collections' answer to an unknown field
    message = (f"unknown config field {str(e).strip(chr(34))} in a --config.* override; "
               "gax/config_base.py lists every field")
  fail(message)


def run_command(command: Callable[[], None]) -> None:
  """Runs a command's body; bad input (config or data) ends in one line and exit 2, a
  storage failure (full disk, no permission, a file where a directory should be) too.
  Anything else is a bug in gax: its traceback, then exit 1. Either way the process
  exits (see `fail`)."""
  logging.get_absl_handler().addFilter(QuietLibraries())
  _quiet_closed_loops()
  try:
    command()
  except (errors.ConfigError, errors.DataError, errors.WorkdirBusyError) as e:
    fail(str(e))
  except errors.NonFiniteError as e:
    fail(str(e), exit_code=3)
  except errors.TrialsFailed as e:
    fail(str(e), exit_code=1)
  except errors.Stopped as e:
    fail(str(e), exit_code=e.exit_code)
  except OSError as e:
    if e.errno not in _STORAGE_ERRORS and not isinstance(e, errors.SaveError):
      _crash()
    # Every write gax makes is atomic, so a failed one leaves the old file in place.
    fail(f"{e.strerror or e} ({e.filename or 'workdir'}); nothing already written was "
         "changed")
  except Exception:  # noqa: BLE001 (reported, then the process ends)
    _crash()


def _crash() -> None:
  traceback.print_exc()
  fail("the traceback above is a bug in gax; please report it", exit_code=1)
