"""pix2pix completes digits: given the top half of an mnist5k digit, draw the rest.

Goodfellow et al.'s conditional modelling p(x_notS | x_S), with S the top 14 rows, as
paired translation (gax/variants/pix2pix.py, task "complete_top_half"): a U-Net G from
the digit with its bottom half black to the whole digit, a PatchGAN D on the pair, L1
lambda = 100, Adam 2e-4 with beta1 0.5, batch 64, 4,000 steps, an average of G's
parameters (decay 0.999) for samples and evaluation. The U-Net's 5 levels take the digit
(padded to 32x32) to 1x1, so every completed pixel sees the whole top half; D (2 layers)
scores a 5x5 grid of 34x34 patches. Evaluation on the 1,000 held-out digits:
completion_accuracy (the digit classifier on the completions, against the true labels),
top_half_accuracy (the same classifier on the inputs alone), L1 and PSNR against the
truth, FID of the completions.
"""

from gax import config_base, variants


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="mnist5k", steps=4000, loss="non_saturating")
  config = variants.base_config("pix2pix")
  config.task = "complete_top_half"
  config.dataset = arg.dataset
  config.loss.name = arg.loss
  config.model.update(ngf=32, ndf=32, num_downs=5, num_layers=2)
  config.ema.decay = 0.999  # samples and evaluation draw from G's average
  config.batch_size = 64
  config.num_train_steps = arg.steps
  config.log_every = 100
  config.sample_every = 500
  config.checkpoint_every = 1000
  config.num_samples = 36  # 12 digits: input, completion, truth
  config.eval_every = arg.steps
  config.eval.num_samples = 1000
  return config
