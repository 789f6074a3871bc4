"""Every exception gax raises on purpose, in one place: the commands' error boundary
(gax/cli.py) turns each kind into its one line and exit code, and no module has to import
another only to catch what it raises."""

import errno
import os
from pathlib import Path


class ConfigError(ValueError):
  """A config field, flag or file with an impossible value; the message names it and
  says what is allowed."""


class DataError(ValueError):
  """A dataset that cannot be loaded as asked; the message says what to do."""


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir."""


class NonFiniteError(RuntimeError):
  """A loss or gradient went NaN or infinite; the message names the step and quantity."""


class StateMismatchError(ConfigError):
  """A checkpoint that holds a train state of another structure: not damaged, and left
  where it is."""


class TrialsFailed(RuntimeError):
  """Some trials of a sweep exited non-zero; the others' results are in the summary."""


class Stopped(RuntimeError):
  """A command stopped by a signal before its work was done; the exit code says which
  (128 + the signal's number, as a shell reports it)."""

  def __init__(self, signal_name: str, message: str):
    import signal  # noqa: PLC0415 (only this error needs it)

    super().__init__(message)
    self.exit_code = 128 + int(signal.Signals[signal_name])


# How tensorstore names the storage failures it reports inside a ValueError.
_STATUS_ERRNO = {"RESOURCE_EXHAUSTED": errno.ENOSPC, "PERMISSION_DENIED": errno.EACCES,
                 "NOT_FOUND": errno.ENOENT}


class SaveError(OSError):
  """A checkpoint could not be written; the checkpoints already there are intact."""

  def __init__(self, error: Exception, directory: Path):
    cause = error  # the first OSError along the chain of causes, if any
    while cause is not None and not (isinstance(cause, OSError) and cause.errno):
      cause = cause.__cause__ or cause.__context__
    if cause is not None:
      code, reason = cause.errno, cause.strerror or str(cause)
    else:
      text = str(error)
      code = next((c for status, c in _STATUS_ERRNO.items() if status in text), errno.EIO)
      reason = os.strerror(code) if code != errno.EIO else text.splitlines()[0][:200]
    super().__init__(code, f"saving a checkpoint failed: {reason}", str(directory))
