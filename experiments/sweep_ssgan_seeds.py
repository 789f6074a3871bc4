"""The semi-supervised GAN and its supervised baseline on the same 100 labels, 3 seeds
each, as one population (the baseline is `loss.unsupervised_weight = 0`):

  python -m gax.sweep --config=configs/ssgan_mnist.py --population \
      --sweep=experiments/sweep_ssgan_seeds.py --workdir=workdirs/ssgan_seeds
"""


def sweep(add):
  for unsupervised_weight in (0.5, 0.0):
    for seed in (0, 1, 2):
      add(**{"loss.unsupervised_weight": unsupervised_weight, "seed": seed})
