"""Times the official CycleGAN's training iteration (junyanz/pytorch-CycleGAN-and-pix2pix).

  python benchmarks/peer_cyclegan.py --cyclegan_dir=PATH/TO/pytorch-CycleGAN-and-pix2pix \\
      --steps=20 [--compile] [--device=cuda] [--fp32_precision=tf32]

gax ships none of the peer's code: this imports `models/networks.py` and
`util/image_pool.py` from the checkout and repeats the body of
`CycleGANModel.optimize_parameters` with the paper's defaults of its train options
(resnet_9blocks, basic 70x70 PatchGAN, instance norm, lsgan, lambda 10, identity 0.5,
pool 50, Adam 2e-4 with beta1 0.5, batch 1, 256x256), on one random image pair already
on the device. Its data loading (CPU workers) is left out, which favours the peer.
"""

import importlib.util
import itertools
from pathlib import Path

import peer_timing
import torch


def load_module(path: Path, name: str):
  if not path.is_file():
    raise SystemExit(f"--cyclegan_dir: no {path} there; clone "
                     "https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix and point at it")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def set_requires_grad(nets, requires_grad: bool) -> None:
  for net in nets:
    for param in net.parameters():
      param.requires_grad = requires_grad


def main():
  args = peer_timing.parse_args(__doc__.splitlines()[0], "--cyclegan_dir", batch_size=1,
                                image_size=256)
  device = peer_timing.configure_backend(args)
  networks = load_module(args.cyclegan_dir / "models" / "networks.py", "cyclegan_networks")
  image_pool = load_module(args.cyclegan_dir / "util" / "image_pool.py", "cyclegan_image_pool")
  # As the official train.py runs on one GPU: init_net wraps each net in DataParallel.
  gpu_ids = [0] if device.type == "cuda" else []
  lambda_a = lambda_b = 10.0
  lambda_idt = 0.5

  def generator():
    return networks.define_G(3, 3, 64, "resnet_9blocks", "instance", False, "normal", 0.02,
                             gpu_ids)

  def discriminator():
    return networks.define_D(3, 64, "basic", 3, "instance", "normal", 0.02, gpu_ids)

  net_g_a, net_g_b, net_d_a, net_d_b = (
      peer_timing.place(network, args, device)
      for network in (generator(), generator(), discriminator(), discriminator()))
  fake_a_pool, fake_b_pool = image_pool.ImagePool(50), image_pool.ImagePool(50)
  criterion_gan = networks.GANLoss("lsgan").to(device)
  criterion_cycle, criterion_idt = torch.nn.L1Loss(), torch.nn.L1Loss()
  optimizer_g = torch.optim.Adam(itertools.chain(net_g_a.parameters(), net_g_b.parameters()),
                                 lr=2e-4, betas=(0.5, 0.999))
  optimizer_d = torch.optim.Adam(itertools.chain(net_d_a.parameters(), net_d_b.parameters()),
                                 lr=2e-4, betas=(0.5, 0.999))
  shape = (args.batch_size, 3, args.image_size, args.image_size)
  real_a = torch.rand(shape, device=device) * 2 - 1
  real_b = torch.rand(shape, device=device) * 2 - 1

  def backward_d_basic(net_d, real, fake):
    loss_d_real = criterion_gan(net_d(real), True)
    loss_d_fake = criterion_gan(net_d(fake.detach()), False)
    loss_d = (loss_d_real + loss_d_fake) * 0.5
    loss_d.backward()
    return loss_d

  def step():
    fake_b = net_g_a(real_a)
    rec_a = net_g_b(fake_b)
    fake_a = net_g_b(real_b)
    rec_b = net_g_a(fake_a)
    set_requires_grad([net_d_a, net_d_b], False)
    optimizer_g.zero_grad()
    idt_a = net_g_a(real_b)
    loss_idt_a = criterion_idt(idt_a, real_b) * lambda_b * lambda_idt
    idt_b = net_g_b(real_a)
    loss_idt_b = criterion_idt(idt_b, real_a) * lambda_a * lambda_idt
    loss_g_a = criterion_gan(net_d_a(fake_b), True)
    loss_g_b = criterion_gan(net_d_b(fake_a), True)
    loss_cycle_a = criterion_cycle(rec_a, real_a) * lambda_a
    loss_cycle_b = criterion_cycle(rec_b, real_b) * lambda_b
    loss_g = loss_g_a + loss_g_b + loss_cycle_a + loss_cycle_b + loss_idt_a + loss_idt_b
    loss_g.backward()
    optimizer_g.step()
    set_requires_grad([net_d_a, net_d_b], True)
    optimizer_d.zero_grad()
    backward_d_basic(net_d_a, real_b, fake_b_pool.query(fake_b))
    backward_d_basic(net_d_b, real_a, fake_a_pool.query(fake_a))
    optimizer_d.step()
    return loss_g

  peer_timing.time_and_report(step, args, device, "official CycleGAN (junyanz)")


if __name__ == "__main__":
  main()
