"""Train-state checkpoints through an orbax CheckpointManager."""

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves the train state every so often and restores the newest one."""

  def __init__(self, directory: Path, max_to_keep: int):
    self.manager = ocp.CheckpointManager(
        Path(directory).absolute(),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, state: dict[str, Any]) -> None:
    """Starts an asynchronous save; orbax copies the arrays off the device first."""
    self.manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, step: int, like: dict[str, Any]) -> dict[str, Any]:
    """Restores into the shapes, dtypes and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
