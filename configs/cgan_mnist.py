"""Class-conditional GAN on MNIST digits: cGAN (Mirza & Osindero, 2014) by default, or the
projection discriminator (Miyato & Koyama, 2018) with `:disc=projection`.

The quick start (configs/dcgan_mnist.py) with a label: its DCGAN-28 networks and its
recipe (`recipe=stabilised` by default; `recipe=radford` for the figures before it), and
- `disc=concat` (default): the one-hot label joins z in G and every layer's input in D;
- `disc=projection`: conditional batch norm in G, a projection discriminator.
`model=mlp` (Goodfellow et al.'s MLPs, concat only) or `model=dcgan64` (images resized to
64x64) swap the networks at their defaults. Offline on mnist5k; any labelled TFDS
dataset by argument (`dataset=mnist`, `fashion_mnist`, `cifar10`). Grids: one row per
class, the same noise down each column.
"""

from pathlib import Path

from gax import config_base, models

QUICK_START = Path(__file__).with_name("dcgan_mnist.py")


def conditional(arg: str | None, variant: str, **defaults):
  """The quick start's config for `variant` ("cgan" or "acgan"), with the arguments that
  conditioning needs beside the quick start's own: (config, parsed arguments)."""
  arg = config_base.parse_arg(arg, dataset="mnist5k", recipe="stabilised", model="dcgan28",
                              **defaults)
  config = config_base.load_config_file(QUICK_START, f"dataset={arg.dataset},"
                                                     f"recipe={arg.recipe}")
  config.variant = variant
  if arg.model != "dcgan28":
    config.model = models.default_config(arg.model)
  if arg.model == "dcgan64":
    config.data.image_size = 64
  config.num_samples = 100  # 10 classes x 10 noise vectors
  return config, arg


def get_config(arg: str | None = None):
  config, arg = conditional(arg, "cgan", disc="concat")
  config.model.conditioning = arg.disc
  return config
