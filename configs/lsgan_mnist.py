"""LSGAN (Mao et al.) on MNIST: the DCGAN-28 networks with least-squares losses.

a = 0 (fake), b = 1 (real), c = 1 (what G wants D to say): the 0-1 coding of the paper.
Adam 2e-4, beta1 0.5 as in the paper's experiments.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k")
  config = variants.base_config("gan", model="dcgan28")
  config.dataset = arg.dataset
  config.loss.name = "least_squares"
  config.loss.a, config.loss.b, config.loss.c = 0.0, 1.0, 1.0
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = 64
  config.num_train_steps = 3000
  config.log_every = 25
  config.sample_every = 200
  config.checkpoint_every = 1000
  return config
