"""What the PyTorch peers share: backend settings, a timed loop, and the JSON line."""

import argparse
import json
import time
from pathlib import Path

import torch

# float32 precision -> (allow TF32 in matmuls, allow TF32 in cuDNN convolutions)
FP32_PRECISIONS = {"default": (False, True), "tf32": (True, True), "highest": (False, False)}


def parse_args(description: str, checkout_flag: str, batch_size: int,
               image_size: int) -> argparse.Namespace:
  """The peers' flags: where their checkout is, the batch, the timing and the backend."""
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument(checkout_flag, type=Path, required=True)
  parser.add_argument("--batch_size", type=int, default=batch_size)
  parser.add_argument("--image_size", type=int, default=image_size)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
  parser.add_argument("--compile", action="store_true",
                      help="torch.compile each network (wrapping the whole step fails: it "
                           "back-propagates twice through one generator output)")
  parser.add_argument("--fp32_precision", choices=sorted(FP32_PRECISIONS), default="default",
                      help="default: PyTorch's own (TF32 in cuDNN convolutions, not in matmuls)")
  parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
  return parser.parse_args()


def configure_backend(args: argparse.Namespace) -> torch.device:
  """Threads, TF32 and cuDNN autotuning (on in both peers' training scripts)."""
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (
      FP32_PRECISIONS[args.fp32_precision])
  torch.backends.cudnn.benchmark = True
  return torch.device(args.device)


def place(network: torch.nn.Module, args: argparse.Namespace,
          device: torch.device) -> torch.nn.Module:
  """The network on the device, compiled with torch.compile when asked."""
  network = network.to(device)
  return torch.compile(network) if args.compile else network


def time_and_report(run, args: argparse.Namespace, device: torch.device, peer: str) -> None:
  """Runs the step `run` warmup + steps times; prints one JSON line."""
  synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
  start = time.perf_counter()
  for _ in range(args.warmup):
    run()
  synchronize()
  warmup_s = time.perf_counter() - start
  start = time.perf_counter()
  for _ in range(args.steps):
    run()
  synchronize()
  step_s = (time.perf_counter() - start) / args.steps
  print(json.dumps({
      "peer": peer + (" + torch.compile" if args.compile else ""),
      "images_per_s": round(args.batch_size / step_s, 2),
      "step_ms": round(step_s * 1e3, 3),
      "warmup_s": round(warmup_s, 2),
      "device": f"{device.type}:" + (torch.cuda.get_device_name() if device.type == "cuda"
                                     else "cpu"),
      "dtype": "float32",
      "fp32_precision": args.fp32_precision,
      "batch_size": args.batch_size,
      "steps": args.steps,
      "threads": torch.get_num_threads(),
      "torch": torch.__version__,
  }), flush=True)
