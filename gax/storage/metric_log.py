"""Where metrics and images go: metrics.jsonl and TensorBoard event files."""

import json
from pathlib import Path

import numpy as np
from absl import logging
from tensorboardX import SummaryWriter

from gax.storage import files


def read_records(path: Path) -> list[dict]:
  """The JSON records of a JSONL file, skipping (with a warning) lines that do not parse:
  a partial last line left by a kill mid-write, or foreign text."""
  records, bad = [], []
  for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line)
      if not isinstance(record, dict) or not isinstance(record.get("step"), int):
        raise ValueError("not a record with a step")
      records.append(record)
    except ValueError:
      bad.append(number)
  if bad:
    logging.warning("%s: skipped %d unreadable line(s) (line %s)", path, len(bad),
                    ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else ""))
  return records


def _truncate_after(path: Path, step: int) -> None:
  """Drops records past `step` (and unreadable lines): a resumed run rewrites what the
  lost steps logged."""
  if not path.exists():
    return
  kept = [record for record in read_records(path) if record["step"] <= step]
  files.write_atomically(path, "".join(json.dumps(record) + "\n" for record in kept))


class MetricWriter:
  """Appends one JSON object per logged step to metrics.jsonl and mirrors to TensorBoard."""

  def __init__(self, workdir: Path, resume_step: int, enabled: bool = True):
    self.enabled = enabled
    self.path = workdir / "metrics.jsonl"
    if not enabled:
      return
    # A fresh start writes step 0's records (its sample grid's health signals) again.
    _truncate_after(self.path, resume_step if resume_step else -1)
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
