"""Adversarial loss x k discriminator steps: python -m gax.sweep
--config=configs/dcgan_mnist.py --sweep=experiments/sweep_loss_dsteps.py
--workdir=workdirs/sweep_loss_dsteps"""


def sweep(add):
  for loss in ("minimax", "non_saturating", "least_squares"):
    for d_steps in (1, 2, 5):
      add(**{"loss.name": loss, "d_steps": d_steps})
