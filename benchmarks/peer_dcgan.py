"""Times pytorch/examples' DCGAN training step as its dcgan/main.py writes it; one JSON line.

  python benchmarks/peer_dcgan.py --examples_dir=PATH/TO/pytorch/examples \\
      --batch_size=64 --steps=20 [--compile] [--device=cuda] [--fp32_precision=tf32]

gax ships none of the peer's code: this reads the Generator, Discriminator and
weights_init definitions out of the checkout's dcgan/main.py (without running the rest
of that script) and repeats the body of its training loop on a batch already on the
device: D on real, D on G(z).detach(), D step, then G through D on the same fake, G step.
Needs torch; gax does not.
"""

import ast
from pathlib import Path

import peer_timing
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
  args = peer_timing.parse_args(__doc__.splitlines()[0], "--examples_dir", batch_size=64,
                                image_size=64)
  device = peer_timing.configure_backend(args)
  nz, ngf, ndf, nc = 100, 64, 64, 3
  peer = load_peer_models(args.examples_dir, nz, ngf, ndf, nc)
  net_g = peer["Generator"](1)
  net_g.apply(peer["weights_init"])
  net_d = peer["Discriminator"](1)
  net_d.apply(peer["weights_init"])
  net_g, net_d = peer_timing.place(net_g, args, device), peer_timing.place(net_d, args, device)
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

  peer_timing.time_and_report(step, args, device, "pytorch/examples dcgan")


if __name__ == "__main__":
  main()
