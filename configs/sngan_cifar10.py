"""SNGAN (Miyato et al. 2018) on CIFAR-10: spectrally normalised D, hinge loss.

- `model=resnet` (default): their ResNet G and D (Table 4), Adam 2e-4, beta1 0, beta2 0.9,
  five D steps per G step, batch 64, 50,000 G steps with the learning rate decaying
  linearly to zero, as in the authors' CIFAR-10 configuration;
- `model=sndcgan`: their "standard CNN" (Table 3) with setting C (Adam 2e-4, beta1 0.5,
  beta2 0.999, one D step), 100,000 G steps.
`ema=0.9999` adds an average of G (BigGAN's decay; from step 1,000). Evaluation is in
pytorch-fid's InceptionV3 (FID comparable with papers; give its weights, see README).
TFDS `cifar10` by default (`dataset=fake` for benchmarks).
"""

from gax import config_base, variants

MODELS = {"resnet": "sngan_resnet", "sndcgan": "sndcgan"}


def get_config(arg: str | None = None):
  arg = config_base.parse_arg(arg, dataset="cifar10", model="resnet", ema=0.0)
  config_base.check_choice("model", arg.model, MODELS)
  config = variants.base_config("gan", model=MODELS[arg.model])
  config.dataset = arg.dataset
  config.data.image_size = 32
  config.data.channels = 3
  config.loss.name = "hinge"
  config.optimizer.learning_rate = 2e-4
  config.batch_size = 64
  if arg.model == "resnet":
    config.optimizer.b1, config.optimizer.b2 = 0.0, 0.9
    config.d_steps = 5
    config.num_train_steps = 50000
    config.optimizer.decay_steps = config.num_train_steps
  else:
    config.optimizer.b1, config.optimizer.b2 = 0.5, 0.999
    config.num_train_steps = 100000
  if arg.ema:
    config.ema.decay, config.ema.start_step = arg.ema, 1000
  config.eval.features = "inception"
  config.eval.num_samples = 50000  # the papers' FID sample size (against the test split)
  config.log_every = 100
  config.sample_every = 2000
  config.checkpoint_every = 5000
  config.num_samples = 100
  return config
