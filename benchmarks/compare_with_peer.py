"""gax's training step beside the PyTorch implementation users would otherwise run; JSON lines.

  python benchmarks/compare_with_peer.py --model=dcgan64 --peer_dir=PATH/TO/pytorch/examples \\
      --peer_python=PATH/TO/python-with-torch --batch_sizes=64,512 \\
      --dtypes=float32,bfloat16 --rounds=3 --steps=10 [--peer_compile]
  python benchmarks/compare_with_peer.py --model=cyclegan \\
      --peer_dir=PATH/TO/pytorch-CycleGAN-and-pix2pix --batch_sizes=1 ...

Models and peers:
  dcgan64: configs/dcgan64.py on random 3x64x64 images against pytorch/examples' dcgan
    (benchmarks/peer_dcgan.py);
  cyclegan: configs/cyclegan_horse2zebra.py on random 286x286 pairs (cropped to 256 in the
    step) against the official CycleGAN (benchmarks/peer_cyclegan.py).
For each batch size it alternates gax (benchmarks/train_step.py, data on the device) and
the peer for `rounds` rounds, so both see the same machine load, and prints one JSON line
per gax dtype with the median images/s of each and their ratios. The peer runs in
float32, and with --peer_compile also wrapped in torch.compile. On a GPU both keep their
framework's default float32 precision, which lets convolutions use TF32 (PyTorch's
cudnn.allow_tf32, JAX's default precision); --peer_fp32_precision=highest and
JAX_DEFAULT_MATMUL_PRECISION=highest turn it off.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
MODELS = {
    "dcgan64": dict(
        gax=["--config=configs/dcgan64.py:dataset=fake,channels=3"],
        peer=["peer_dcgan.py", "--examples_dir"]),
    "cyclegan": dict(
        gax=["--config=configs/cyclegan_horse2zebra.py:dataset=fake",
             "--config.dataset_b=fake", "--config.data.num_fake_examples=64"],
        peer=["peer_cyclegan.py", "--cyclegan_dir"]),
}


def run_json(command: list[str]) -> dict:
  result = subprocess.run(command, capture_output=True, text=True, cwd=BENCHMARKS.parent)
  if result.returncode != 0:
    raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def median_images_per_s(runs: list[dict]) -> float:
  return statistics.median(r["images_per_s"] for r in runs)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", choices=sorted(MODELS), default="dcgan64")
  parser.add_argument("--peer_dir", required=True,
                      help="checkout of the peer: pytorch/examples or pytorch-CycleGAN-and-pix2pix")
  parser.add_argument("--peer_python", default=sys.executable)
  parser.add_argument("--batch_sizes", default="64,512")
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--steps_per_dispatch", type=int, default=1, help="gax steps per call")
  parser.add_argument("--peer_fp32_precision", default="default",
                      help="default (PyTorch's: TF32 in convolutions), tf32 or highest")
  parser.add_argument("--peer_compile", action="store_true",
                      help="also time the peer's step wrapped in torch.compile")
  parser.add_argument("--gax_flag", action="append", default=[],
                      help="extra flag for benchmarks/train_step.py, e.g. "
                           "--gax_flag=--config.model.conv_transpose=subpixel")
  args = parser.parse_args()
  model = MODELS[args.model]
  peer_script, peer_dir_flag = model["peer"]
  peer_variants = {"as written": []}
  if args.peer_compile:
    peer_variants["torch.compile"] = ["--compile"]
  for batch_size in map(int, args.batch_sizes.split(",")):
    gax_runs = {dtype: [] for dtype in args.dtypes.split(",")}
    peer_runs = {variant: [] for variant in peer_variants}
    for _ in range(args.rounds):
      for dtype, runs in gax_runs.items():
        runs.append(run_json([
            sys.executable, str(BENCHMARKS / "train_step.py"), *model["gax"],
            f"--batch_size={batch_size}", f"--dtype={dtype}", f"--steps={args.steps}",
            f"--steps_per_dispatch={args.steps_per_dispatch}", *args.gax_flag]))
      for variant, flags in peer_variants.items():
        peer_runs[variant].append(run_json([
            args.peer_python, str(BENCHMARKS / peer_script), f"{peer_dir_flag}={args.peer_dir}",
            f"--batch_size={batch_size}", f"--steps={args.steps}", *flags,
            f"--fp32_precision={args.peer_fp32_precision}"]))
    peers = {variant: median_images_per_s(runs) for variant, runs in peer_runs.items()}
    for dtype, runs in gax_runs.items():
      ours = median_images_per_s(runs)
      print(json.dumps({
          "benchmark": f"{args.model} vs {peer_runs['as written'][-1]['peer']}",
          "batch_size": batch_size, "gax_dtype": dtype, "gax_images_per_s": ours,
          "peer_images_per_s": peers,
          "ratio": {variant: round(ours / theirs, 3) for variant, theirs in peers.items()},
          "rounds": args.rounds, "gax_runs": [r["images_per_s"] for r in runs],
          "peer_runs": {variant: [r["images_per_s"] for r in variant_runs]
                        for variant, variant_runs in peer_runs.items()},
          "gax": runs[-1], "peer": {variant: variant_runs[-1]
                                    for variant, variant_runs in peer_runs.items()}}),
            flush=True)


if __name__ == "__main__":
  main()
