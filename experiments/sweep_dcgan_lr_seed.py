"""DCGAN learning rate x seed: python -m gax.sweep --config=configs/dcgan_mnist.py
--sweep=experiments/sweep_dcgan_lr_seed.py --workdir=workdirs/sweep_lr_seed"""


def sweep(add):
  for learning_rate in (5e-5, 1e-4, 2e-4, 4e-4):
    for seed in (0, 1, 2):
      add(**{"optimizer.learning_rate": learning_rate, "seed": seed})
