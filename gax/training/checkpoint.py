"""Train-state checkpoints through an orbax CheckpointManager, verified on restore.

Each checkpoint holds the state and a SHA-256 digest of its arrays. Orbax writes a
checkpoint into a temporary directory and renames it when complete, so a killed save
never looks finished; the digest catches damage after that (a truncated or altered
file). A damaged checkpoint is moved aside to `<directory>_damaged/` (never deleted)
and the next newest one is used.
"""

import hashlib
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from gax import errors


def _key_name(entry) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(entry, attribute):
      return str(getattr(entry, attribute))
  return str(entry)


def _shapes(tree) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Leaf shapes by path, with dict keys, attribute names and indices alike as strings
  (orbax stores a state's named tuples as dicts)."""
  return {tuple(_key_name(e) for e in path):
          tuple(leaf.shape if hasattr(leaf, "shape") else np.shape(leaf))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def describe_mismatch(saved, wanted) -> str | None:
  """None when two trees have the same leaves and shapes; else the first differences."""
  saved, wanted = _shapes(saved), _shapes(wanted)
  differences = [f"{'/'.join(p)}: {saved[p]} saved, {wanted[p]} wanted"
                 for p in sorted(set(saved) & set(wanted)) if saved[p] != wanted[p]]
  differences += [f"{'/'.join(p)}: saved only" for p in sorted(set(saved) - set(wanted))]
  differences += [f"{'/'.join(p)}: wanted only" for p in sorted(set(wanted) - set(saved))]
  if not differences:
    return None
  more = f" and {len(differences) - 3} more" if len(differences) > 3 else ""
  return "; ".join(differences[:3]) + more


def state_digest(state: dict[str, Any]) -> str:
  """SHA-256 over every array of the state, in tree order (shapes and dtypes included)."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(state))[0]:
    array = np.asarray(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def saved_steps(directory: Path) -> list[int]:
  """The steps of the finished checkpoints in `directory`, in order, read from the folder
  names alone (orbax gives a save its step's name once it is complete); [] where there is
  no such folder."""
  try:
    return sorted(int(p.name) for p in Path(directory).iterdir() if p.name.isdigit())
  except OSError:  # absent, or not a directory
    return []


class Checkpointer:
  """Saves the train state every so often and restores the newest intact one."""

  def __init__(self, directory: Path, max_to_keep: int | None):
    self.directory = Path(directory).absolute()
    self.manager = ocp.CheckpointManager(
        self.directory, item_names=("state", "integrity"),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def all_steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def save(self, step: int, state: dict[str, Any]) -> None:
    """Starts an asynchronous save; orbax copies the arrays off the device first. A save
    that fails (here, or in the background and reported by the next call) raises
    SaveError, with the unfinished checkpoint removed."""
    try:
      self.manager.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          integrity=ocp.args.JsonSave({"sha256": state_digest(state)})), force=True)
    except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise many types)
      raise self._save_error(e) from None

  def restore(self, step: int, like: dict[str, Any]) -> dict[str, Any]:
    """Restores step `step` into the shapes, dtypes and shardings of `like`.

    Raises ValueError when the checkpoint cannot be read or its digest does not match.
    """
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract), integrity=ocp.args.JsonRestore()))
    except Exception as e:  # orbax and tensorstore raise many types for unreadable data
      raise ValueError(f"unreadable ({type(e).__name__}: {str(e)[:200]})") from None
    if state_digest(restored["state"]) != restored["integrity"]["sha256"]:
      raise ValueError("its arrays do not match the SHA-256 digest saved with them")
    return restored["state"]

  def mismatch(self, step: int, like: dict[str, Any]) -> str | None:
    """How the state saved at `step` differs in structure from `like` (None: it does not,
    or its metadata cannot be read, which makes it a damaged checkpoint)."""
    try:
      metadata = ocp.PyTreeCheckpointHandler().metadata(self.directory / str(step) / "state")
    except Exception:  # unreadable metadata: the restore's own error decides
      return None
    return describe_mismatch(getattr(metadata, "tree", metadata), like)

  def restore_latest(self, like: dict[str, Any]) -> dict[str, Any] | None:
    """The newest checkpoint that restores intact; damaged ones are moved aside. One that
    holds a state of another structure raises StateMismatchError and stays."""
    for step in reversed(self.all_steps()):
      # Read from the metadata first: a restore into the wrong shapes fails inside orbax's
      # asyncio tasks, each of which logs its own traceback.
      if mismatch := self.mismatch(step, like):
        raise errors.StateMismatchError(
            f"the checkpoint of step {step} in {self.directory} holds a train state of "
            f"another structure ({mismatch}); it is not damaged and was left as it is: "
            "give the config it was trained with, or another --workdir")
      try:
        return self.restore(step, like)
      except ValueError as e:
        aside = self.directory.with_name(self.directory.name + "_damaged") / str(step)
        while aside.exists():
          aside = aside.with_name(aside.name + "+")
        aside.parent.mkdir(exist_ok=True)
        shutil.move(str(self.directory / str(step)), str(aside))
        self.manager.reload()
        logging.warning("Skipped the checkpoint of step %d: %s. Moved it to %s and "
                        "went back to an older one.", step, e, aside)
    return None

  def wait(self) -> None:
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001
      raise self._save_error(e) from None

  def close(self) -> None:
    self.wait()
    try:  # closing finishes a save still in flight, which may fail as well
      self.manager.close()
    except Exception as e:  # noqa: BLE001
      raise self._save_error(e) from None

  def _save_error(self, error: Exception) -> errors.SaveError:
    try:
      unfinished = list(self.directory.glob("*.orbax-checkpoint-tmp*"))
    except OSError:  # the directory itself is gone or is no directory
      unfinished = []
    for path in unfinished:
      shutil.rmtree(path, ignore_errors=True)
    return errors.SaveError(error, self.directory)
