"""Semi-supervised GAN on mnist5k with 100 labels (Salimans et al., 2016): D classifies
the 10 digits and judges real against fake through the implicit fake class, G trains by
feature matching (gax/variants/ssgan.py).

The paper's MNIST recipe: its networks, Adam 3e-3 with beta1 0.5 for both networks,
batch 100 of unlabelled and 100 of labelled digits every step, the learning rate decayed
linearly to 0 over the run's second half. `data.num_labeled` (10 per class) are drawn by
`data.labeled_seed`; the other 3,900 training digits are used without their labels.
`ssl_test_accuracy` is D's accuracy on the 1,000 held-out digits.

`baseline` (`ssgan_mnist.py:baseline=True`): the supervised baseline, the same D trained
on the same labelled digits alone (`loss.unsupervised_weight = 0`).
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", num_labeled=100, baseline=False,
                              steps=6000)
  config = variants.base_config("ssgan")
  config.dataset = arg.dataset
  config.data.num_labeled = arg.num_labeled
  if arg.baseline:
    config.loss.unsupervised_weight = 0.0
  config.optimizer.learning_rate = 3e-3
  config.optimizer.b1 = 0.5
  config.optimizer.decay_steps = arg.steps // 2
  config.batch_size = 100
  config.num_train_steps = arg.steps
  config.log_every = 50
  config.sample_every = 500
  config.checkpoint_every = 500
  config.eval_every = 1000
  config.eval.num_samples = 2000
  return config
