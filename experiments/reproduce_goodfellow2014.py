"""Goodfellow et al. (2014), Table 1 (MNIST): Parzen-window log-likelihood, reproduced.

Trains the paper's MLP GAN (configs/gan_mnist.py) and a DCGAN (configs/dcgan_mnist.py),
then estimates the log-likelihood of held-out digits under a Gaussian Parzen window
fitted to 10,000 generated samples, with the paper's protocol: pixels in [0, 1], sigma
chosen on a validation set from a log-spaced grid over [0.1, 1], mean ± standard error
on the test set. The same estimate with real training digits as the window's centres
gives the reference a perfect generator would reach with this data.

  python experiments/reproduce_goodfellow2014.py --workdir=workdirs/goodfellow2014

Offline the data is mnist5k (4,000 training digits; the 1,000 held-out digits split
500/500 into validation and test); `--dataset=mnist` uses full MNIST from TFDS.
Runs already trained in the workdir are resumed or reused, not retrained.
"""

import json
from pathlib import Path

from absl import app, flags, logging

from gax import cli, config_base
from gax.data import datasets as data_lib
from gax.storage import files
from gax.trained import run as trained_run
from gax.training import train

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", "workdirs/goodfellow2014", "Where the runs and table go.")
flags.DEFINE_string("dataset", "mnist5k", "mnist5k (offline) or mnist (TFDS).")
flags.DEFINE_integer("gan_steps", 5000, "Generator updates of the MLP GAN.")
flags.DEFINE_integer("dcgan_steps", 2000, "Generator updates of the DCGAN.")
flags.DEFINE_integer("num_samples", 10000, "Generated samples in the Parzen window.")

PAPER_ROWS = [  # Goodfellow et al. (2014), Table 1, MNIST column
    ("DBN (Bengio et al., 2013)", 138.0, 2.0),
    ("Stacked CAE (Bengio et al., 2013)", 121.0, 1.6),
    ("Deep GSN (Bengio et al., 2014)", 214.0, 1.1),
    ("Adversarial nets (the paper)", 225.0, 2.0),
]
ROOT = Path(__file__).resolve().parents[1]


def _config(name: str, steps: int):
  # The plain DCGAN (BCE, no stabilisers) beside the paper's adversarial nets.
  recipe = ",recipe=radford" if name == "dcgan_mnist" else ""
  config = config_base.load_config_file(ROOT / "configs" / f"{name}.py",
                                        f"dataset={FLAGS.dataset}{recipe}")
  config.num_train_steps = steps
  config.checkpoint_every = steps
  config.eval.num_samples = FLAGS.num_samples
  return config


def _train_and_measure(name: str, steps: int, workdir: Path) -> dict:
  config = _config(name, steps)
  train.train_and_evaluate(config, str(workdir))
  return trained_run.evaluate_workdir(str(workdir), str(steps))


def format_table(rows: list[tuple[str, float, float]], data_note: str) -> str:
  lines = ["| Model | MNIST Parzen log-likelihood (nats) | Data |", "|---|---|---|"]
  lines += [f"| {model} | {ll:.0f} ± {se:.1f} | {data} |" for model, ll, se, data in rows]
  return "\n".join(lines) + f"\n\n{data_note}\n"


def main(argv):
  del argv
  workdir = Path(FLAGS.workdir)

  def command():
    measured = {name: _train_and_measure(name, steps, workdir / name)
                for name, steps in (("gan_mnist", FLAGS.gan_steps),
                                    ("dcgan_mnist", FLAGS.dcgan_steps))}
    data = "mnist5k" if FLAGS.dataset == "mnist5k" else f"TFDS {FLAGS.dataset}"
    rows = [(model, ll, se, "MNIST, paper") for model, ll, se in PAPER_ROWS]
    gan, dcgan = measured["gan_mnist"], measured["dcgan_mnist"]
    rows += [
        (f"gax MLP GAN, {FLAGS.gan_steps} steps", gan["parzen_ll"], gan["parzen_se"], data),
        (f"gax DCGAN, {FLAGS.dcgan_steps} steps", dcgan["parzen_ll"], dcgan["parzen_se"],
         data),
        ("Real training digits as centres", gan["parzen_ll_real"], gan["parzen_se_real"],
         data),
    ]
    config = _config("gan_mnist", 1)
    held_out = len(data_lib.load_dataset(config.data, config.dataset, config.eval.split))
    test_size = held_out - held_out // 2
    note = (f"gax rows: {FLAGS.num_samples} generated samples, sigma chosen on half of "
            f"the held-out split, mean ± s.e. over the other half ({test_size} digits); "
            f"the sigmas chosen: MLP GAN {gan['parzen_sigma']:.3f}, DCGAN "
            f"{dcgan['parzen_sigma']:.3f}.")
    table = format_table(rows, note)
    files.write_atomically(workdir / "parzen_table.md", table)
    summary = {"dataset": FLAGS.dataset, "rows": [
        {"model": m, "parzen_ll": ll, "parzen_se": se, "data": d} for m, ll, se, d in rows],
        "evaluations": measured}
    files.write_json(workdir / "parzen_table.json", summary)
    logging.info("\n%s", table)
    print(json.dumps({r["model"]: round(r["parzen_ll"], 1) for r in summary["rows"]}))

  cli.run_command(command)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
