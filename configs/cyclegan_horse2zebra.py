"""CycleGAN on TFDS cycle_gan/horse2zebra with the paper's settings.

ResNet generator with 9 blocks at 256x256, 70x70 PatchGAN, least-squares GAN loss,
cycle lambda 10, identity 0.5 lambda, pool of 50, batch 1, Adam 2e-4 with beta1 0.5:
100 epochs constant then 100 epochs of linear decay to zero (1,067 horse images per
epoch), images resized to 286 then randomly cropped to 256 and mirrored.
Prepare the data once: `tfds build cycle_gan/horse2zebra --file_format=array_record`.
`:dataset=cycle_gan/apple2orange` (or any cycle_gan/* pair) swaps the data.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="cycle_gan/horse2zebra", epoch_steps=1067)
  config = variants.base_config("cyclegan")  # 9 blocks, ngf = ndf = 64, the paper's losses
  config.dataset = arg.dataset
  config.data.image_size, config.data.channels = 286, 3
  config.data.crop_size, config.data.random_flip = 256, True
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = 1
  config.num_train_steps = 200 * arg.epoch_steps
  config.optimizer.decay_steps = 100 * arg.epoch_steps
  config.log_every = 100
  config.sample_every = 1000
  config.checkpoint_every = 5000
  config.num_samples = 32  # 4 images per domain in each grid
  config.eval.parzen = False
  return config
