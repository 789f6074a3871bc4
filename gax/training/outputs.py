"""What one run keeps in its workdir: config.json, metrics, sample grids, checkpoints and
evaluations; the training loop writes through `RunOutputs` and nothing else.

A population (gax/training/population.py) wraps one `RunOutputs` per member, so each member's
workdir is exactly what a separate run would write.
"""

import shutil
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from gax import errors
from gax.data import datasets as data_lib
from gax.evaluation import evaluator
from gax.storage import files, metric_log
from gax.storage import images as images_lib
from gax.training import checkpoint as checkpoint_lib
from gax.training import config_changes, health, update
from gax.variants import ema

# The folders a run writes in its workdir.
WORKDIR_FOLDERS = ("samples", "checkpoints", "eval", "best_checkpoint")


def check_workdir(workdir: Path) -> None:
  """Refuses a workdir (or a folder a run writes there) that exists as a file or cannot
  be written, before anything is read or written."""
  for name in ("", *WORKDIR_FOLDERS):
    files.check_directory(Path(workdir) / name, "--workdir")


class RunOutputs:
  """One run's workdir, as the training loop writes it."""

  def __init__(self, workdir: Path, config: ml_collections.ConfigDict, variant,
               is_writer: bool, label: str = "", monitor: health.Monitor | None = None):
    self.workdir, self.config, self.variant = Path(workdir), config, variant
    self.is_writer, self.label = is_writer, label
    self.monitor = monitor or health.Monitor(config.health, label)
    self.last_metrics: dict[str, float] = {}
    self._accepted_changes = None
    self._checkpointer = None
    self._writer = None
    self._evaluator = None

  @property
  def checkpointer(self) -> checkpoint_lib.Checkpointer:
    if self._checkpointer is None:  # created once the workdir is locked
      self._checkpointer = checkpoint_lib.Checkpointer(self.workdir / "checkpoints",
                                                       self.config.keep_checkpoints)
    return self._checkpointer

  def check_resumable(self) -> None:
    """Compares the config with the one the workdir's checkpoints were trained with
    (gax/training/config_changes.py), before anything is read or written: a change the run cannot
    take stops it with ConfigError."""
    if not checkpoint_lib.saved_steps(self.workdir / "checkpoints"):
      return
    saved = files.read_json_or_set_aside(self.workdir / "config.json", self.is_writer)
    if saved is not None:
      self._accepted_changes = config_changes.check_resumable(self.workdir, saved,
                                                              self.config)

  def restore(self, like: update.TrainState) -> update.TrainState | None:
    return self.checkpointer.restore_latest(like)

  def open(self, start_step: int, records: dict[str, Any]) -> None:
    """Writes config.json (with the run's `records`) and opens the metric log."""
    if self.is_writer:
      if self._accepted_changes is not None and start_step:
        for change in self._accepted_changes["optimisation"]:
          logging.warning("%sGoing on from step %d with %s (config.resume = "
                          "'allow_changes')", self.label, start_step, change)
        for change in self._accepted_changes["safe"]:
          logging.info("%sGoing on from step %d with %s", self.label, start_step, change)
        config_changes.record(self.workdir, start_step, self._accepted_changes)
      files.write_json(self.workdir / "config.json",
                       {**config_changes.as_dict(self.config), **records})
    self._writer = metric_log.MetricWriter(self.workdir, start_step, enabled=self.is_writer)
    self._evaluator = PeriodicEvaluator(self.config, self.variant, self.workdir,
                                                   self._writer, self.is_writer, start_step)

  def check_finite(self, metrics: dict[str, np.ndarray], first_step: int,
                   saved_step: int) -> None:
    """Stops (NonFiniteError) or warns, by `nan_policy`, on a non-finite guarded metric."""
    for offset in range(len(next(iter(metrics.values())))):
      for name in update.GUARDED_METRICS:
        if name in metrics and not np.isfinite(metrics[name][offset]):
          network = "discriminator" if name.startswith("d_") else "generator"
          problem = (f"step {first_step + offset}: the {network}'s {name} is "
                     f"{metrics[name][offset]}")
          if self.config.nan_policy == "stop":
            raise errors.NonFiniteError(
                f"{self.label}non-finite value at {problem}; stopped without saving, the "
                f"last good checkpoint (step {saved_step}) is untouched. Lower the "
                "learning rate, or set --config.nan_policy=skip to skip such steps")
          logging.warning("%sSkipped the update of %s (config.nan_policy = 'skip')",
                          self.label, problem)
          break

  def log(self, steps: list[int], metrics: dict[str, np.ndarray], first_step: int,
          steps_per_s: float) -> None:
    """Writes the metrics of `steps` (metrics hold steps first_step, first_step + 1, ...)
    and one console line."""
    for step in steps:
      self.last_metrics = {k: float(v[step - first_step]) for k, v in metrics.items()}
      self._writer.write_scalars(step, {**self.last_metrics, "steps_per_s": steps_per_s})
      if self.monitor.loss_metric in self.last_metrics:
        self.monitor.after_log(step, self.last_metrics[self.monitor.loss_metric])
    num_steps = self.config.num_train_steps
    logging.info("%sstep %d/%d  %s  %.2f steps/s  ETA %s", self.label, steps[-1], num_steps,
                 _console_metrics(self.last_metrics), steps_per_s,
                 _duration((num_steps - steps[-1]) / max(steps_per_s, 1e-9)))

  def write_samples(self, step: int, images: np.ndarray,
                    scores: dict[str, np.ndarray] | None = None) -> None:
    """The sample grid and, with `scores` (D's on real images), the step's health
    signals (gax/training/health.py)."""
    if not self.is_writer:
      return
    images = data_lib.to_uint8(images)
    grid = images_lib.make_grid(images, self.variant.grid_columns(len(images)))
    images_lib.save_png(self.workdir / "samples" / f"step_{step:06d}.png", grid)
    self._writer.write_image(step, "samples", grid)
    if scores is not None:
      signals = {**scores, **self.monitor.grid_signals(step, images)}
      if signals:
        self._writer.write_scalars(step, signals)

  def save_checkpoint(self, step: int, state: update.TrainState) -> None:
    self.checkpointer.save(step, state)

  def evaluate(self, step: int, state: update.TrainState) -> None:
    # Several processes: each evaluates a host copy by itself; process 0 writes.
    self._evaluator.evaluate(jax.device_get(state) if jax.process_count() > 1 else state,
                             step)

  def close(self) -> None:
    for closeable in (self._checkpointer, self._evaluator, self._writer):
      if closeable is not None:
        closeable.close()

  def finish(self) -> None:
    """The animation of the run's sample grids."""
    if self.is_writer:
      frames = sorted((self.workdir / "samples").glob("step_*.png"))
      if frames:
        images_lib.save_gif(frames, self.workdir / "samples.gif")


_CONSOLE_METRICS = {"d_loss": "d_loss", "g_loss": "g_loss", "d_real": "D(x)",
                    "d_fake": "D(G(z))"}


def _console_metrics(metrics: dict[str, float]) -> str:
  return "  ".join(f"{label} {metrics[key]:.4f}" for key, label in _CONSOLE_METRICS.items()
                   if key in metrics)


def _duration(seconds: float) -> str:
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours:d}:{minutes:02d}:{seconds:02d}"


class PeriodicEvaluator:
  """Evaluates during training: eval/* in metrics.jsonl, eval/step_N.json, and the best
  state by the variant's `best_metric` kept in `best_checkpoint/` and named in
  `best.json`."""

  def __init__(self, config: ml_collections.ConfigDict, variant, workdir: Path,
               writer: metric_log.MetricWriter, is_writer: bool, start_step: int):
    self._config, self._variant, self._workdir = config, variant, workdir
    self._writer, self._is_writer = writer, is_writer
    self._evaluate = None  # built at the first evaluation: it may train a classifier
    self._best_checkpointer = None
    best_file = workdir / "best.json"
    self.best = files.read_json_or_set_aside(best_file, is_writer)
    if self.best is not None and not {"step", "value"} <= set(self.best):
      self.best = None  # written by an older gax: the next evaluation writes it anew
    if self.best is not None and self.best["step"] > start_step and is_writer:
      # From steps this resumed run will redo: they will be evaluated again.
      best_file.unlink()
      shutil.rmtree(workdir / "best_checkpoint", ignore_errors=True)
      self.best = None

  def evaluate(self, state: dict[str, Any], step: int) -> dict[str, Any]:
    if self._evaluate is None:
      self._evaluate = self._variant.create_evaluator(self._config)
    start = time.perf_counter()
    result = {"step": step, **self._evaluate(ema.chosen(state, self._config))}
    logging.info("eval at step %d (%.1f s): %s", step, time.perf_counter() - start,
                 "  ".join(f"{k} {v:.4g}" for k, v in evaluator.scalars(result).items()))
    if not self._is_writer:
      return result
    self._writer.write_scalars(step, evaluator.scalars(result))
    files.write_json(self._workdir / "eval" / f"step_{step}.json", result)
    best_metric = self._variant.best_metric
    value = float(result[best_metric.name])
    if best_metric.improves(value, None if self.best is None else self.best["value"]):
      if self._best_checkpointer is None:
        self._best_checkpointer = checkpoint_lib.Checkpointer(
            self._workdir / "best_checkpoint", max_to_keep=1)
      self._best_checkpointer.save(step, state)
      self._best_checkpointer.wait()
      self.best = {"step": step, "metric": best_metric.name, "value": value,
                   "checkpoint": f"best_checkpoint/{step}"}
      files.write_json(self._workdir / "best.json", self.best)
    return result

  def close(self) -> None:
    if self._best_checkpointer is not None:
      self._best_checkpointer.close()
