"""Writing files so that a crash leaves either the old file or the new one, never half."""

import contextlib
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from gax import errors


@contextlib.contextmanager
def partial_file(path: Path):
  """A temporary sibling of `path` to write, renamed over `path` when the block ends
  well; removed when it fails, and the failure (full disk, no permission, a directory in
  the way) names `path` itself."""
  path = Path(path)
  partial = path.with_name(f"{path.name}.partial{os.getpid()}")
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    yield partial
    partial.replace(path)
  except OSError as e:
    with contextlib.suppress(OSError):
      partial.unlink()
    raise OSError(e.errno, e.strerror or str(e), str(path)) from None
  except BaseException:
    with contextlib.suppress(OSError):
      partial.unlink()
    raise


def write_atomically(path: Path, payload: bytes | str) -> None:
  """Writes to a temporary sibling, then renames it over `path`."""
  if isinstance(payload, str):
    payload = payload.encode()
  with partial_file(path) as partial:
    partial.write_bytes(payload)


def check_directory(path: Path, what: str) -> None:
  """Raises ConfigError when `path` (or a folder above it) exists as something other
  than a directory, or cannot be written: before any work that would write there."""
  path = Path(path)
  for node in (path, *path.parents):
    if node.exists():
      if not node.is_dir():
        raise errors.ConfigError(f"{what}={path}: {node} is a file, not a directory")
      if not os.access(node, os.W_OK | os.X_OK):
        raise errors.ConfigError(f"{what}={path}: {node} is not writable")
      return


def check_writable_file(path: Path, what: str) -> None:
  """Raises ConfigError when file `path` cannot be written: a directory in its place, or
  a folder above it that is a file or not writable."""
  path = Path(path)
  if path.is_dir():
    raise errors.ConfigError(f"{what} {path}: that is a directory; give a file name")
  check_directory(path.parent, what)


def cache_dir() -> Path:
  """Where gax keeps what it can rebuild (trained feature networks, parsed datasets,
  reference features): $GAX_CACHE_DIR, or ~/.cache/gax."""
  return Path(os.environ.get("GAX_CACHE_DIR") or Path.home() / ".cache" / "gax")


def write_json(path: Path, payload: Any) -> None:
  write_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **arrays)
  write_atomically(path, buffer.getvalue())


@contextlib.contextmanager
def exclusive(path: Path):
  """Holds an exclusive flock on `path` (waiting for it), so that processes sharing a
  cache build each entry once; where the lock file cannot be made, it goes on unlocked."""
  path = Path(path)
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a")
  except OSError:
    yield
    return
  with handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    yield


def read_json_or_set_aside(path: Path, may_move: bool = True) -> Any | None:
  """A JSON file gax wrote, or None when it is absent; one that cannot be parsed (torn,
  or foreign) is moved to `<name>.unreadable` with a warning, never deleted."""
  if not path.exists():
    return None
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    aside = path.with_name(path.name + ".unreadable")
    if may_move:
      path.replace(aside)
    logging.warning("%s cannot be read (%s: %s); %s", path, type(e).__name__, e,
                    f"moved it to {aside.name}" if may_move else "ignored it")
    return None


class WorkdirLock:
  """Holds an exclusive lock on `workdir/lock` while a run uses the workdir.

  The lock is an flock on an open file, so the operating system releases it when its
  process dies, however it dies: a stale lock file from a killed run is simply taken.
  """

  def __init__(self, workdir: Path):
    self.path = Path(workdir) / "lock"
    self._file = None

  def __enter__(self) -> "WorkdirLock":
    import socket
    import time

    self.path.parent.mkdir(parents=True, exist_ok=True)
    handle = self.path.open("a+")
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      handle.close()
      raise errors.WorkdirBusyError(
          f"workdir {self.path.parent} is in use by a live gax run ({holder}); wait for "
          "it to finish or choose another --workdir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    handle.flush()
    self._file = handle
    return self

  def __exit__(self, *exc_info) -> None:
    self._file.close()  # closing releases the flock
