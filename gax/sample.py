"""Command line: python -m gax.sample --workdir=DIR [--step=N|best] [--num_images=N]
[--labels=3,3,7] [--out=DIR] [--seed=S] [--reconstruct].

Draws from a trained run's generator (inference mode; gax/trained/sampling.py) and
writes, into `--out` (default DIR/sampled/step_N/):
- `grid.png`: the images as one grid (conditional runs: one row per class, unless
  `--labels` picks the classes, one image per listed label);
- `images.npz`: the same images as uint8 [N, H, W, C] under "images", with "labels"
  for conditional runs, for outside tools (FID, classifiers);
- `interpolation.png` and `interpolation.gif`: walks through z between fixed noise
  vectors, as in Radford et al.: one row per walk in the PNG, one frame per point of the
  walks in the GIF (normal noise: spherical interpolation; uniform: linear).
With `--reconstruct` (a run with an inference network, gax/trained/inference.py), instead:
- `reconstruction.png`: held-out images x beside G(E(x)), pair by pair;
- `reconstruction_walks.png`: per row, a real x_a, G along the line E(x_a) -> E(x_b),
  and the real x_b.
"""

from absl import app, flags

from gax import cli
from gax.trained import sampling

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "A trained run's workdir.")
flags.DEFINE_string("step", None, "Checkpoint step, or 'best'; default: the latest.")
flags.DEFINE_integer("num_images", 100, "Images in the grid and the .npz.")
flags.DEFINE_string("labels", None, "Conditional runs: comma-separated classes, one image "
                    "each (e.g. 3,3,7); default: every class in turn.")
flags.DEFINE_integer("walks", 8, "Latent walks in the interpolation.")
flags.DEFINE_integer("walk_steps", 10, "Points along each walk.")
flags.DEFINE_integer("seed", 0, "Seed of the noise.")
flags.DEFINE_string("out", None, "Output directory (default: DIR/sampled/step_N).")
flags.DEFINE_bool("reconstruct", False, "Through the run's inference network (gax.inference):"
                  " held-out x beside G(E(x)), and walks between two real images.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.reconstruct:
    cli.run_command(lambda: print(sampling.reconstruct_run(
        FLAGS.workdir, FLAGS.step, FLAGS.num_images, FLAGS.walks, FLAGS.walk_steps,
        FLAGS.out)))
    return
  cli.run_command(lambda: print(sampling.sample_run(
      FLAGS.workdir, FLAGS.step, FLAGS.num_images, FLAGS.labels, FLAGS.walks,
      FLAGS.walk_steps, FLAGS.seed, FLAGS.out)))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
