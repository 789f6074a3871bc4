"""gax's InceptionV3 against pytorch-fid's own, on the same random weights; prints JSON.

  python benchmarks/fid_agreement.py --torch_python=/path/to/torch-env/bin/python

The other environment needs torch, torchvision and pytorch-fid (not gax); nothing is
downloaded. `pytorch_fid_reference.py` runs there: it builds pytorch-fid's network with
random weights, calibrates its batch-norm statistics on real digits (a fresh network's
eval-mode features barely depend on the input, so agreeing on them would prove nothing),
saves the state dict in torch's zip and legacy formats, and extracts the features of two
sets of mnist5k digits (b: other digits, mirrored). gax then reads both files, extracts
the same sets, and compares:
- pool features and logits, as the largest relative L2 error over images, beside the
  features' spread across images (how much they depend on the input at all) and beside
  float32's own error in pytorch-fid (its float32 features against its float64 ones);
- the same in float64 on both sides, where rounding no longer hides a difference in
  what the two networks compute;
- FID between the sets, gax's against pytorch-fid's;
- extraction throughput (images/s), measured in this one run on this machine.
"""

import json
import platform
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import app, flags

from gax.data import datasets as data_lib
from gax.evaluation import inception, inception_weights, metrics

FLAGS = flags.FLAGS
flags.DEFINE_string("torch_python", None, "Python of an environment with torch and "
                    "pytorch-fid.")
flags.DEFINE_integer("num_images", 2100, "Images per set (more than the 2048 feature "
                     "dimensions, so the covariances are regular).")
flags.DEFINE_integer("num_calibration", 256, "Images that calibrate batch norm.")
flags.DEFINE_integer("batch_size", 50, "Extraction batch, both sides.")
flags.DEFINE_string("output", None, "Also write the JSON here.")
flags.mark_flags_as_required(["torch_python"])


def image_sets(count: int, calibration: int) -> dict[str, np.ndarray]:
  config = ml_collections.ConfigDict({"image_size": 0, "channels": 0})
  images = np.concatenate([data_lib.load_dataset(config, "mnist5k", split).images
                           for split in ("train", "test")])
  images = images[np.random.default_rng(0).permutation(len(images))]
  if 2 * count + calibration > len(images):
    raise app.UsageError(f"mnist5k holds {len(images)} digits, fewer than 2 * "
                         f"{count} + {calibration}")
  return {"a": images[:count], "b": images[count:2 * count, :, ::-1],
          "calibration": images[2 * count:2 * count + calibration]}


def largest_relative_error(mine: np.ndarray, reference: np.ndarray) -> float:
  return float(np.max(np.linalg.norm(mine - reference, axis=1)
                      / np.linalg.norm(reference, axis=1)))


def spread(features: np.ndarray) -> float:
  """Mean over dimensions of the std across images, relative to the features' RMS."""
  return float(features.std(axis=0).mean() / np.sqrt(np.mean(features ** 2)))


def float64_features(variables: dict, images: np.ndarray) -> np.ndarray:
  """gax's network and resize, in float64."""
  with jax.enable_x64(True):
    variables = jax.tree.map(lambda x: np.asarray(x, np.float64), variables)
    pixels = np.repeat(images, 3, axis=-1).astype(np.float64) / 255.0
    rows, columns = (inception.bilinear_matrix(n) for n in images.shape[1:3])
    x = jnp.einsum("pw,nowc->nopc", columns, jnp.einsum("oh,nhwc->nowc", rows, pixels))
    network = jax.jit(inception.FIDInceptionV3().apply)
    return np.asarray(network(variables, 2.0 * x - 1.0)[0])


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as scratch:
    scratch = Path(scratch)
    sets = image_sets(FLAGS.num_images, FLAGS.num_calibration)
    np.savez(scratch / "images.npz", **sets)
    subprocess.run([FLAGS.torch_python, str(Path(__file__).with_name(
        "pytorch_fid_reference.py")), f"--images={scratch / 'images.npz'}",
                    f"--out={scratch}", f"--batch_size={FLAGS.batch_size}"], check=True)
    reference = dict(np.load(scratch / "reference.npz"))
    variables, _ = inception_weights.load(str(scratch / "weights.pth"))
    legacy, _ = inception_weights.load(str(scratch / "weights_legacy.pth"))
  same_formats = all(np.array_equal(x, y) for x, y in
                     zip(jax.tree.leaves(variables), jax.tree.leaves(legacy)))
  float64_count = len(reference["features_a_float64"])
  float64_error = largest_relative_error(float64_features(variables, sets["a"][:float64_count]),
                                         reference["features_a_float64"])
  extractor = inception.InceptionFeatures(variables, batch_size=FLAGS.batch_size)
  extractor.features_and_logits(sets["a"][:FLAGS.batch_size])  # compiles
  start = time.perf_counter()
  features_a, logits_a = extractor.features_and_logits(sets["a"])
  seconds_a = time.perf_counter() - start
  features_b, logits_b = extractor.features_and_logits(sets["b"])
  fid_gax = metrics.fid(features_a, features_b)
  fid_torch = float(reference["fid"])
  result = {
      "benchmark": "fid_agreement", "platform": platform.processor() or platform.machine(),
      "jax": jax.__version__, "torch": str(reference["torch_version"]),
      "torch_threads": int(reference["threads"]), "images_per_set": FLAGS.num_images,
      "zip_and_legacy_files_read_the_same": same_formats,
      "pool_features_largest_relative_error": max(
          largest_relative_error(features_a, reference["features_a"]),
          largest_relative_error(features_b, reference["features_b"])),
      "logits_largest_relative_error": max(
          largest_relative_error(logits_a, reference["logits_a"]),
          largest_relative_error(logits_b, reference["logits_b"])),
      "pool_features_float32_error_in_pytorch_fid": largest_relative_error(
          reference["features_a"][:float64_count], reference["features_a_float64"]),
      "pool_features_float64_largest_relative_error": float64_error,
      "pool_features_spread_across_images": spread(reference["features_a"]),
      "fid_pytorch_fid": fid_torch, "fid_gax": fid_gax,
      "fid_relative_difference": abs(fid_gax - fid_torch) / fid_torch,
      "fid_gax_on_pytorch_fid_features": metrics.fid(reference["features_a"],
                                                     reference["features_b"]),
      "images_per_s_gax": FLAGS.num_images / seconds_a,
      "images_per_s_pytorch_fid": FLAGS.num_images / float(reference["seconds_a"]),
  }
  result["speedup_gax_over_pytorch_fid"] = (result["images_per_s_gax"]
                                            / result["images_per_s_pytorch_fid"])
  line = json.dumps(result)
  print(line)
  if FLAGS.output:
    Path(FLAGS.output).write_text(line + "\n")


if __name__ == "__main__":
  app.run(main)
