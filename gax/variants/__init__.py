"""GAN variants by name: each is one module (see gax/variants/base.py for what it provides).

`config.variant` is a registered name, or the import path of a module of your own that
provides the same four things (`HPARAMS`, `add_defaults`, `batch_spec`, `create`).
"""

import importlib
import json
from pathlib import Path

import ml_collections

from gax import augment, config_base, losses, models, optim, penalties
from gax import data as data_lib
from gax.variants import acgan, base, cgan, cyclegan, gan, pix2pix, ssgan

REGISTRY: dict[str, base.VariantModule] = {
    "gan": gan,
    "cgan": cgan,
    "acgan": acgan,
    "cyclegan": cyclegan,
    "ssgan": ssgan,
    "pix2pix": pix2pix,
}
# What a run's config.json records beside the config: facts of the run, not settings.
RUN_RECORDS = ("devices_used", "data_info")


_PROVIDES = ("HPARAMS", "add_defaults", "batch_spec", "create")


def module(name: str) -> base.VariantModule:
  """The registered variant `name`, or the module at import path `name`."""
  if name in REGISTRY:
    return REGISTRY[name]
  try:
    found = importlib.import_module(name)
  except ImportError:
    found = None
  missing = [] if found is None else [n for n in _PROVIDES if n not in vars(found)]
  if found is None or missing:
    raise config_base.ConfigError(
        f"unknown variant {name!r}; choose one of {', '.join(REGISTRY)}, or the import "
        f"path of a module that defines {', '.join(_PROVIDES)} (config.variant)"
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
  """Every field's value and every name (variant, networks, loss, optimizer), from the
  config alone: what a sweep checks for each trial before any runs."""
  config_base.validate(config, num_devices)
  module(config.variant)
  config_base.check_choice("optimizer.name", config.optimizer.name, optim.OPTIMIZER_NAMES)
  if "name" in config.model:  # the GAN family's networks are found by name
    models.default_config(config.model.name)
    config_base.check_choice("model.noise", config.model.noise, models.NOISE)
  if "conv_transpose" in config.model:
    config_base.check_choice("model.conv_transpose", config.model.conv_transpose,
                             models.CONV_TRANSPOSE)
  if "name" in config.loss:
    config_base.check_choice("loss.name", config.loss.name, losses.LOSS_NAMES)
  if "penalty" in config.loss:
    config_base.check_choice("loss.penalty", config.loss.penalty, penalties.PENALTIES)
  if "augment" in config:
    augment.from_config(config)


def batch_spec(config: ml_collections.ConfigDict) -> data_lib.BatchSpec:
  return module(config.variant).batch_spec(config)


def hparam_fields(config: ml_collections.ConfigDict) -> dict[str, str]:
  """The variant's continuous loss weights: config path -> name in state["hparams"]."""
  return dict(module(config.variant).HPARAMS)


def create(config: ml_collections.ConfigDict, info: data_lib.DataInfo) -> base.Variant:
  return module(config.variant).create(config, info)


def read_run_config(path: Path) -> tuple[ml_collections.ConfigDict, dict]:
  """A run's saved config.json over today's defaults of its variant (fields added since
  keep their defaults), and the run's records (`RUN_RECORDS`)."""
  saved = json.loads(Path(path).read_text())
  records = {name: saved.pop(name) for name in RUN_RECORDS if name in saved}
  options = {}
  if "name" in saved.get("model", {}):
    options["model"] = saved["model"]["name"]
  config = base_config(saved.get("variant", "gan"), **options)
  config.update(saved)
  return config, records
