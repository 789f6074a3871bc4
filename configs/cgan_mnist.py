"""Class-conditional GAN on MNIST digits: cGAN (Mirza & Osindero, 2014) by default, or the
projection discriminator (Miyato & Koyama, 2018) with `:disc=projection`.

- `disc=concat` (default): the one-hot label joins z in G and the image (one map per
  class) in D;
- `disc=projection`: conditional batch norm in G, a projection discriminator.
The networks are DCGAN-28 (`model=dcgan28`, the tutorial's), the MLP of Goodfellow et al.
(`model=mlp`, concat only) or DCGAN-64 (`model=dcgan64`, images resized to 64x64). The
recipe is the quick start's: Adam 2e-4, beta1 0.5, batch 64, 2,000 steps, BCE with the
non-saturating G loss. Offline on mnist5k; any labelled TFDS dataset by argument
(`dataset=mnist`, `fashion_mnist`, `cifar10`). Grids: one row per class.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", disc="concat", model="dcgan28",
                              steps=2000)
  config = variants.base_config("cgan", model=arg.model, conditioning=arg.disc)
  config.dataset = arg.dataset
  if arg.model == "dcgan64":
    config.data.image_size = 64
  config.loss.name = "non_saturating"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = 64
  config.num_train_steps = arg.steps
  config.log_every = 50
  config.sample_every = 200
  config.checkpoint_every = 500
  config.num_samples = 100  # 10 classes x 10 noise vectors
  return config
