"""Which stabilisers make the quick start better? A seeded study in the manner of Lucic
et al. (2018), on mnist5k with the quick start's networks and optimizer.

  python experiments/study_stabilizers.py --workdir=workdirs/study_stabilizers

1. Screen, at the CPU time of `--screen_steps` quick-start steps: adversarial loss
   (non-saturating, least squares, hinge; and WGAN-GP: the Wasserstein critic with its
   gradient penalty, five critic steps) x regularisation of D (none, spectral norm, R1;
   WGAN-GP has its own penalty, so only none and spectral norm beside it).
2. Final, at the quick start's CPU time (`--final_steps` of its steps): the quick start
   as it is, the screen's best cell, and that cell with DiffAugment and with adaptive
   augmentation (ADA).
3. Optimizer, at the same CPU time: the final's best cell (by its average of G) without
   the tutorial's dropout in D, and with larger learning rates (`--optimizer_cells`).
4. G step, at the same CPU time (`--g_step_reuse`): the optimizer phase's best cell with
   its G step on the D step's fake batch, through that batch's forward pass
   (`g_step_fake=reuse`, as pytorch/examples' DCGAN): a cheaper step, so more of them.
5. Batch, at the same CPU time (`--batch_sizes`): the G step phase's cell with smaller
   batches, so more (and noisier) updates of both networks in the same time. The average
   of G keeps its half-life in images: decay 0.995^(batch / 64).
In every phase but the optimizer's, each cell's step is timed first, side by side with
the quick start's (the batch phase's with the G step phase's cell, at its steps); its G
steps are the quick start's scaled by the quick start's step time over the cell's, so
every cell trains for the same CPU time. The optimizer phase keeps the best cell's steps:
a learning rate costs nothing, and dropping D's dropout makes a step no dearer.
Every cell is `--seeds` seeds trained as one population program (`gax.sweep
--population`) and evaluated by `gax.evaluate` (10,000 samples, digit-classifier
features). Every run keeps an average of G (EMA, decay 0.995: StyleGAN2's 10k-image
half-life at batch 64, with its ramp-up; the batch phase keeps the half-life), which never
changes training, so the final phase measures the live G and its average from the same
runs; the screen, which picks the loss and the regulariser, reports the live G.

Writes WORKDIR/results.csv (one row per run and generator), WORKDIR/table.md (mean ± std
per cell) and WORKDIR/boxplot.png. A rerun skips what is done (trained trials, evaluated
checkpoints); `--report_only` only rewrites the table and plot.
"""

import csv
import json
import math
import pprint
import subprocess
import sys
import time
from pathlib import Path

from absl import app, flags, logging

from gax import cli, config_base
from gax.storage import files
from gax.trained import run as trained_run

# The benchmarks' interleaved step timing (benchmarks/step_timing.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import step_timing  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Where the study keeps its runs and results.")
flags.DEFINE_integer("seeds", 3, "Seeds per cell (one population each).")
flags.DEFINE_integer("screen_steps", 300, "The screen's budget, in quick-start steps.")
flags.DEFINE_integer("final_steps", 2000, "G steps of the quick start (the final budget).")
flags.DEFINE_integer("eval_samples", 10000, "Generated images per evaluation.")
flags.DEFINE_integer("timed_steps", 5, "Steps per cell and round timed to set budgets.")
flags.DEFINE_integer("timing_rounds", 5, "Interleaved rounds of the cells' timing.")
flags.DEFINE_bool("report_only", False, "Rewrite the table and plot from results.csv.")
flags.DEFINE_string("best", "", "Skip the screen's choice: the final's best cell by name.")
flags.DEFINE_list("final_augmentations", ["DiffAugment", "ADA"],
                  "Augmentations tried on the best cell in the final phase.")
flags.DEFINE_bool("g_step_reuse", True, "Train the optimizer phase's best cell with its G "
                  "step on the D step's fake batch (the G step phase).")
flags.DEFINE_list("batch_sizes", ["32", "16"], "Batch sizes tried on the G step phase's cell "
                  "(the batch phase; empty: none).")
flags.register_validator("batch_sizes", lambda sizes: all(s.isdigit() and int(s) > 0
                                                           for s in sizes),
                         "--batch_sizes must be positive integers, e.g. 32,16")
flags.mark_flags_as_required(["workdir"])

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/dcgan_mnist.py:recipe=radford"  # the quick start before this study
EMA = {"ema.decay": 0.995}
EMA_BATCH = 64  # the batch at which EMA's decay holds; other batches keep its half-life
LOSSES = {
    "non-saturating": {"loss.name": "non_saturating"},
    "least squares": {"loss.name": "least_squares"},
    "hinge": {"loss.name": "hinge"},
    "WGAN-GP": {"loss.name": "wasserstein", "loss.penalty": "wgan_gp",
                "loss.penalty_weight": 10.0, "d_steps": 5},
}
REGULARISERS = {
    "none": {},
    "SN": {"model.d_spectral_norm": True},
    "R1": {"loss.penalty": "r1", "loss.penalty_weight": 1.0},
}
AUGMENTATIONS = {
    "DiffAugment": {"augment.name": "diffaugment"},
    "ADA": {"augment.name": "ada"},
}
OPTIMIZERS = {
    "no D dropout": {"model.d_dropout": 0.0},
    "no D dropout, lr 5e-4": {"model.d_dropout": 0.0, "optimizer.learning_rate": 5e-4},
    "no D dropout, lr 7e-4": {"model.d_dropout": 0.0, "optimizer.learning_rate": 7e-4},
    "no D dropout, G 5e-4 / D 1e-3": {"model.d_dropout": 0.0,
                                     "optimizer.g_learning_rate": 5e-4,
                                     "optimizer.d_learning_rate": 1e-3},
}
METRICS = ("fid", "kid", "precision", "recall")
flags.DEFINE_list("optimizer_cells", list(OPTIMIZERS),
                  "Optimizer settings tried on the final's best cell.")


def screen_cells() -> dict[str, dict]:
  cells = {}
  for loss, loss_overrides in LOSSES.items():
    for regulariser, reg_overrides in REGULARISERS.items():
      if loss == "WGAN-GP" and regulariser == "R1":
        continue  # a second gradient penalty on top of the critic's own
      cells[f"{loss} / {regulariser}"] = {**loss_overrides, **reg_overrides}
  return cells


def final_cells(best: str, screen: dict[str, dict]) -> dict[str, dict]:
  quick_start = "non-saturating / none"
  cells = {f"quick start ({quick_start})": screen[quick_start]}
  if best != quick_start:
    cells[best] = screen[best]
  for name in FLAGS.final_augmentations:
    config_base.check_choice("--final_augmentations", name, AUGMENTATIONS)
    cells[f"{best} + {name}"] = {**screen[best], **AUGMENTATIONS[name]}
  return cells


def optimizer_cells(best: str, final: dict[str, dict]) -> dict[str, dict]:
  cells = {}
  for name in FLAGS.optimizer_cells:
    config_base.check_choice("--optimizer_cells", name, OPTIMIZERS)
    cells[f"{best}, {name}"] = {**final[best], **OPTIMIZERS[name]}
  return cells


def batch_cells(cell: str, overrides: dict) -> dict[str, dict]:
  """`cell` at each of `--batch_sizes`, its average of G at the same half-life in images."""
  cells = {}
  for batch in map(int, FLAGS.batch_sizes):
    decay = round(EMA["ema.decay"] ** (batch / EMA_BATCH), 6)
    cells[f"{cell}, batch {batch}"] = {**overrides, "batch_size": batch, "ema.decay": decay}
  return cells


def write_sweep_file(path: Path, trials: list[dict]) -> None:
  """A sweep file (gax.sweep's `sweep(add)`) of the given trials: the record of a phase."""
  files.write_atomically(path, (
      '"""Written by experiments/study_stabilizers.py: the trials of one phase."""\n\n'
      f"TRIALS = {pprint.pformat(trials, sort_dicts=False)}\n\n\n"
      "def sweep(add):\n  for overrides in TRIALS:\n    add(**overrides)\n"))


def cell_config(overrides: dict):
  path, _, arg = CONFIG.partition(":")
  config = config_base.load_config_file(ROOT / path, arg)
  config_base.apply_overrides(config, {**overrides, **EMA})
  return config


def budgeted_steps(cells: dict[str, dict], budget: int, record: Path) -> dict[str, int]:
  """G steps per cell: `budget` steps of the first cell (the one the others would
  replace), scaled by its step time over the cell's (the median of interleaved rounds,
  benchmarks/step_timing.py), so a cheaper step gets more of them. Kept in `record`, so a rerun
  trains the same trials."""
  if record.exists():
    return json.loads(record.read_text())["steps"]
  timed = step_timing.median_step_ms(
      {cell: cell_config(overrides) for cell, overrides in cells.items()},
      FLAGS.timed_steps, FLAGS.timing_rounds)
  baseline = next(iter(timed.values()))
  steps = {cell: round(budget * baseline / ms) for cell, ms in timed.items()}
  files.write_json(record, {"step_ms": timed, "steps": steps})
  logging.info("Step times (ms): %s; G steps: %s", timed, steps)
  return steps


def phase_trials(cells: dict[str, dict], steps: dict[str, int]
                 ) -> tuple[list[dict], list[dict]]:
  """The sweep's trials of a phase (every cell's seeds) and the (cell, seed) of each."""
  trials, runs = [], []
  for cell, overrides in cells.items():
    average = {name: overrides.get(name, value) for name, value in EMA.items()}
    for seed in range(FLAGS.seeds):
      trials.append({**overrides, **average, "num_train_steps": steps[cell], "log_every": 50,
                     "sample_every": steps[cell], "checkpoint_every": steps[cell],
                     "eval.num_samples": FLAGS.eval_samples, "eval.parzen": False,
                     "seed": seed})
      runs.append({"cell": cell, "seed": seed})
  return trials, runs


def run_phase(workdir: Path, cells: dict[str, dict], steps: dict[str, int]) -> list[dict]:
  """Trains every cell's seeds (the sweep makes one population of the trials that differ
  only in population fields); returns one entry per run."""
  trials, runs = phase_trials(cells, steps)
  write_sweep_file(workdir / "sweep.py", trials)
  start = time.perf_counter()
  subprocess.run([sys.executable, "-m", "gax.sweep", f"--config={CONFIG}",
                  f"--sweep={workdir / 'sweep.py'}", f"--workdir={workdir}", "--population"],
                 cwd=ROOT, check=True)
  logging.info("%s trained in %.0f s", workdir.name, time.perf_counter() - start)
  with (workdir / "summary.csv").open() as f:  # the trials' workdirs, in the sweep's order
    names = [row["trial"] for row in csv.DictReader(f)]
  return [{**run, "workdir": workdir / name} for run, name in zip(runs, names, strict=True)]


def phase_rows(workdir: Path, phase: str, cells: dict[str, dict], steps: dict[str, int]
               ) -> list[dict]:
  """Trains a phase (`run_phase`) and evaluates its runs: their rows of results.csv."""
  return [row for run in run_phase(workdir, cells, steps) for row in evaluate(run, phase)]


def training_seconds(workdir: Path) -> float:
  """The run's training time from its log: steps between logged records over steps/s
  (compilation and evaluations left out)."""
  records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if '"steps_per_s"' in line]
  previous, seconds = 0, 0.0
  for record in records:
    seconds += (record["step"] - previous) / record["steps_per_s"]
    previous = record["step"]
  return seconds


def evaluate(run: dict, phase: str) -> list[dict]:
  """Rows of results.csv for one run: its live G and its average, evaluated once."""
  cached = run["workdir"] / "eval" / "study.json"
  if cached.exists():
    result = json.loads(cached.read_text())
  else:
    result = trained_run.evaluate_workdir(run["workdir"])
    files.write_json(cached, result)
  base = {"phase": phase, "cell": run["cell"], "seed": run["seed"], "step": result["step"],
          "train_s": round(training_seconds(run["workdir"]), 1),
          "workdir": run["workdir"].name}
  rows = [{**base, "generator": "live", **{m: result["without_ema"][m] for m in METRICS}}]
  if phase != "screen":
    rows.append({**base, "generator": "EMA", **{m: result[m] for m in METRICS}})
  return rows


def mean_std(values: list[float]) -> tuple[float, float]:
  mean = sum(values) / len(values)
  std = math.sqrt(sum((v - mean) ** 2 for v in values) / max(len(values) - 1, 1))
  return mean, std


def cell_summary(rows: list[dict]) -> list[dict]:
  """Mean and sample std per (phase, cell, generator), in the order of the rows."""
  groups = {}
  for row in rows:
    groups.setdefault((row["phase"], row["cell"], row["generator"]), []).append(row)
  summary = []
  for (phase, cell, generator), members in groups.items():
    entry = {"phase": phase, "cell": cell, "generator": generator, "runs": len(members),
             "steps": members[0]["step"],
             "train_s": mean_std([float(m["train_s"]) for m in members])[0]}
    for metric in METRICS:
      entry[metric] = mean_std([float(m[metric]) for m in members])
    summary.append(entry)
  return summary


def best_cell(rows: list[dict], phase: str, generator: str) -> str:
  """The cell of `phase` with the lowest mean FID of its `generator` (live or EMA)."""
  cells = [s for s in cell_summary(rows) if s["phase"] == phase and s["generator"] == generator]
  return min(cells, key=lambda s: s["fid"][0])["cell"]


def write_table(path: Path, rows: list[dict], floor: float | None) -> None:
  lines = ["| phase | cell | G | steps | train s | FID | KID | precision | recall |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
  for s in cell_summary(rows):
    fid, kid, precision, recall = (s[m] for m in METRICS)
    lines.append(f"| {s['phase']} | {s['cell']} | {s['generator']} | {s['steps']} | "
                 f"{s['train_s']:.0f} | {fid[0]:.2f} ± {fid[1]:.2f} | "
                 f"{kid[0]:.2f} ± {kid[1]:.2f} | {precision[0]:.3f} ± "
                 f"{precision[1]:.3f} | {recall[0]:.3f} ± {recall[1]:.3f} |")
  note = (f"\nReal floor (training images against held-out ones): FID {floor:.2f}.\n"
          if floor else "")
  files.write_atomically(path, "\n".join(lines) + "\n" + note)


def write_boxplot(path: Path, rows: list[dict]) -> None:
  """FID per cell and generator, one panel per phase, seeds as points (Lucic et al.)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  phases = list(dict.fromkeys(r["phase"] for r in rows))
  columns = min(len(phases), 2)
  grid_rows = math.ceil(len(phases) / columns)
  figure, axes = plt.subplots(grid_rows, columns, figsize=(7 * columns, 6 * grid_rows),
                              squeeze=False)
  for axis in axes.flat[len(phases):]:
    axis.set_axis_off()
  for axis, phase in zip(axes.flat, phases):
    cells = list(dict.fromkeys(r["cell"] for r in rows if r["phase"] == phase))
    for offset, (generator, colour) in enumerate((("live", "tab:blue"), ("EMA", "tab:orange"))):
      values = [[float(r["fid"]) for r in rows if r["phase"] == phase and r["cell"] == c
                 and r["generator"] == generator] for c in cells]
      positions = [i * 3 + offset for i in range(len(cells))]
      axis.boxplot(values, positions=positions, widths=0.8, patch_artist=True,
                   boxprops=dict(facecolor=colour, alpha=0.4), medianprops=dict(color=colour))
      for position, points in zip(positions, values):
        axis.scatter([position] * len(points), points, color=colour, s=12, zorder=3,
                     label=generator if position == positions[0] else None)
    axis.set_xticks([i * 3 + 0.5 for i in range(len(cells))])
    axis.set_xticklabels(cells, rotation=35, ha="right", fontsize=8)
    axis.set_yscale("log")
    axis.set_ylabel("FID (digit-classifier features, 10,000 samples)")
    steps = sorted({int(r["step"]) for r in rows if r["phase"] == phase})
    axis.set_title(f"{phase}: steps {steps}")
    axis.legend()
  figure.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  figure.savefig(path, dpi=110)


def read_rows(path: Path) -> list[dict]:
  with path.open() as f:
    return [row for row in csv.DictReader(f)
            if row["phase"] != "screen" or row["generator"] == "live"]


def write_rows(path: Path, rows: list[dict]) -> None:
  partial = path.with_suffix(".partial")
  with partial.open("w", newline="") as f:
    writer = csv.DictWriter(f, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  partial.replace(path)


def floor_fid(rows: list[dict], workdir: Path) -> float | None:
  for row in rows:
    result = workdir / row["phase"] / row["workdir"] / "eval" / "study.json"
    if result.exists():
      return json.loads(result.read_text()).get("fid_real_floor")
  return None


def main(argv):
  del argv
  cli.run_command(lambda: run_study(Path(FLAGS.workdir)))


def run_phases(workdir: Path, results: Path) -> None:
  """Trains and evaluates the phases in turn, rewriting `results` after each. Each phase
  starts from the one before, so a phase left out (its flag empty or off) ends the study
  there."""
  rows = []

  def add_phase(name: str, phase: str, cells: dict[str, dict], steps: dict[str, int]):
    rows.extend(phase_rows(workdir / name, phase, cells, steps))
    write_rows(results, rows)

  screen = screen_cells()
  add_phase("screen", "screen", screen, budgeted_steps(
      screen, FLAGS.screen_steps, workdir / "screen_budget.json"))
  best = FLAGS.best or best_cell(rows, "screen", "live")
  logging.info("The screen's best cell (mean FID of the live G): %s", best)
  cells = final_cells(best, screen)
  final_steps = budgeted_steps(cells, FLAGS.final_steps, workdir / "final_budget.json")
  add_phase("final", "final", cells, final_steps)
  best = best_cell(rows, "final", "EMA")
  logging.info("The final's best cell (mean FID of the average of G): %s", best)
  if not FLAGS.optimizer_cells:
    return
  tuned = optimizer_cells(best, cells)
  add_phase("optimizer", "optimizer", tuned, {cell: final_steps[best] for cell in tuned})
  if not FLAGS.g_step_reuse:
    return
  best = best_cell(rows, "optimizer", "EMA")
  quick_start = next(iter(cells))
  cell, overrides = f"{best}, G on D's fakes", {**tuned[best], "g_step_fake": "reuse"}
  steps = budgeted_steps({quick_start: cells[quick_start], cell: overrides},
                         FLAGS.final_steps, workdir / "g_step_budget.json")
  add_phase("g_step", "G step", {cell: overrides}, steps)
  if not FLAGS.batch_sizes:
    return
  # Timed against the G step phase's cell, which is what they would replace.
  smaller = batch_cells(cell, overrides)
  add_phase("batch", "batch", smaller, budgeted_steps(
      {cell: overrides, **smaller}, steps[cell], workdir / "batch_budget.json"))


def run_study(workdir: Path) -> None:
  results = workdir / "results.csv"
  if not FLAGS.report_only:
    run_phases(workdir, results)
  rows = read_rows(results)
  write_table(workdir / "table.md", rows, floor_fid(rows, workdir))
  write_boxplot(workdir / "boxplot.png", rows)
  print((workdir / "table.md").read_text())


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
