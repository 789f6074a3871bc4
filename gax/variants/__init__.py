"""GAN variants by name: each is one module (see gax/variants/base.py for what it provides).

`config.variant` is a registered name, or the import path of a module of your own that
provides the same things (`PROVIDES`).
"""

import importlib

import ml_collections

from gax import config_base, errors
from gax.data import datasets as data_lib
from gax.variants import acgan, base, cgan, cyclegan, gan, pix2pix, ssgan

REGISTRY: dict[str, base.VariantModule] = {
    "gan": gan,
    "cgan": cgan,
    "acgan": acgan,
    "cyclegan": cyclegan,
    "ssgan": ssgan,
    "pix2pix": pix2pix,
}
PROVIDES = ("HPARAMS", "add_defaults", "validate", "tiny", "batch_spec", "create")


def module(name: str) -> base.VariantModule:
  """The registered variant `name`, or the module at import path `name`."""
  if name in REGISTRY:
    return REGISTRY[name]
  try:
    found = importlib.import_module(name)
  except (ImportError, ValueError, TypeError):  # no such module; "" or a relative name
    found = None
  missing = [] if found is None else [n for n in PROVIDES if n not in vars(found)]
  if found is None or missing:
    raise errors.ConfigError(
        f"unknown variant {name!r}; choose one of {', '.join(REGISTRY)}, or the import "
        f"path of a module that defines {', '.join(PROVIDES)} (config.variant)"
        + (f"; {name} lacks {', '.join(missing)}" if missing else ""))
  return found


def base_config(variant: str = "gan", **options) -> ml_collections.ConfigDict:
  """The fields of every run plus the variant's own, at their defaults; `options` go to
  the variant's `add_defaults` (for the GAN family: `model="mlp"`, ...)."""
  config = config_base.base_config()
  config.variant = variant
  module(variant).add_defaults(config, **options)
  return config


def validate(config: ml_collections.ConfigDict, num_devices: int = 1) -> None:
  """Every field's value and every name, from the config alone: the fields every run
  has, then the variant's own (its networks, losses, batch fields). What a sweep checks
  for each trial before any runs."""
  config_base.validate(config, num_devices)
  module(config.variant).validate(config)


def tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config shrunk to a few CPU-seconds per step, its variant's networks and losses
  kept: the run-wide sizes here, the networks by the variant (tests, smoke runs)."""
  config.batch_size = 8
  config.log_every = 1
  config.sample_every = 2
  config.checkpoint_every = 2
  config.num_samples = 4
  config.health.real_examples = 0
  config.eval.classifier_steps = 100  # a quicker digit classifier, cached apart
  module(config.variant).tiny(config)
  return config


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  return module(config.variant).batch_spec(config)


def hparam_fields(config: ml_collections.ConfigDict) -> dict[str, str]:
  """The variant's continuous loss weights: config path -> name in state["hparams"]."""
  return dict(module(config.variant).HPARAMS)


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> base.Variant:
  return module(config.variant).create(config, info)
