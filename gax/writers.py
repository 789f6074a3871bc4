"""Where metrics and images go: metrics.jsonl and TensorBoard event files."""

import json
from pathlib import Path

import numpy as np
from tensorboardX import SummaryWriter

from gax import files


def _truncate_after(path: Path, step: int) -> None:
  """Drops records past `step`: a resumed run rewrites what the lost steps logged."""
  if not path.exists():
    return
  kept = [line for line in path.read_text().splitlines()
          if line.strip() and json.loads(line)["step"] <= step]
  files.write_atomically(path, "".join(line + "\n" for line in kept))


class MetricWriter:
  """Appends one JSON object per logged step to metrics.jsonl and mirrors to TensorBoard."""

  def __init__(self, workdir: Path, resume_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = workdir / "metrics.jsonl"
    if not enabled:
      return
    _truncate_after(self.path, resume_step)
    self._file = self.path.open("a")
    self._tensorboard = SummaryWriter(str(workdir), purge_step=resume_step + 1)

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    record = {"step": step, **{k: float(v) for k, v in scalars.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, float(value), step)

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    if self.enabled:
      self._tensorboard.add_image(name, image, step, dataformats="HWC")

  def close(self) -> None:
    if self.enabled:
      self._file.close()
      self._tensorboard.close()
