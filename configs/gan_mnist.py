"""The MLP GAN of Goodfellow et al. (2014) on MNIST.

G: 100-d noise -> ReLU 1200 -> ReLU 1200 -> 784 sigmoid; D: maxout 240x5 -> maxout
240x5 -> logit, dropout 0.2 on the input and 0.5 after each maxout layer, as in the
paper's pylearn2 configuration. SGD with momentum 0.5, learning rate 0.1, batch 100,
k = 1 discriminator step per generator step, the non-saturating generator loss that
the paper recommends in practice (`loss=minimax` for the saturating one).
"""

from gax import config_base


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", loss="non_saturating",
                              optimizer="sgd")
  config = config_base.base_config()
  config.dataset = arg.dataset
  config.model = config_base.ml_collections.ConfigDict(dict(
      name="mlp", noise_dim=100, noise="uniform", g_hidden=(1200, 1200),
      output_activation="sigmoid", d_hidden=(240, 240), d_pieces=5,
      d_input_dropout=0.2, d_dropout=0.5))
  config.loss.name = arg.loss
  config.optimizer.name = arg.optimizer
  if arg.optimizer == "sgd":
    config.optimizer.learning_rate = 0.1
    config.optimizer.momentum = 0.5
  else:
    config.optimizer.learning_rate = 2e-4
    config.optimizer.b1 = 0.5
  config.batch_size = 100
  config.d_steps = 1
  config.num_train_steps = 5000
  config.log_every = 50
  config.sample_every = 500
  config.checkpoint_every = 1000
  return config
