"""Command line: python -m gax.fid PATH_A PATH_B [--weights=FILE] [--metrics=fid,kid,...].

As pytorch-fid's command: the FID between two sets in pytorch-fid's InceptionV3, each
set an image folder (recursive; grey and RGBA read as RGB), an .npz of uint8 images
[N, H, W, C] under "images", or an .npz of statistics ("mu", "sigma"; optionally the
"features" themselves) such as pytorch-fid's `--save-stats` writes. Prints one JSON object
on the last line of stdout.

  python -m gax.fid --save_stats PATH OUT.npz   # the statistics of PATH, for later

`--metrics` adds KID, IS (of each image set), precision/recall and density/coverage;
A is the real side of the last two. The weights are pytorch-fid's file, given by
--weights or $GAX_INCEPTION_WEIGHTS (see gax/evaluation/inception_weights.py); nothing is
downloaded.
"""

import json

from absl import app, flags

from gax import cli, errors
from gax.evaluation import feature_sets, inception, inception_weights
from gax.evaluation.feature_sets import METRICS

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "pytorch-fid's InceptionV3 weight file (.pth or "
                    f".npz); default ${inception_weights.ENVIRONMENT_VARIABLE}.")
flags.DEFINE_enum("resize", "bilinear", inception.RESIZES, "To 299x299: 'bilinear' as "
                  "pytorch-fid, 'pil_bicubic' as clean-fid.")
flags.DEFINE_integer("batch_size", 50, "Images per network call (split over devices).",
                     lower_bound=1)
flags.DEFINE_list("metrics", ["fid"], f"Any of {', '.join(METRICS)}.")
flags.DEFINE_bool("save_stats", False, "Write PATH_A's statistics to PATH_B (.npz).")
flags.DEFINE_bool("save_features", False, "With --save_stats, store the features too "
                  "(what KID, precision/recall and density/coverage need later).")
flags.DEFINE_integer("kid_subsets", 100, "KID's random subsets.", lower_bound=1)
flags.DEFINE_integer("kid_subset_size", 1000, "KID's subset size.", lower_bound=2)
flags.DEFINE_integer("pr_k", 3, "Neighbours of the precision/recall manifolds.",
                     lower_bound=1)
flags.DEFINE_integer("dc_k", 5, "Neighbours of density/coverage's balls.", lower_bound=1)
flags.DEFINE_integer("is_splits", 10, "Inception Score's splits.", lower_bound=1)


def run(path_a: str, path_b: str) -> dict:
  unknown = [m for m in FLAGS.metrics if m not in METRICS]
  if unknown:
    raise errors.DataError(f"unknown metric {unknown[0]!r} in --metrics; choose from "
                             f"{', '.join(METRICS)}")
  if FLAGS.save_stats:
    return feature_sets.save_statistics(path_a, path_b, FLAGS.save_features, FLAGS.weights,
                                        FLAGS.resize, FLAGS.batch_size)
  sets = [feature_sets.read_set(path_a), feature_sets.read_set(path_b)]
  digest = feature_sets.extract(sets, FLAGS.weights, FLAGS.resize, FLAGS.batch_size)
  options = feature_sets.MetricOptions(FLAGS.kid_subsets, FLAGS.kid_subset_size, FLAGS.pr_k,
                                       FLAGS.dc_k, FLAGS.is_splits)
  return {**feature_sets.compare(*sets, FLAGS.metrics, options), "weights_sha256": digest,
          "resize": FLAGS.resize}


def main(argv):
  if len(argv) != 3:
    cli.fail(f"gax.fid takes two paths, PATH_A PATH_B (with --save_stats: PATH OUT.npz); "
             f"got {len(argv) - 1}")
  cli.run_command(lambda: print(json.dumps(run(argv[1], argv[2]), sort_keys=True,
                                           allow_nan=False)))


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
