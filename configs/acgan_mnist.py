"""ACGAN (Odena et al., 2017) on MNIST digits: D has an auxiliary class head, and D and G
both add the class log-likelihood (weights `loss.d_class_weight`, `loss.g_class_weight`,
1 as in the paper) to their adversarial losses.

DCGAN-28 networks; G takes the label by concatenation with z (`gen=concat`, the paper's)
or through conditional batch norm (`gen=cbn`, as PyTorch-StudioGAN). The quick start's
recipe: Adam 2e-4, beta1 0.5, batch 64, 2,000 steps, BCE with the non-saturating G loss.
Offline on mnist5k; any labelled TFDS dataset by argument (`dataset=mnist`,
`fashion_mnist`, `cifar10`).
Grids: one row per class.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", model="dcgan28", gen="concat",
                              steps=2000)
  config = variants.base_config("acgan", model=arg.model, conditioning=arg.gen)
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
