"""The MLP GAN of Goodfellow et al. (2014) on MNIST.

G: 100-d noise -> ReLU 1200 -> ReLU 1200 -> 784 sigmoid; D: maxout 240x5 -> maxout
240x5 -> logit, dropout 0.2 on the input and 0.5 after each maxout layer, weights drawn
from U(-0.05, 0.05) in G and U(-0.005, 0.005) in D, as in the paper's pylearn2
configuration; batch 100, k = 1 discriminator step per generator step, and the
non-saturating generator loss that the paper recommends in practice (`loss=minimax`
for the saturating one).

`optimizer=adam` (default): Adam 2e-4, beta1 0.5, stable on mnist5k.
`optimizer=sgd`: the paper's SGD, learning rate 0.1, momentum 0.5, D's weight columns
held to norm <= 1.9365 (pylearn2's max_col_norm). Without the paper's momentum ramp and
learning-rate decay it still diverges after a few hundred steps on mnist5k; the
NaN guard stops such a run.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", loss="non_saturating",
                              optimizer="adam")
  config = variants.base_config("gan", model="mlp")  # the paper's networks and init
  config.dataset = arg.dataset
  config.loss.name = arg.loss
  config.optimizer.name = arg.optimizer
  if arg.optimizer == "sgd":
    config.optimizer.learning_rate = 0.1
    config.optimizer.momentum = 0.5
    config.optimizer.d_max_column_norm = 1.9365
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
