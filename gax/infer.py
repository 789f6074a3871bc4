"""Command line: python -m gax.infer --workdir=DIR [--step=N|best] [--steps=N] ...

Trains an inference network E: x -> z for a trained run's generator and evaluates it
(gax/trained/inference.py); writes DIR/inference/ and prints the evaluation.
"""

from absl import app, flags

from gax import cli
from gax.trained import inference

FLAGS = flags.FLAGS
_RECIPE = inference.InferenceRecipe
flags.DEFINE_string("workdir", None, "A trained run's workdir.")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best'; default: the latest.")
flags.DEFINE_integer("steps", _RECIPE.steps, "Encoder training steps.")
flags.DEFINE_integer("batch_size", _RECIPE.batch_size, "Encoder batch size.")
flags.DEFINE_float("learning_rate", _RECIPE.learning_rate, "Adam's learning rate.")
flags.DEFINE_float("feature_weight", _RECIPE.feature_weight,
                   "Weight of the feature reconstruction beside the latent regression.")
flags.DEFINE_integer("seed", _RECIPE.seed, "Seed of the encoder's init and batches.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  recipe = _RECIPE(FLAGS.steps, FLAGS.batch_size, FLAGS.learning_rate, FLAGS.feature_weight,
                   FLAGS.seed)
  cli.run_command(lambda: print(inference.run_inference(FLAGS.workdir, FLAGS.step, recipe)))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
