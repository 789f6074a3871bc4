"""Does bfloat16 compute hurt sample quality? float32 and bfloat16 runs, same length.

  python experiments/compare_dtypes.py --config=configs/dcgan_mnist.py \\
      --workdir=workdirs/dtypes --steps=300 --seeds=0,1

Trains one run per (dtype, seed) through `gax.main`, evaluates each final checkpoint with
`gax.evaluate`, and prints one JSON line per run plus a summary line: the mean FID per
dtype, and the seed-to-seed spread that says what "within noise" means.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def run(command: list[str]) -> str:
  result = subprocess.run(command, capture_output=True, text=True)
  if result.returncode != 0:
    raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return result.stdout


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config", default="configs/dcgan_mnist.py:recipe=radford")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--seeds", default="0,1")
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--num_samples", type=int, default=10000)
  args = parser.parse_args()
  fids = {}
  for dtype in ("float32", "bfloat16"):
    for seed in map(int, args.seeds.split(",")):
      workdir = Path(args.workdir) / f"{dtype}_seed{seed}"
      run([sys.executable, "-m", "gax.main", f"--config={args.config}",
           f"--workdir={workdir}", f"--config.dtype={dtype}", f"--config.seed={seed}",
           f"--config.num_train_steps={args.steps}",
           f"--config.batch_size={args.batch_size}"])
      result = json.loads(run([sys.executable, "-m", "gax.evaluate",
                               f"--workdir={workdir}",
                               f"--num_samples={args.num_samples}"]).splitlines()[-1])
      fids.setdefault(dtype, []).append(result["fid"])
      print(json.dumps({"dtype": dtype, "seed": seed, "steps": args.steps,
                        **{k: result[k] for k in ("fid", "kid", "precision", "recall",
                                                  "inception_score") if k in result}}),
            flush=True)
  print(json.dumps({
      "summary": "fid by dtype", "steps": args.steps,
      **{f"{dtype}_fid_mean": round(statistics.mean(v), 2) for dtype, v in fids.items()},
      **{f"{dtype}_fid_seed_spread": round(max(v) - min(v), 2) for dtype, v in fids.items()},
      "bfloat16_minus_float32": round(statistics.mean(fids["bfloat16"])
                                      - statistics.mean(fids["float32"]), 2)}))


if __name__ == "__main__":
  main()
