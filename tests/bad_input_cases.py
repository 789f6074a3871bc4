"""Bad input, case by case: what a user types, and what gax must answer (one line, exit 2).

`CONFIG_CASES` are config overrides that `tests/test_bad_input.py` checks in-process;
`python tests/bad_input_cases.py` runs every case below through the command line, as a
user would, and prints the table of messages and exit codes.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# (config file[:arg], {field: value}, part of the message)
CONFIG_CASES = [
    ("dcgan_mnist", {"num_train_steps": -3}, "config.num_train_steps = -3 must be > 0"),
    ("dcgan_mnist", {"batch_size": 0}, "config.batch_size = 0 must be > 0"),
    ("dcgan_mnist", {"d_steps": 0}, "config.d_steps = 0 must be >= 1"),
    ("dcgan_mnist", {"seed": -1}, "config.seed = -1 must be in [0, 2**31)"),
    ("dcgan_mnist", {"num_devices": -2}, "config.num_devices = -2 must be >= 0"),
    ("dcgan_mnist", {"num_devices": 99}, "config.num_devices = 99 but only"),
    ("gan_mnist", {"mesh.members": 0}, "config.mesh.members = 0 must be >= 1"),
    ("gan_mnist", {"mesh.members": 3},
     "config.mesh.members = 3 does not divide the 1 devices in use; allowed: 1"),
    ("gan_mnist", {"mesh.data": 4}, "config.mesh = (1, 4) (members, data) holds 4 devices "
     "but 1 are in use (config.num_devices; 0: all visible); choose members × data = 1"),
    ("dcgan_mnist", {"optimizer.learning_rate": 0.0},
     "config.optimizer.learning_rate = 0.0 must be > 0"),
    ("dcgan_mnist", {"optimizer.b1": 1.5}, "config.optimizer.b1 = 1.5 must be in [0, 1)"),
    ("dcgan_mnist", {"optimizer.eps": 0.0}, "config.optimizer.eps = 0.0 must be > 0"),
    ("dcgan_mnist", {"optimizer.decay_steps": -5},
     "config.optimizer.decay_steps = -5 must be >= 0 (0: no decay)"),
    ("dcgan_mnist", {"optimizer.name": "lion"},
     "unknown optimizer 'lion'; choose one of adam, sgd"),
    ("dcgan_mnist", {"loss.name": "softplus"}, "unknown loss 'softplus'; choose one of "
     "minimax, non_saturating, least_squares, hinge, wasserstein (config.loss.name)"),
    ("dcgan_mnist", {"loss.penalty": "r2"}, "config.loss.penalty = 'r2' must be one of "
     "'none', 'wgan_gp', 'zero_gp', 'r1'"),
    ("dcgan_mnist", {"loss.penalty_weight": -10.0},
     "config.loss.penalty_weight = -10.0 must be >= 0 (the penalty's lambda or gamma)"),
    ("dcgan_mnist", {"loss.penalty_every": 0}, "config.loss.penalty_every = 0 must be >= 1"),
    ("dcgan_mnist", {"ema.decay": 1.0},
     "config.ema.decay = 1.0 must be in [0, 1) (0: no average of G)"),
    ("dcgan_mnist", {"ema.decay": -0.5}, "config.ema.decay = -0.5 must be in [0, 1)"),
    ("dcgan_mnist", {"augment.name": "randaugment"}, "unknown augment 'randaugment'; choose "
     "one of none, diffaugment, ada (config.augment.name)"),
    ("dcgan_mnist", {"augment.name": "ada", "augment.ops": "color,rotation"},
     "config.augment.ops = 'rotation' must be one of 'color', 'translation', 'cutout'"),
    ("dcgan_mnist", {"augment.target": 1.5}, "config.augment.target = 1.5 must be in (-1, 1)"),
    ("dcgan_mnist", {"augment.p": 2.0}, "config.augment.p = 2.0 must be in [0, 1]"),
    ("sngan_cifar10", {"dataset": "mnist5k", "data.image_size": 28},
     "model 'sngan_resnet' needs height and width divisible by 8"),
    ("dcgan_mnist", {"model.name": "resnet9000"}, "unknown model 'resnet9000'"),
    ("dcgan_mnist", {"model.name": "mlp"},
     "config.model.name = 'mlp', but config.model holds the fields of another model"),
    ("dcgan_mnist", {"model.noise": "cauchy"},
     "config.model.noise = 'cauchy' must be 'normal' or 'uniform'"),
    ("dcgan_mnist", {"model.conv_transpose": "fast"},
     "config.model.conv_transpose = 'fast' must be one of 'auto', 'subpixel', 'xla'"),
    ("dcgan_mnist", {"model.noise_dim": 0}, "config.model.noise_dim = 0 must be >= 1"),
    ("gan_mnist", {"model.output_activation": "relu"},
     "config.model.output_activation = 'relu' must be 'tanh' or 'sigmoid'"),
    ("gan_mnist", {"model.d_dropout": 1.0}, "config.model.d_dropout = 1.0 must be in [0, 1)"),
    ("gan_mnist", {"model.g_hidden": ()}, "config.model.g_hidden = () must be a tuple"),
    ("dcgan_mnist", {"data.image_size": 30},
     "model 'dcgan28' needs height and width divisible by 4"),
    ("dcgan_mnist", {"data.image_size": -1}, "config.data.image_size = -1 must be >= 0"),
    ("dcgan_mnist", {"data.channels": 2}, "config.data.channels = 2 must be 0"),
    ("dcgan_mnist", {"data.image_size": 32, "data.crop_size": 40},
     "config.data.crop_size = 40 must be <= data.image_size (32)"),
    ("dcgan_mnist", {"data.on_device": "maybe"},
     "config.data.on_device = 'maybe' must be one of 'auto', 'yes', 'no'"),
    ("dcgan_mnist", {"nan_policy": "retry"}, "config.nan_policy = 'retry' must be 'stop' or"),
    ("dcgan_mnist", {"population_step": "fast"}, "config.population_step = 'fast' must be"),
    ("dcgan_mnist", {"g_step_fake": "later"},
     "config.g_step_fake = 'later' must be 'fresh' or 'reuse'"),
    ("dcgan_mnist", {"dtype": "float16"},
     "config.dtype = 'float16' must be 'float32' or 'bfloat16'"),
    ("dcgan_mnist", {"resume": "yes"}, "config.resume = 'yes' must be 'strict' or"),
    ("dcgan_mnist", {"eval.num_samples": 1}, "config.eval.num_samples = 1 must be >= 2"),
    ("dcgan_mnist", {"eval.parzen_sigma_range": (1.0, 0.1)},
     "config.eval.parzen_sigma_range = (1.0, 0.1) must be (low, high)"),
    ("dcgan_mnist", {"log_every": 0}, "config.log_every = 0 must be >= 1"),
    ("dcgan_mnist", {"keep_checkpoints": 0}, "config.keep_checkpoints = 0 must be >= 1"),
    ("dcgan_mnist", {"dataset": "no_such_dataset"}, "unknown dataset 'no_such_dataset'"),
    ("dcgan_mnist", {"num_samples": 10 ** 9}, "the sample grid of num_samples = 1000000000"),
    ("dcgan_mnist", {"data.image_size": 40000}, "resized to data.image_size = 40000"),
    ("dcgan_mnist", {"model.noise_dim": 10 ** 7}, "the train state, its gradients"),
    ("dcgan_mnist", {"variant": "nope"}, "unknown variant 'nope'; choose one of"),
    ("cyclegan_digits", {"g_step_fake": "reuse"}, "the 'cyclegan' variant does not"),
    ("cyclegan_digits", {"loss.cycle_weight": -1.0},
     "config.loss.cycle_weight = -1.0 must be >= 0"),
    ("cyclegan_digits", {"model.num_blocks": -1}, "config.model.num_blocks = -1 must be >= 0"),
    ("cgan_mnist", {"model.conditioning": "film"},
     "config.model.conditioning = 'film' must be 'concat' or 'projection'"),
    ("cgan_mnist", {"dataset": "digits", "data.image_size": 30},
     "model 'dcgan28' needs height and width divisible by 4"),
    ("acgan_mnist", {"model.conditioning": "projection"},
     "config.model.conditioning = 'projection' must be 'concat' or 'cbn'"),
    ("acgan_mnist", {"loss.g_class_weight": -0.5},
     "config.loss.g_class_weight = -0.5 must be >= 0"),
    ("ssgan_mnist", {"data.num_labeled": 5000}, "data.num_labeled = 5000 cannot be drawn as "
     "an equal number of each of the 10 classes from 4000 examples (the rarest class has "
     "400); choose a positive multiple of 10 up to 4000"),
    ("ssgan_mnist", {"data.num_labeled": 105}, "data.num_labeled = 105 cannot be drawn"),
    ("ssgan_mnist", {"data.num_labeled": 50}, "data.num_labeled = 50 is smaller than "
     "batch_size = 100"),
    ("ssgan_mnist", {"loss.unsupervised_weight": -1.0},
     "config.loss.unsupervised_weight = -1.0 must be >= 0"),
]


def _flag_value(value) -> str:
  return repr(tuple(value)) if isinstance(value, (tuple, list)) else str(value)


def command_line_cases(scratch: Path) -> list[tuple[str, list[str]]]:
  """(what, argv) of every case, config overrides and the rest."""
  bad = scratch / "configs"
  bad.mkdir(parents=True, exist_ok=True)
  (bad / "syntax.py").write_text("def get_config(:\n")
  (bad / "raises.py").write_text("def get_config(arg=None):\n  raise RuntimeError('boom')\n")
  (bad / "plain.py").write_text("def get_config(arg=None):\n  return {'a': 1}\n")
  (bad / "noget.py").write_text("x = 1\n")
  (bad / "adir.py").mkdir(exist_ok=True)
  main = [sys.executable, "-m", "gax.main"]
  work = f"--workdir={scratch / 'w'}"
  cases = [(f"{name}: {overrides}", [*main, f"--config=configs/{name}.py", work,
                                     *(f"--config.{k}={_flag_value(v)}"
                                       for k, v in overrides.items())])
           for name, overrides, _ in CONFIG_CASES]
  cases += [
      ("config file missing", [*main, "--config=configs/dcgan_mnst.py", work]),
      ("config path is a directory", [*main, f"--config={bad / 'adir.py'}", work]),
      ("config file with a syntax error", [*main, f"--config={bad / 'syntax.py'}", work]),
      ("get_config raises", [*main, f"--config={bad / 'raises.py'}", work]),
      ("get_config returns a dict", [*main, f"--config={bad / 'plain.py'}", work]),
      ("config file without get_config", [*main, f"--config={bad / 'noget.py'}", work]),
      ("unknown config argument", [*main, "--config=configs/dcgan_mnist.py:lr=3", work]),
      ("bad config argument value", [*main, "--config=configs/dcgan_mnist.py:recipe=fast",
                                     work]),
      ("unknown config field", [*main, "--config=configs/dcgan_mnist.py", work,
                                "--config.no_such_field=1"]),
      ("workdir is a file", [*main, "--config=configs/dcgan_mnist.py",
                             f"--workdir={bad / 'noget.py' / 'run'}"]),
      ("gax.evaluate on a directory that is no workdir",
       [sys.executable, "-m", "gax.evaluate", f"--workdir={scratch}"]),
      ("gax.sample on a directory that is no workdir",
       [sys.executable, "-m", "gax.sample", f"--workdir={scratch}"]),
      ("gax.sweep --parallel=0",
       [sys.executable, "-m", "gax.sweep", "--config=configs/dcgan_mnist.py",
        f"--sweep={ROOT / 'experiments' / 'sweep_dcgan_lr_seed.py'}", work, "--parallel=0"]),
      ("gax.sweep with a missing sweep file",
       [sys.executable, "-m", "gax.sweep", "--config=configs/dcgan_mnist.py",
        f"--sweep={scratch / 'none.py'}", work]),
      ("gax.main --population with a missing file",
       [*main, "--config=configs/dcgan_mnist.py", work, f"--population={scratch / 'p.json'}"]),
  ]
  cases += [(what, [*main, f"--config=configs/{config.replace(':', '.py:', 1)}", work,
                    *(f"--config.{k}={v}" for k, v in overrides.items())])
            for what, config, overrides, _ in folder_cases(scratch)]
  return cases + [(what, argv) for what, argv, _ in fid_cases(scratch) + sweep_cases(scratch)]


def sweep_cases(scratch: Path) -> list[tuple[str, list[str], str]]:
  """gax.sweep's launcher options: (what, argv, part of the message);
  `tests/test_slurm.py` checks each message."""
  sweep = ["--config=configs/gan_mnist.py",
           f"--sweep={ROOT / 'experiments' / 'sweep_dcgan_lr_seed.py'}",
           f"--workdir={scratch / 'sweep'}"]
  command = [sys.executable, "-m", "gax.sweep", *sweep]
  # As if submitit were not installed: `import submitit` raises ImportError.
  without_submitit = [sys.executable, "-c", "import runpy, sys; sys.modules['submitit'] = "
                      "None; runpy.run_module('gax.sweep', run_name='__main__')", *sweep]
  return [
      ("gax.sweep with a SLURM option submitit does not know",
       [*command, "--launcher=slurm", "--slurm.partitio=gpu"],
       "--slurm.partitio: submitit has no SLURM option 'partitio'; it knows account,"),
      ("gax.sweep --launcher=slurm without submitit",
       [*without_submitit, "--launcher=slurm", "--slurm.partition=gpu"],
       "--launcher=slurm needs submitit, which is not installed: pip install 'gax[slurm]'"),
      ("gax.sweep with a SLURM option but the local launcher",
       [*command, "--slurm.partition=gpu"],
       "--slurm.partition: SLURM options need --launcher=slurm"),
      ("gax.sweep with a SLURM option without a value", [*command, "--slurm.partition"],
       "--slurm.partition: write SLURM options as --slurm.KEY=VALUE"),
  ]


def folder_cases(scratch: Path) -> list[tuple[str, str, dict, str]]:
  """Folder datasets that cannot be read: (what, config file[:arg], overrides, part of the
  message); `tests/test_folders.py` checks each in-process and one through gax.main."""
  from PIL import Image  # noqa: PLC0415

  root = scratch / "folders"
  empty, texts, mixed, pairs, broken = (root / n for n in (
      "empty", "texts", "mixed", "pairs", "broken"))
  for folder in (empty, texts, mixed, pairs / "A", pairs / "B", broken):
    folder.mkdir(parents=True, exist_ok=True)
  (texts / "notes.txt").write_text("no images here")
  (texts / "table.csv").write_text("a,b\n")
  for name, size in (("small", (8, 8)), ("wide", (8, 12))):
    Image.fromarray(np.zeros(size, np.uint8)).save(mixed / f"{name}.png")
  for side, names in (("A", ("x", "y", "z")), ("B", ("x", "y", "w"))):
    for name in names:
      Image.fromarray(np.zeros((8, 8), np.uint8)).save(pairs / side / f"{name}.png")
  for i in range(4):
    Image.fromarray(np.full((8, 8), i, np.uint8)).save(broken / f"{i}.png")
  (broken / "2.png").write_bytes(b"\x89PNG garbage")
  return [
      ("an empty folder", f"dcgan_mnist:dataset=folder:{empty}", {}, "has no files"),
      ("a folder without images", f"dcgan_mnist:dataset=folder:{texts}", {},
       "has 2 files but no images of the formats read (.png .jpg"),
      ("paired folders whose names differ",
       f"pix2pix_folder:dataset=folder:{pairs},layout=folders", {},
       "paired folders must hold the same file names: 1 in"),
      ("images of mixed sizes without a resize rule", f"dcgan_mnist:dataset=folder:{mixed}",
       {}, "images differ in size: 8x8 (small.png), 12x8 (wide.png); set data.image_size"),
      ("more undecodable images than allowed", f"dcgan_mnist:dataset=folder:{broken}",
       {"data.max_bad_fraction": 0.1}, "1 of 4 images in"),
      ("pix2pix on a folder without pairs",
       f"pix2pix_folder:dataset=folder:{mixed},layout=folders",
       {"data.image_size": 8, "data.crop_size": 0}, "is not paired"),
  ]


def fid_cases(scratch: Path) -> list[tuple[str, list[str], str]]:
  """gax.fid's bad input (weight files, folders, .npz files): (what, argv, part of the
  message); `tests/test_fid.py` checks each message."""
  import torch_files  # noqa: PLC0415 (test helpers: only this table needs them)
  from PIL import Image  # noqa: PLC0415

  rng = np.random.default_rng(0)
  folders = {name: scratch / "fid" / name for name in ("good", "empty", "mixed")}
  for folder in folders.values():
    folder.mkdir(parents=True, exist_ok=True)
  for i, size in enumerate((12, 12, 9)):
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
        folders["mixed"] / f"{i}.png")
    if size == 12:
      Image.fromarray(rng.integers(0, 256, (12, 12, 3), np.uint8)).save(
          folders["good"] / f"{i}.jpg")
  weights = scratch / "fid" / "random.pth"
  tensors = torch_files.random_state_dict()
  torch_files.save_zip(weights, tensors)
  tensors["fc.weight"] = np.zeros((1000, 2048), np.float32)
  torch_files.save_zip(scratch / "fid" / "other.pth", tensors)
  payload = weights.read_bytes()
  (scratch / "fid" / "cut.pth").write_bytes(payload[:len(payload) // 3])
  np.savez(scratch / "fid" / "nokeys.npz", pixels=np.zeros((3, 8, 8, 3), np.uint8))
  np.savez(scratch / "fid" / "s64.npz", mu=np.zeros(64), sigma=np.eye(64))
  np.savez(scratch / "fid" / "s32.npz", mu=np.zeros(32), sigma=np.eye(32))
  fid = [sys.executable, "-m", "gax.fid"]
  good = str(folders["good"])
  with_weights = f"--weights={weights}"
  stats64, stats32 = str(scratch / "fid" / "s64.npz"), str(scratch / "fid" / "s32.npz")
  return [
      ("gax.fid with a weight file of another network",
       [*fid, good, good, f"--weights={scratch / 'fid' / 'other.pth'}"],
       "is not pytorch-fid's InceptionV3: fc.weight has shape (1000, 2048)"),
      ("gax.fid with a truncated weight file",
       [*fid, good, good, f"--weights={scratch / 'fid' / 'cut.pth'}"],
       "is truncated or not a PyTorch state dict"),
      ("gax.fid without a weight file", [*fid, good, good], "needs a weight file"),
      ("gax.fid on an empty folder", [*fid, str(folders["empty"]), good, with_weights],
       "holds no images"),
      ("gax.fid on a folder of mixed image sizes",
       [*fid, str(folders["mixed"]), good, with_weights],
       "holds images of 2 sizes (12x12: 2 files, e.g. 0.png; 9x9: 1 files, e.g. 2.png); "
       "they are not resized"),
      ("gax.fid on an .npz without the expected keys",
       [*fid, str(scratch / "fid" / "nokeys.npz"), good, with_weights],
       "holds ['pixels']; an .npz must hold 'images'"),
      ("gax.fid on statistics of different dimensions", [*fid, stats64, stats32],
       "statistics of different dimensions"),
      ("gax.fid --metrics=kid on statistics without features",
       [*fid, stats64, stats64, "--metrics=kid"], "needs features"),
      ("gax.fid on a path that does not exist", [*fid, str(scratch / "none"), good],
       "does not exist"),
      ("gax.fid with one path", [*fid, good], "takes two paths"),
  ]

def main():
  with tempfile.TemporaryDirectory() as scratch:
    rows = []
    for what, argv in command_line_cases(Path(scratch)):
      result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
      errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
      message = errors[-1] if errors else result.stderr.strip().splitlines()[-1][:200]
      traceback = "Traceback" in result.stderr
      rows.append(f"| {what} | {result.returncode} | {len(errors)} | "
                  f"{'yes' if traceback else 'no'} | {message.replace('|', '/')} |")
      print(rows[-1], flush=True)
  print(f"\n{len(rows)} cases")


if __name__ == "__main__":
  main()
