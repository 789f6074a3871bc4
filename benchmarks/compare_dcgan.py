"""gax's DCGAN-64 step beside pytorch/examples' step, timed in one run; JSON lines.

  python benchmarks/compare_dcgan.py --examples_dir=PATH/TO/pytorch/examples \\
      --peer_python=PATH/TO/python-with-torch --batch_sizes=64,512 \\
      --dtypes=float32,bfloat16 --rounds=3 --steps=10

For each batch size it alternates gax (benchmarks/train_step.py, configs/dcgan64.py on
random 3x64x64 images kept on the device) and the peer (benchmarks/pytorch_peer.py) for
`rounds` rounds, so both see the same machine load, and prints one JSON line per gax
dtype with the median images/s of each and their ratio. The peer runs in float32; on a
GPU with --tf32 it may use TF32 as PyTorch's defaults for convolutions allow, and gax
then runs with JAX's default matmul precision, which also uses TF32 there.
Also prints dcgan_mnist's step (no peer of its own) at each batch size and dtype.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent


def run_json(command: list[str]) -> dict:
  result = subprocess.run(command, capture_output=True, text=True, cwd=BENCHMARKS.parent)
  if result.returncode != 0:
    raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def gax_command(config: str, batch_size: int, dtype: str, steps: int) -> list[str]:
  return [sys.executable, str(BENCHMARKS / "train_step.py"), f"--config={config}",
          f"--batch_size={batch_size}", f"--dtype={dtype}", f"--steps={steps}"]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples_dir", required=True)
  parser.add_argument("--peer_python", default=sys.executable)
  parser.add_argument("--batch_sizes", default="64,512")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--tf32", action="store_true", help="let the peer use TF32 (GPU)")
  args = parser.parse_args()
  dtypes = args.dtypes.split(",")
  for batch_size in map(int, args.batch_sizes.split(",")):
    gax_runs = {dtype: [] for dtype in dtypes}
    peer_runs = []
    for _ in range(args.rounds):
      for dtype in dtypes:
        gax_runs[dtype].append(run_json(gax_command(
            "configs/dcgan64.py:dataset=fake,channels=3", batch_size, dtype, args.steps)))
      peer_runs.append(run_json(
          [args.peer_python, str(BENCHMARKS / "pytorch_peer.py"),
           f"--examples_dir={args.examples_dir}", f"--batch_size={batch_size}",
           f"--steps={args.steps}", *(["--tf32"] if args.tf32 else [])]))
    peer = statistics.median(r["images_per_s"] for r in peer_runs)
    for dtype, runs in gax_runs.items():
      ours = statistics.median(r["images_per_s"] for r in runs)
      print(json.dumps({
          "benchmark": "dcgan64 vs pytorch/examples dcgan", "batch_size": batch_size,
          "gax_dtype": dtype, "gax_images_per_s": ours, "peer_images_per_s": peer,
          "ratio": round(ours / peer, 3), "rounds": args.rounds,
          "gax_runs": [r["images_per_s"] for r in runs],
          "peer_runs": [r["images_per_s"] for r in peer_runs],
          "gax": runs[-1], "peer": peer_runs[-1]}), flush=True)
    for dtype in dtypes:
      print(json.dumps({"benchmark": "dcgan_mnist", **run_json(gax_command(
          "configs/dcgan_mnist.py", batch_size, dtype, args.steps))}), flush=True)


if __name__ == "__main__":
  main()
