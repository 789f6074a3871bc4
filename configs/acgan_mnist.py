"""ACGAN (Odena et al., 2017) on MNIST digits: D has an auxiliary class head, and D and G
both add the class log-likelihood (weights `loss.d_class_weight`, `loss.g_class_weight`,
1 as in the paper) to their adversarial losses.

The quick start with a label, as configs/cgan_mnist.py (its arguments `dataset`, `recipe`
and `model` too); G takes the label by concatenation with z (`gen=concat`, the paper's)
or through conditional batch norm (`gen=cbn`, as PyTorch-StudioGAN).
"""

from pathlib import Path

from gax import config_base

CGAN = Path(__file__).with_name("cgan_mnist.py")


def get_config(arg: str | None = None):
  config, arg = config_base.load_config_module(CGAN).conditional(arg, "acgan", gen="concat")
  config.model.conditioning = arg.gen
  config.loss.d_class_weight = 1.0
  config.loss.g_class_weight = 1.0
  return config
