"""Times pytorch/examples' DCGAN training step as its dcgan/main.py writes it; one JSON line.

  python benchmarks/pytorch_peer.py --examples_dir=PATH/TO/pytorch/examples \\
      --batch_size=64 --steps=20 [--compile] [--device=cuda] [--tf32]

gax ships none of the peer's code: this reads the Generator, Discriminator and
weights_init definitions out of the checkout's dcgan/main.py (without running the rest
of that script) and repeats the body of its training loop on a batch already on the
device: D on real, D on G(z).detach(), D step, then G through D on the same fake, G step.
Needs torch; gax does not.
"""

import argparse
import ast
import json
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.optim as optim

MODEL_DEFINITIONS = ("weights_init", "Generator", "Discriminator")


def load_peer_models(examples_dir: Path, nz: int, ngf: int, ndf: int, nc: int) -> dict:
  """The peer's model classes, executed from its source with the globals they read."""
  source_file = examples_dir / "dcgan" / "main.py"
  if not source_file.is_file():
    raise SystemExit(f"--examples_dir={examples_dir}: no dcgan/main.py there; clone "
                     "https://github.com/pytorch/examples and point at it")
  tree = ast.parse(source_file.read_text())
  kept = [node for node in tree.body
          if isinstance(node, (ast.FunctionDef, ast.ClassDef))
          and node.name in MODEL_DEFINITIONS]
  namespace = {"torch": torch, "nn": nn, "nz": nz, "ngf": ngf, "ndf": ndf, "nc": nc}
  exec(compile(ast.Module(body=kept, type_ignores=[]), str(source_file), "exec"), namespace)
  return namespace


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--examples_dir", type=Path, required=True)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--image_size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=20)
  parser.add_argument("--warmup", type=int, default=3)
  parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
  parser.add_argument("--compile", action="store_true", help="wrap the step in torch.compile")
  parser.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convs")
  parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
  args = parser.parse_args()
  if args.threads:
    torch.set_num_threads(args.threads)
  torch.backends.cuda.matmul.allow_tf32 = args.tf32
  torch.backends.cudnn.allow_tf32 = args.tf32
  torch.backends.cudnn.benchmark = True
  nz, ngf, ndf, nc = 100, 64, 64, 3
  peer = load_peer_models(args.examples_dir, nz, ngf, ndf, nc)
  device = torch.device(args.device)
  net_g = peer["Generator"](1).to(device)
  net_g.apply(peer["weights_init"])
  net_d = peer["Discriminator"](1).to(device)
  net_d.apply(peer["weights_init"])
  criterion = nn.BCELoss()
  optimizer_d = optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
  optimizer_g = optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
  real = torch.rand(args.batch_size, nc, args.image_size, args.image_size,
                    device=device) * 2 - 1
  label = torch.full((args.batch_size,), 1.0, device=device)

  def step():
    net_d.zero_grad()
    label.fill_(1.0)
    err_d_real = criterion(net_d(real), label)
    err_d_real.backward()
    noise = torch.randn(args.batch_size, nz, 1, 1, device=device)
    fake = net_g(noise)
    label.fill_(0.0)
    err_d_fake = criterion(net_d(fake.detach()), label)
    err_d_fake.backward()
    optimizer_d.step()
    net_g.zero_grad()
    label.fill_(1.0)
    err_g = criterion(net_d(fake), label)
    err_g.backward()
    optimizer_g.step()
    return err_g

  run = torch.compile(step) if args.compile else step
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
      "peer": "pytorch/examples dcgan" + (" + torch.compile" if args.compile else ""),
      "images_per_s": round(args.batch_size / step_s, 2),
      "step_ms": round(step_s * 1e3, 3),
      "warmup_s": round(warmup_s, 2),
      "device": f"{device.type}:" + (torch.cuda.get_device_name() if device.type == "cuda"
                                     else "cpu"),
      "dtype": "float32" + ("+tf32" if args.tf32 else ""),
      "batch_size": args.batch_size,
      "steps": args.steps,
      "threads": torch.get_num_threads(),
      "torch": torch.__version__,
  }))


if __name__ == "__main__":
  main()
