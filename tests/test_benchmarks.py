"""benchmarks/train_step.py runs any config and reports what the README quotes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_step_benchmark_prints_one_json_line_with_its_figures():
  result = subprocess.run(
      [sys.executable, "benchmarks/train_step.py", "--config=configs/dcgan_mnist.py",
       "--batch_size=8", "--steps=2", "--warmup=1", "--dtype=bfloat16"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["model"] == "dcgan28" and report["dtype"] == "bfloat16"
  assert report["batch_size"] == 8 and report["steps"] == 2
  assert report["images_per_s"] > 0 and report["step_ms"] > 0
  # The tutorial DCGAN's step: about 0.6 GFLOP per image, whatever the backend.
  assert 0.4 < report["gflop_per_image"] < 0.8
  assert report["tflops"] > 0 and report["device"].startswith("cpu")


def test_ab_times_variants_side_by_side_and_reports_their_overhead():
  result = subprocess.run(
      [sys.executable, "benchmarks/train_step.py",
       "--config=configs/dcgan_mnist.py:recipe=radford", "--batch_size=8", "--steps=1",
       "--rounds=2", "--warmup=0",
       "--ab=sn:model.d_spectral_norm=True;ema:ema.decay=0.9,ema.start_step=1"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(report["step_ms"]) == {"base", "sn", "ema"} and set(report["overhead"]) == {
      "sn", "ema"}
  assert all(len(rounds) == 2 for rounds in report["step_ms_rounds"].values())
  assert report["variants"]["ema"] == {"ema.decay": 0.9, "ema.start_step": 1}


def _json_lines(argv: list[str]) -> list[dict]:
  result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  return [json.loads(line) for line in result.stdout.strip().splitlines()]


def test_population_benchmark_alternates_rounds_of_every_form():
  report, = _json_lines(["benchmarks/population.py", "--config=configs/gan_mnist.py",
                         "--config.model.g_hidden=(32,)", "--config.model.d_hidden=(16,)",
                         "--members=2", "--batch_size=8", "--steps=1", "--warmup=0",
                         "--rounds=2",
                         "--forms=unroll,unroll_stacked,sequential_donated"])
  assert report["members"] == 2 and report["rounds"] == 2
  for form in ("unroll", "unroll_stacked", "sequential_donated"):
    assert len(report[f"{form}_speedup_by_round"]) == 2 and report[f"{form}_speedup"] > 0


def test_input_pipeline_benchmark_reports_throughput_and_memory(tmp_path):
  throughput, = _json_lines(["benchmarks/input_pipeline.py", f"--scratch={tmp_path}",
                             "--mode=throughput", "--num_images=150", "--batches=2",
                             "--workers=0,1"])
  assert throughput["stream_1_workers_images_per_s"] > 0
  assert throughput["dcgan64_step_images_per_s"] > 0
  memory, = _json_lines(["benchmarks/input_pipeline.py", f"--scratch={tmp_path}",
                         "--mode=rss", "--num_images=100", "--rss_settings=8x2x3",
                         "--rss_step_s=0"])
  assert memory["batches"] == 4 and 80 < memory["examples"] < 100  # the hash split
  assert memory["peak_pss_mb"] >= memory["pss_before_mb"] > 0
