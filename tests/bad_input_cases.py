"""Bad input, case by case: what a user types, and what gax must answer (one line, exit 2).

`CONFIG_CASES` are config overrides that `tests/test_bad_input.py` checks in-process;
`python tests/bad_input_cases.py` runs every case below through the command line, as a
user would, and prints the table of messages and exit codes.
"""

import subprocess
import sys
import tempfile
import time
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
    scratch = Path(scratch)
    workdir = scratch / "trained"
    subprocess.run([sys.executable, "-m", "gax.main",
                    "--config=configs/dcgan_mnist.py:recipe=radford", f"--workdir={workdir}",
                    "--config.batch_size=8", "--config.num_train_steps=2",
                    "--config.log_every=1", "--config.checkpoint_every=2",
                    "--config.num_samples=4"], cwd=ROOT, check=True, capture_output=True)
    cases = [(what, argv) for what, argv in command_line_cases(scratch / "lines")]
    cases += [(what, argv) for what, argv, _, _ in command_cases(scratch / "commands",
                                                                  workdir)]
    print("| case | command | exit | gax: error lines | traceback | the line |")
    print("| --- | --- | --- | --- | --- | --- |")
    for what, argv in cases:
      start = time.perf_counter()
      result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
      seconds = time.perf_counter() - start
      errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
      message = errors[-1] if errors else result.stderr.strip().splitlines()[-1][:200]
      traceback = "Traceback" in result.stderr
      command = next((a for a in argv if a.startswith("gax.")), "gax.fid")
      print(f"| {what} | {command} | {result.returncode} | {len(errors)} | "
            f"{'yes' if traceback else 'no'} | {message.replace('|', '/')[:300]} "
            f"({seconds:.1f} s) |", flush=True)
    print(f"\n{len(cases)} cases")


if __name__ == "__main__":
  main()


def _statistics_files(root: Path) -> dict[str, Path]:
  """.npz statistics no Fréchet distance is defined on, by what is wrong with them."""
  root.mkdir(parents=True, exist_ok=True)
  eye = np.eye(4)
  bad = {"nan": (np.array([0.0, np.nan, 0.0, 0.0]), eye),
         "inf": (np.zeros(4), np.diag([1.0, np.inf, 1.0, 1.0])),
         "strings": (np.array(["a", "b"]), np.array([["a", "b"], ["c", "d"]])),
         "zero_dim": (np.zeros(0), np.zeros((0, 0))),
         "asymmetric": (np.zeros(4), eye + np.triu(np.ones((4, 4)), 1)),
         "not_psd": (np.zeros(4), np.diag([1.0, -2.0, 1.0, 1.0]))}
  paths = {}
  for name, (mu, sigma) in bad.items():
    paths[name] = root / f"{name}.npz"
    np.savez(paths[name], mu=mu, sigma=sigma)
  paths["good"] = root / "good.npz"
  np.savez(paths["good"], mu=np.zeros(4), sigma=eye)
  return paths


def _image_folders(root: Path) -> dict[str, Path]:
  """A folder of one image, one of 40, and one whose only image claims 100,000 x 100,000
  pixels."""
  from PIL import Image  # noqa: PLC0415

  folders = {name: root / name for name in ("one", "forty", "bomb")}
  for folder in folders.values():
    folder.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folders["one"] / "0.png")
  for i in range(40):
    Image.fromarray(np.full((8, 8), i, np.uint8)).save(folders["forty"] / f"{i}.png")
  (folders["bomb"] / "0.png").write_bytes(bomb_png(100_000, 100_000))
  return folders


def bomb_png(width: int, height: int) -> bytes:
  """A PNG whose header claims width x height grey pixels, with almost no data."""
  import struct  # noqa: PLC0415
  import zlib  # noqa: PLC0415

  def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

  header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _edited_runs(workdir: Path, root: Path) -> dict[str, Path]:
  """Copies of a trained run with a file damaged or edited, by what was done."""
  import json  # noqa: PLC0415
  import shutil  # noqa: PLC0415

  runs = {}
  for name in ("cgan", "acgan", "empty_encoder", "damaged_encoder", "garbage_config"):
    runs[name] = root / name
    if not runs[name].exists():
      shutil.copytree(workdir, runs[name], ignore=shutil.ignore_patterns("lock"))
  for variant in ("cgan", "acgan"):
    path = runs[variant] / "config.json"
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "variant": variant}))
  for name, payload in (("empty_encoder", b""), ("damaged_encoder", b"\x93 not msgpack")):
    (runs[name] / "inference").mkdir(exist_ok=True)
    (runs[name] / "inference" / "encoder.msgpack").write_bytes(payload)
  (runs["garbage_config"] / "config.json").write_text("{ not json")
  return runs


def _sweep_files(root: Path) -> dict[str, Path]:
  """Sweep files that cannot give trials, by what is wrong with them."""
  root.mkdir(parents=True, exist_ok=True)
  texts = {"raises_on_import.py": "x = 1\nraise RuntimeError('boom')\n",
           "raises_inside.py": "def sweep(add):\n  add(seed=1)\n  raise KeyError('lr')\n",
           "syntax.py": "def sweep(add:\n",
           "positional.py": "def sweep(add):\n  add(1, 2)\n",
           "no_parameter.py": "def sweep():\n  pass\n",
           "no_sweep.py": "x = 1\n",
           "trials.txt": "seed=1\n",
           "empty_variant.py": "def sweep(add):\n  add(variant='')\n",
           "relative_variant.py": "def sweep(add):\n  add(variant='.foo')\n",
           "module_variant.py": "def sweep(add):\n  add(variant='json')\n",
           "one_fails.py": (
               "TINY = {'batch_size': 8, 'num_train_steps': 2, 'log_every': 1,\n"
               "        'checkpoint_every': 2, 'num_samples': 4}\n"
               "def sweep(add):\n  add(seed=0, **TINY)\n"
               "  add(**{'seed': 1, 'dataset': 'folder:/no/such/folder'}, **TINY)\n")}
  for name, text in texts.items():
    (root / name).write_text(text)
  return {Path(name).stem: root / name for name in texts}


def _population_files(root: Path) -> dict[str, Path]:
  import json  # noqa: PLC0415

  root.mkdir(parents=True, exist_ok=True)
  members = {"empty_workdir": ["a", ""], "same_workdir": ["a", "b/../a"],
             "nested_workdir": ["a", "a/b"], "absolute_workdir": ["a", "/tmp/x"]}
  paths = {}
  for name, workdirs in members.items():
    paths[name] = root / f"{name}.json"
    paths[name].write_text(json.dumps({"members": [{"workdir": w, "overrides": {"seed": i}}
                                                   for i, w in enumerate(workdirs)]}))
  return paths


def command_cases(scratch: Path, workdir: Path) -> list[tuple[str, list[str], str, int]]:
  """Bad input to every command beyond config values: (what, argv, part of the one line
  it must print, exit code). `workdir` is a trained tiny run of configs/dcgan_mnist.py
  (radford), which no case may change."""
  import shutil  # noqa: PLC0415

  python = sys.executable
  main = [python, "-m", "gax.main"]
  config = ["--config=configs/dcgan_mnist.py:recipe=radford", "--config.batch_size=8",
            "--config.num_train_steps=2", "--config.log_every=1",
            "--config.checkpoint_every=2", "--config.num_samples=4"]
  evaluate = [python, "-m", "gax.evaluate"]
  sample = [python, "-m", "gax.sample"]
  infer = [python, "-m", "gax.infer"]
  fid = [python, "-m", "gax.fid"]
  sweep = [python, "-m", "gax.sweep", "--config=configs/dcgan_mnist.py:recipe=radford"]
  a_file = scratch / "a_file"
  a_file.write_text("not a directory")
  stats = _statistics_files(scratch / "stats")
  images = _image_folders(scratch / "images")
  runs = _edited_runs(workdir, scratch / "runs")
  sweeps = _sweep_files(scratch / "sweeps")
  populations = _population_files(scratch / "populations")
  samples_file = scratch / "samples_file"
  (samples_file / "samples").parent.mkdir(parents=True, exist_ok=True)
  (samples_file / "samples").write_text("a file where gax writes its grids")
  array_records = scratch / "records"
  array_records.mkdir(parents=True, exist_ok=True)
  (array_records / "empty.array_record").write_bytes(b"")
  (array_records / "garbage.array_record").write_bytes(b"garbage" * 10)
  cases = [
      ("gax.main --workdir is a file", [*main, *config, f"--workdir={a_file}"],
       "is a file, not a directory", 2),
      ("gax.main --workdir below a file", [*main, *config, f"--workdir={a_file / 'run'}"],
       f"{a_file} is a file, not a directory", 2),
      ("gax.main on a workdir whose samples/ is a file",
       [*main, *config, f"--workdir={samples_file}"], "samples is a file, not a directory",
       2),
      ("gax.main with data.workers=1000", [*main, *config, f"--workdir={scratch / 'w1'}",
       f"--config.dataset=folder:{images['forty']}", "--config.data.pipeline=stream",
       "--config.data.workers=1000"], "config.data.workers = 1000 decoding processes", 2),
      ("gax.main on an empty ArrayRecord file",
       [*main, *config, f"--workdir={scratch / 'w2'}",
        f"--config.dataset=arrayrecord:{array_records / 'empty.array_record'}"],
       "as ArrayRecord files of encoded images", 2),
      ("gax.main on a garbage ArrayRecord file",
       [*main, *config, f"--workdir={scratch / 'w3'}",
        f"--config.dataset=arrayrecord:{array_records / 'garbage.array_record'}"],
       "as ArrayRecord files of encoded images", 2),
      ("gax.main on a folder whose only image is a decompression bomb",
       [*main, *config, f"--workdir={scratch / 'w4'}",
        f"--config.dataset=folder:{images['bomb']}"], "more pixels than PIL's limit", 2),
      ("gax.main with ssgan's num_labeled the whole training set",
       [*main, "--config=configs/ssgan_mnist.py:num_labeled=4000",
        f"--workdir={scratch / 'w5'}"], "takes every training example of 'mnist5k'", 2),
      ("gax.main with config.variant ''", [*main, *config, f"--workdir={scratch / 'w6'}",
                                          "--config.variant="], "unknown variant ''", 2),
      ("gax.main with config.variant '.foo'",
       [*main, *config, f"--workdir={scratch / 'w6'}", "--config.variant=.foo"],
       "unknown variant '.foo'", 2),
      ("gax.main with a module that is not a variant",
       [*main, *config, f"--workdir={scratch / 'w6'}", "--config.variant=json"],
       "json lacks HPARAMS", 2),
      *((f"gax.main --population with a {name.replace('_', ' ')}",
         [*main, *config, f"--workdir={scratch / 'w7'}", f"--population={path}"],
         message, 2) for name, path, message in (
             ("empty_workdir", populations["empty_workdir"], "must be a relative path"),
             ("absolute_workdir", populations["absolute_workdir"],
              "must be a relative path"),
             ("same_workdir", populations["same_workdir"], "share a workdir"),
             ("nested_workdir", populations["nested_workdir"], "one holds the other"))),
      ("gax.evaluate --num_samples=1000000000",
       [*evaluate, f"--workdir={workdir}", "--num_samples=1000000000"],
       "evaluating --num_samples = 1000000000 images would need", 2),
      ("gax.evaluate --num_samples=-5", [*evaluate, f"--workdir={workdir}",
                                         "--num_samples=-5"], "--num_samples=-5 must be 0",
       2),
      ("gax.evaluate --num_samples=1", [*evaluate, f"--workdir={workdir}",
                                        "--num_samples=1"], "--num_samples=1 must be 0", 2),
      ("gax.evaluate on a config.json edited to cgan",
       [*evaluate, f"--workdir={runs['cgan']}"], "describes a 'cgan' run", 2),
      ("gax.evaluate on a config.json edited to acgan",
       [*evaluate, f"--workdir={runs['acgan']}"], "describes a 'acgan' run", 2),
      ("gax.evaluate on a config.json that is not JSON",
       [*evaluate, f"--workdir={runs['garbage_config']}"], "cannot be read as a gax config",
       2),
      ("gax.evaluate --step=7", [*evaluate, f"--workdir={workdir}", "--step=7"],
       "--step=7 is not a checkpoint of this run", 2),
      ("gax.sample --num_images=1000000000",
       [*sample, f"--workdir={workdir}", "--num_images=1000000000"],
       "--num_images = 1000000000 and --walks x --walk_steps", 2),
      ("gax.sample --num_images=0", [*sample, f"--workdir={workdir}", "--num_images=0"],
       "--num_images and --walks must be >= 1", 2),
      ("gax.sample --out is a file", [*sample, f"--workdir={workdir}", f"--out={a_file}"],
       "--out=", 2),
      ("gax.sample on a config.json edited to cgan",
       [*sample, f"--workdir={runs['cgan']}"], "describes a 'cgan' run", 2),
      ("gax.sample --labels on an unconditional run",
       [*sample, f"--workdir={workdir}", "--labels=3"], "needs a class-conditional run", 2),
      ("gax.sample --reconstruct without an inference network",
       [*sample, f"--workdir={workdir}", "--reconstruct"], "has no inference network", 2),
      ("gax.sample --reconstruct with an empty encoder file",
       [*sample, f"--workdir={runs['empty_encoder']}", "--reconstruct"],
       "cannot be read as this run's encoder", 2),
      ("gax.sample --reconstruct with a damaged encoder file",
       [*sample, f"--workdir={runs['damaged_encoder']}", "--reconstruct"],
       "cannot be read as this run's encoder", 2),
      ("gax.infer --batch_size=100000000",
       [*infer, f"--workdir={workdir}", "--batch_size=100000000"],
       "--batch_size = 100000000 (the encoder's training step) would need", 2),
      ("gax.infer --steps=0", [*infer, f"--workdir={workdir}", "--steps=0"],
       "--steps=0 must be >= 1", 2),
      ("gax.infer --learning_rate=0", [*infer, f"--workdir={workdir}", "--learning_rate=0"],
       "--learning_rate must be > 0", 2),
      ("gax.infer --step=7", [*infer, f"--workdir={workdir}", "--step=7"],
       "--step=7 is not a checkpoint of this run", 2),
      ("gax.infer on a directory that is no workdir", [*infer, f"--workdir={scratch}"],
       "has no config.json: not a gax workdir", 2),
      *((f"gax.fid on statistics with {name.replace('_', ' ')}",
         [*fid, str(stats[name]), str(stats["good"])], message, 2)
        for name, message in (("nan", "holds NaN or infinity"),
                              ("inf", "holds NaN or infinity"),
                              ("strings", "not real numbers"),
                              ("zero_dim", "with F >= 1"),
                              ("asymmetric", "is not symmetric"),
                              ("not_psd", "has a negative eigenvalue"))),
      ("gax.fid on a folder of one image", [*fid, str(images["one"]), str(stats["good"])],
       "holds 1 image(s); statistics need at least 2", 2),
      ("gax.fid on a decompression bomb", [*fid, str(images["bomb"]), str(stats["good"])],
       "more pixels than PIL's limit", 2),
      ("gax.fid --save_stats onto a directory",
       [*fid, "--save_stats", str(stats["good"]), str(scratch / "stats")],
       "does not end in .npz", 2),
      ("gax.fid --save_stats onto a directory named .npz",
       [*fid, "--save_stats", str(stats["good"]), str(scratch / "stats_dir.npz")],
       "that is a directory", 2),
      ("gax.fid --save_stats below a file",
       [*fid, "--save_stats", str(stats["good"]), str(a_file / "out.npz")],
       "is a file, not a directory", 2),
      ("gax.fid --save_stats --save_features of statistics without features",
       [*fid, "--save_stats", "--save_features", str(stats["good"]),
        str(scratch / "out.npz")], "holds statistics without their features", 2),
      *((f"gax.sweep with a sweep file that {what}",
         [*sweep, f"--sweep={sweeps[name]}", f"--workdir={scratch / 'sw'}"], message, 2)
        for name, what, message in (
            ("raises_on_import", "raises on import", "RuntimeError: boom (line 2)"),
            ("raises_inside", "raises inside sweep(add)", "KeyError: 'lr' (line 3)"),
            ("syntax", "has a syntax error", "syntax error at line 1"),
            ("positional", "calls add(1, 2)", "add() takes dotted config paths as keywords"),
            ("no_parameter", "defines sweep() without add", "sweep(add) raised TypeError"),
            ("no_sweep", "defines no sweep", "defines no sweep(add) function"),
            ("trials", "is a .txt file", "trials.txt is not a .py file"),
            ("empty_variant", "names the variant ''", "unknown variant ''"),
            ("relative_variant", "names the variant '.foo'", "unknown variant '.foo'"),
            ("module_variant", "names a module that is not a variant",
             "json lacks HPARAMS"))),
      ("gax.sweep --sweep is a directory",
       [*sweep, f"--sweep={scratch / 'sweeps'}", f"--workdir={scratch / 'sw'}"],
       "that is a directory", 2),
      ("gax.sweep --workdir is a file",
       [*sweep, f"--sweep={ROOT / 'experiments' / 'sweep_dcgan_lr_seed.py'}",
        f"--workdir={a_file}"], "is a file, not a directory", 2),
      ("gax.sweep with a SLURM option of the wrong type",
       [*sweep, f"--sweep={sweeps['one_fails']}", f"--workdir={scratch / 'sw'}",
        "--launcher=slurm", "--slurm.cluster=local", "--slurm.timeout_min=abc"],
       "options refused by submitit", 2),
      ("gax.sweep with a negative SLURM option",
       [*sweep, f"--sweep={sweeps['one_fails']}", f"--workdir={scratch / 'sw'}",
        "--launcher=slurm", "--slurm.cluster=local", "--slurm.timeout_min=-5"],
       "--slurm.timeout_min=-5: must be >= 0", 2),
      ("gax.sweep with a trial that fails",
       [*sweep, f"--sweep={sweeps['one_fails']}", f"--workdir={scratch / 'sweep_fails'}"],
       "1 of 2 jobs failed, the others finished", 1),
  ]
  if shutil.which("srun") is None:
    cases.append(("gax.sweep --launcher=slurm where there is no SLURM",
                  [*sweep, f"--sweep={sweeps['one_fails']}", f"--workdir={scratch / 'sw'}",
                   "--launcher=slurm"], 'Could not detect "srun"', 2))
  (scratch / "stats_dir.npz").mkdir(exist_ok=True)
  return cases
