"""Command line: python -m gax.evaluate --workdir=DIR [--step=N|best] [--num_samples=N].

Evaluates one checkpoint of a run (default: the latest), prints the result as one JSON
object on the last line of stdout and writes it to DIR/eval/step_N.json.
"""

import json

from absl import app, flags

from gax import cli
from gax.trained import run as trained_run

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A run's workdir (holds config.json and checkpoints/).")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best'; default: the latest.")
flags.DEFINE_integer("num_samples", 0, "Generated images (0: the run's eval.num_samples).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  cli.run_command(lambda: print(json.dumps(
      trained_run.evaluate_workdir(FLAGS.workdir, FLAGS.step, FLAGS.num_samples), sort_keys=True)))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
