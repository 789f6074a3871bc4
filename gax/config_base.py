"""Defaults that every experiment config starts from, and `get_config(arg)` parsing."""

import ast
import functools
import importlib.util
import traceback
from pathlib import Path

import ml_collections
from ml_collections import config_dict

from gax import errors


def check_choice(field: str, value, choices) -> None:
  """Raises ConfigError unless `value` is one of `choices`; the message lists them.

  A registry name (`model.name`, `loss.name`, `variant`, ...) reads "unknown model 'x';
  choose one of ...", any other field "config.field = 'x' must be 'a' or 'b'".
  """
  choices = list(choices)
  if value in choices:
    return
  if field.endswith(".name") or field == "variant":
    noun = field.removesuffix(".name").split(".")[-1]
    raise errors.ConfigError(f"unknown {noun} {value!r}; choose one of "
                      f"{', '.join(map(str, choices))} (config.{field})")
  quoted = [repr(c) for c in choices]
  allowed = " or ".join(quoted) if len(quoted) <= 2 else "one of " + ", ".join(quoted)
  raise errors.ConfigError(f"config.{field} = {value!r} must be {allowed}")


def base_config() -> ml_collections.ConfigDict:
  """The fields every run has, at their defaults. A variant adds its own (its model and
  loss, see `gax.variants.base_config`); experiment configs override them."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.variant = "gan"
  config.dataset = "mnist5k"
  config.data = ml_collections.ConfigDict(dict(
      image_size=0,  # 0: the dataset's own size; else resized (center crop) to this
      channels=0,  # 0: the dataset's own channels; else converted to 1 or 3
      data_dir=config_dict.placeholder(str),  # TFDS data_dir; None: TFDS's default
      num_fake_examples=1024,  # size of the "fake" dataset
      on_device="auto",  # "auto", "yes" or "no": hold the dataset on the device
      max_device_bytes=4 * 2 ** 30,  # "auto" keeps datasets up to this size there
      crop_size=0,  # > 0: train on random crops of this size (CycleGAN: 286 -> 256)
      random_flip=False,  # mirror training images left-right at random
      # Where batches come from: "memory" (the dataset decoded whole, on the device or
      # the host), "stream" (decoded as read, in worker processes: gax/data/streaming.py) or
      # "auto" (streams folder, ArrayRecord and TFDS datasets larger than the next field).
      pipeline="auto",
      max_memory_bytes=2 * 2 ** 30,
      workers=2,  # streaming: decoding processes (0: in this process)
      prefetch=2,  # streaming: batches each worker keeps ready
      read_threads=1,  # streaming: decoding threads in each worker
      pairs="auto",  # folders: "auto" (A/ and B/ folders) or "side_by_side" (AB images)
      max_bad_fraction=0.01,  # folders: share of undecodable images skipped before stopping
  ))
  config.optimizer = ml_collections.ConfigDict(dict(
      name="adam",
      learning_rate=1e-4,
      g_learning_rate=config_dict.placeholder(float),  # set to differ from the above
      d_learning_rate=config_dict.placeholder(float),
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      momentum=0.0,  # sgd only
      decay_steps=0,  # > 0: linear decay to zero over the last decay_steps steps
      d_max_column_norm=0.0,  # > 0: D's weight columns kept within this L2 norm
  ))
  config.batch_size = 256  # global batch, split over the devices
  config.num_train_steps = 1000  # generator updates
  config.d_steps = 1  # discriminator updates per generator update (k)
  # The G step's fake batch: "fresh" noise (Goodfellow et al.'s Algorithm 1) or "reuse"
  # the last D step's batch and generator forward pass (pytorch/examples' DCGAN).
  config.g_step_fake = "fresh"
  config.steps_per_dispatch = 1  # > 1: that many steps per compiled call (lax.scan)
  # An exponential moving average of G's parameters and statistics (gax/variants/ema.py).
  config.ema = ml_collections.ConfigDict(dict(
      decay=0.0,  # in [0, 1); 0: no average
      start_step=0,  # G steps before the average starts (a copy of G until then)
      rampup=0.05,  # half-life at most this share of the steps averaged (StyleGAN2-ADA's)
  ))
  config.dtype = "float32"  # compute dtype; params and losses stay float32
  config.num_devices = 0  # 0: all local devices
  # The devices as a `member` × `data` mesh: a population's members are split over the
  # `member` rows, each model's batch over a row's `data` devices (0: all of the row).
  config.mesh = ml_collections.ConfigDict(dict(members=1, data=0))
  # A population's step: "vmap", "unroll" (members side by side), "auto" (unroll on CPU)
  config.population_step = "auto"
  # Training-health signals and warnings (gax/training/health.py), taken with every sample grid.
  config.health = ml_collections.ConfigDict(dict(
      real_examples=256,  # training and held-out images D's r_t is measured on; 0: none
      # The digit classifier's classes in the grid: "auto" where the run evaluates with it
      # during training (it is loaded then anyway), "yes", "no".
      grid_modes="auto",
      min_diversity=0.25,  # a grid less diverse than this share of real images: collapse
      patience=5,  # logs in a row with D's loss at its floor before a warning
      d_loss_near_floor=0.05,  # "at its floor": within this share of floor-to-chance
  ))
  config.log_every = 50
  config.sample_every = 500
  config.num_samples = 64  # images in each sample grid
  config.checkpoint_every = 1000
  config.keep_checkpoints = 3
  config.nan_policy = "stop"  # non-finite loss or gradient: "stop" the run or "skip" the step
  # Resuming a workdir with changed optimisation settings (loss, batch size, learning
  # rate, ...): "strict" refuses, "allow_changes" goes on and records the change.
  config.resume = "strict"
  config.inject_nan_at_step = 0  # > 0: poison that step's batch (tests the guard)
  config.eval_every = 0  # > 0: evaluate every so many steps and at the end
  config.eval = ml_collections.ConfigDict(dict(
      split="test",  # the held-out split generated images are compared with
      num_samples=10000,  # generated images per evaluation
      batch_size=500,  # generation batch
      # "digit_classifier", "inception" (pytorch-fid's InceptionV3) or
      # "package.module:function" (see README)
      features="digit_classifier",
      use_ema=True,  # sample grids and evaluations draw from G's average where there is one
      inception_weights=config_dict.placeholder(str),  # None: $GAX_INCEPTION_WEIGHTS
      inception_resize="bilinear",  # to 299: as pytorch-fid; "pil_bicubic": as clean-fid
      inception_batch_size=50,
      classifier_seed=0,
      classifier_steps=800,  # the digit classifier's training steps (its recipe's)
      cache_dir=config_dict.placeholder(str),  # None: $GAX_CACHE_DIR or ~/.cache/gax
      kid_subsets=100,
      kid_subset_size=1000,
      pr_k=3,  # neighbours of the precision/recall manifolds
      dc_k=5,  # neighbours of density/coverage's balls (Naeem et al.'s choice)
      is_splits=10,
      parzen=True,  # Parzen-window log-likelihood, sigma chosen on held-out half
      parzen_sigma_range=(0.1, 1.0),  # log-spaced grid, as in Goodfellow et al.'s code
      parzen_num_sigmas=10,
  ))
  return config


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses "key=value,key2=value2" into typed fields, big_vision style.

  Each key must be one of `defaults`; its value is converted to the default's type.
  """
  parsed = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    if not sep or key not in defaults:
      raise errors.ConfigError(f"bad config argument {item!r}; expected key=value with key in "
                       f"{', '.join(defaults)}")
    default = defaults[key]
    if isinstance(default, bool):
      parsed[key] = value.lower() in ("1", "true", "yes")
    elif isinstance(default, (int, float)):
      parsed[key] = type(default)(ast.literal_eval(value))
    else:
      parsed[key] = value
  return parsed


def line_in(path: Path, error: BaseException) -> str:
  """" (line N)" of the innermost frame of `error`'s traceback inside file `path`."""
  lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
           if Path(frame.filename).resolve() == path.resolve()]
  return f" (line {lines[-1]})" if lines else ""


def load_module(path, where: str, suffix: str = ".py"):
  """The Python file at `path` run as a module; any problem with it (absent, a directory,
  another kind of file, a syntax error, an exception while it runs) is a ConfigError
  that starts with `where` and names the line."""
  path = Path(path)
  if path.is_dir():
    raise errors.ConfigError(f"{where}: that is a directory; give a Python file")
  if not path.is_file():
    near = sorted(p.name for p in path.parent.glob("*.py")) if path.parent.is_dir() else []
    raise errors.ConfigError(f"{where}: no such file" + (
        f"; {path.parent} has {', '.join(near[:12])}" if near else ""))
  if path.suffix != suffix:
    raise errors.ConfigError(f"{where}: {path.name} is not a {suffix} file")
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise errors.ConfigError(f"{where}: syntax error at line {e.lineno}: {e.msg}") from None
  except Exception as e:  # whatever the file's own code raises
    raise errors.ConfigError(f"{where}: running the file raised {type(e).__name__}: {e}"
                             f"{line_in(path, e)}") from None
  return module


def load_config_module(path):
  """A config file as a module, for a config that derives from another's functions."""
  return load_module(path, f"--config={path}")


def load_config_file(path, arg: str | None = None) -> ml_collections.ConfigDict:
  """Calls `get_config(arg)` of a config file, as `--config=path:arg` does; any problem
  with the file is a ConfigError that names it."""
  where = f"--config={path}" + (f":{arg}" if arg else "")
  module = load_module(path, where)
  get_config = vars(module).get("get_config")
  if not callable(get_config):
    raise errors.ConfigError(f"{where}: the file defines no get_config(arg) function")
  try:
    config = get_config(arg)
  except (errors.ConfigError, ValueError) as e:  # a bad argument, said by the file itself
    raise errors.ConfigError(f"{where}: {e}") from None
  except Exception as e:
    raise errors.ConfigError(f"{where}: get_config({arg!r}) raised {type(e).__name__}: {e}"
                             f"{line_in(Path(path), e)}") from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise errors.ConfigError(
        f"{where}: get_config returned a {type(config).__name__}, not an "
        "ml_collections.ConfigDict; build it with gax.variants.base_config()")
  return config


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict) -> None:
  """Sets dotted fields ({"optimizer.learning_rate": 1e-4}); an unknown field is a
  ConfigError naming it."""
  for dotted, value in overrides.items():
    *parents, field = dotted.split(".")
    node = config
    try:
      for parent in parents:
        node = node[parent]
      if field not in node:
        raise KeyError(field)
      node[field] = value
    except (KeyError, TypeError) as e:
      raise errors.ConfigError(f"override {dotted}={value!r}: {e}; gax/config_base.py lists "
                        "every field") from None


# The enumerated fields every run has, and their choices. (Registries check their own
# names: variant, model.name, loss.name.)
CHOICES = {
    "optimizer.name": ("adam", "sgd"),
    "g_step_fake": ("fresh", "reuse"),
    "dtype": ("float32", "bfloat16"),
    "data.on_device": ("auto", "yes", "no"),
    "data.pipeline": ("auto", "memory", "stream"),
    "data.pairs": ("auto", "side_by_side"),
    "nan_policy": ("stop", "skip"),
    "population_step": ("auto", "vmap", "unroll"),
    "resume": ("strict", "allow_changes"),
    "eval.inception_resize": ("bilinear", "pil_bicubic"),
    "health.grid_modes": ("auto", "yes", "no"),
}


def get_field(config: ml_collections.ConfigDict, dotted: str):
  return functools.reduce(lambda node, key: node[key], dotted.split("."), config)


# Tests of a field's value, for rule lists of (field, test, what it must be): the base
# fields' `RULES` here, and each variant's and network's own beside their defaults.
def positive(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def at_least(low):
  return lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= low


def fraction(v) -> bool:
  return isinstance(v, (int, float)) and 0 <= v < 1


def probability(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1


def sizes(v) -> bool:
  return isinstance(v, (tuple, list)) and len(v) >= 1 and all(
      isinstance(x, int) and x >= 1 for x in v)


# (field, test, what it must be): fields every run has.
RULES = [
    ("seed", lambda v: isinstance(v, int) and 0 <= v < 2 ** 31, "must be in [0, 2**31)"),
    ("num_train_steps", positive, "must be > 0"),
    ("batch_size", positive, "must be > 0"),
    ("d_steps", at_least(1), "must be >= 1"),
    ("steps_per_dispatch", at_least(1), "must be >= 1"),
    ("num_devices", at_least(0), "must be >= 0 (0: all local devices)"),
    ("mesh.members", at_least(1), "must be >= 1 (mesh rows, each training its own "
     "members of a population)"),
    ("mesh.data", at_least(0), "must be >= 0 (devices per mesh row; 0: all the rest)"),
    ("optimizer.learning_rate", positive, "must be > 0"),
    ("optimizer.g_learning_rate", lambda v: v is None or positive(v), "must be > 0"),
    ("optimizer.d_learning_rate", lambda v: v is None or positive(v), "must be > 0"),
    ("optimizer.b1", fraction, "must be in [0, 1)"),
    ("optimizer.b2", fraction, "must be in [0, 1)"),
    ("optimizer.eps", positive, "must be > 0"),
    ("optimizer.momentum", fraction, "must be in [0, 1)"),
    ("optimizer.decay_steps", at_least(0), "must be >= 0 (0: no decay)"),
    ("optimizer.d_max_column_norm", at_least(0), "must be >= 0 (0: no limit)"),
    ("ema.decay", fraction, "must be in [0, 1) (0: no average of G)"),
    ("ema.start_step", at_least(0), "must be >= 0"),
    ("ema.rampup", at_least(0), "must be >= 0 (0: the decay from the first step)"),
    ("eval.use_ema", lambda v: isinstance(v, bool), "must be True or False"),
    ("health.real_examples", at_least(0), "must be >= 0 (0: no r_t on real images)"),
    ("health.min_diversity", at_least(0), "must be >= 0"),
    ("health.patience", at_least(1), "must be >= 1"),
    ("health.d_loss_near_floor", fraction, "must be in [0, 1)"),
    ("data.image_size", at_least(0), "must be >= 0 (0: the dataset's own size)"),
    ("data.channels", lambda v: v in (0, 1, 3), "must be 0 (the dataset's own), 1 or 3"),
    ("data.crop_size", at_least(0), "must be >= 0 (0: no crop)"),
    ("data.num_fake_examples", at_least(1), "must be >= 1"),
    ("data.max_device_bytes", at_least(0), "must be >= 0"),
    ("data.max_memory_bytes", at_least(0), "must be >= 0"),
    ("data.workers", at_least(0), "must be >= 0 (0: decode in the training process)"),
    ("data.prefetch", at_least(1), "must be >= 1"),
    ("data.read_threads", at_least(1), "must be >= 1"),
    ("data.max_bad_fraction", probability, "must be in [0, 1]"),
    ("inject_nan_at_step", at_least(0), "must be >= 0 (0: never)"),
    ("eval_every", at_least(0), "must be >= 0 (0: no evaluation)"),
    ("eval.num_samples", at_least(2), "must be >= 2"),
    ("eval.parzen_sigma_range", lambda v: isinstance(v, (tuple, list)) and len(v) == 2
     and 0 < v[0] <= v[1], "must be (low, high) with 0 < low <= high"),
    *((f"eval.{name}", at_least(1), "must be >= 1") for name in (
        "batch_size", "classifier_steps", "kid_subsets", "kid_subset_size", "pr_k", "dc_k",
        "is_splits", "parzen_num_sigmas", "inception_batch_size")),
    *((name, at_least(1), "must be >= 1") for name in (
        "log_every", "sample_every", "checkpoint_every", "num_samples", "keep_checkpoints")),
]
def _has(config: ml_collections.ConfigDict, dotted: str) -> bool:
  node = config
  for key in dotted.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or key not in node:
      return False
    node = node[key]
  return True


def check_rules(config: ml_collections.ConfigDict, rules) -> None:
  """Raises ConfigError naming the first field of `rules` whose value fails its test."""
  for field, test, why in rules:
    value = get_field(config, field)
    if not test(value):
      raise errors.ConfigError(f"config.{field} = {value!r} {why}")


def validate(config: ml_collections.ConfigDict, num_devices: int = 1) -> None:
  """Checks the fields every run has before anything is loaded or compiled (a variant
  checks its own, gax/variants/); the first bad one raises ConfigError naming it and
  what it must be."""
  missing = [field for field, _, _ in RULES if not _has(config, field)]
  if missing:
    raise errors.ConfigError(f"the config lacks {', '.join(missing[:5])}: build it from "
                             "gax.variants.base_config(...), as the files in configs/ do")
  for field, choices in CHOICES.items():
    check_choice(field, get_field(config, field), choices)
  check_rules(config, RULES)
  if config.batch_size % num_devices:
    raise errors.ConfigError(f"config.batch_size = {config.batch_size} must be divisible "
                             f"by the {num_devices} devices in use")
  if config.data.crop_size and 0 < config.data.image_size < config.data.crop_size:
    raise errors.ConfigError(f"config.data.crop_size = {config.data.crop_size} must be <= "
                             f"data.image_size ({config.data.image_size})")
