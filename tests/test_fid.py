"""`python -m gax.fid`, run as a user runs it: folders, .npz files, statistics, bad input;
and `eval.features="inception"` inside an evaluation, with its cached reference."""

import json
import subprocess
import sys
from pathlib import Path

import bad_input_cases
import numpy as np
import pytest
import torch_files
from PIL import Image

from gax.data import datasets as data_lib
from gax.evaluation import evaluator, inception, inception_weights

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
  path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
  torch_files.save_zip(path, torch_files.random_state_dict())
  return path


def write_folder(folder: Path, images: np.ndarray, suffix: str = ".png") -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  for i, image in enumerate(images):
    nested = folder / f"class_{i % 2}"  # found recursively
    nested.mkdir(exist_ok=True)
    Image.fromarray(image).save(nested / f"{i:03d}{suffix}")
  return folder


def gax_fid(*args, weights: Path | None = None) -> subprocess.CompletedProcess:
  flags = [f"--weights={weights}"] if weights else []
  return subprocess.run([sys.executable, "-m", "gax.fid", *map(str, args), *flags],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)


def result_of(run: subprocess.CompletedProcess) -> dict:
  assert run.returncode == 0, run.stderr[-2000:]
  return json.loads(run.stdout.strip().splitlines()[-1])


def refusal(run: subprocess.CompletedProcess) -> str:
  errors = [line for line in run.stderr.splitlines() if line.startswith("gax: error")]
  assert run.returncode == 2 and len(errors) == 1, run.stderr[-2000:]
  assert "Traceback" not in run.stderr
  return errors[0]


def test_identical_folders_have_fid_zero_and_every_metric_runs(tmp_path, weights):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (12, 20, 20, 3), np.uint8)
  folder_a = write_folder(tmp_path / "a", images)
  folder_b = write_folder(tmp_path / "b", images, ".bmp")  # lossless too
  result = result_of(gax_fid(folder_a, folder_b, "--metrics=fid,kid,pr,dc,is",
                             "--batch_size=8", weights=weights))
  assert abs(result["fid"]) < 1e-3
  assert result["num_a"] == result["num_b"] == 12
  assert result["precision"] == result["recall"] == 1.0
  assert result["density"] == pytest.approx(1.0) and result["coverage"] == 1.0
  assert result["is_a"] == pytest.approx(result["is_b"], rel=1e-4)
  assert result["weights_sha256"] == inception_weights.sha256(weights)


def test_saved_statistics_give_the_fid_that_the_images_give(tmp_path, weights):
  rng = np.random.default_rng(1)
  grey = rng.integers(0, 256, (10, 16, 16, 1), np.uint8)
  other = rng.integers(0, 128, (10, 16, 16, 1), np.uint8)
  np.savez(tmp_path / "a.npz", images=grey)
  np.savez(tmp_path / "b.npz", images=other)
  direct = result_of(gax_fid(tmp_path / "a.npz", tmp_path / "b.npz", weights=weights))
  saved = result_of(gax_fid("--save_stats", "--save_features", tmp_path / "a.npz",
                            tmp_path / "a_stats.npz", weights=weights))
  assert saved["num_images"] == 10
  with np.load(tmp_path / "a_stats.npz") as stats:
    assert stats["mu"].shape == (2048,) and stats["sigma"].shape == (2048, 2048)
    assert stats["features"].shape == (10, 2048)
  via_stats = result_of(gax_fid(tmp_path / "a_stats.npz", tmp_path / "b.npz",
                                "--metrics=fid,dc", weights=weights))
  assert via_stats["fid"] == pytest.approx(direct["fid"], rel=1e-5)
  # Saved again from the saved file: gax.fid reads back what it wrote, features included.
  again = result_of(gax_fid("--save_stats", "--save_features", tmp_path / "a_stats.npz",
                            tmp_path / "again.npz", weights=weights))
  assert again["num_images"] == 10
  with np.load(tmp_path / "a_stats.npz") as first, np.load(tmp_path / "again.npz") as second:
    for name in ("mu", "sigma", "features"):
      np.testing.assert_array_equal(first[name], second[name])
  assert result_of(gax_fid(tmp_path / "again.npz", tmp_path / "a_stats.npz",
                           "--metrics=fid,kid"))["fid"] == pytest.approx(0.0, abs=1e-4)


def test_two_gaussians_given_as_statistics_give_the_closed_form(tmp_path):
  # Same eigenvectors: FID = |m1 - m2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2)).
  rng = np.random.default_rng(2)
  dim = 64
  rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  s1, s2 = rng.uniform(0.5, 2.0, dim), rng.uniform(0.5, 2.0, dim)
  m1, m2 = rng.normal(size=dim), rng.normal(size=dim)
  np.savez(tmp_path / "one.npz", mu=m1, sigma=rotation @ np.diag(s1) @ rotation.T)
  np.savez(tmp_path / "two.npz", mu=m2, sigma=rotation @ np.diag(s2) @ rotation.T)
  expected = np.sum((m1 - m2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
  result = result_of(gax_fid(tmp_path / "one.npz", tmp_path / "two.npz"))  # no weights
  assert result["fid"] == pytest.approx(expected, rel=1e-4)
  assert result["num_a"] is None and result["weights_sha256"] is None


def test_bad_input_is_one_line_and_exit_2(tmp_path):
  for what, argv, message in bad_input_cases.fid_cases(tmp_path):
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert message in refusal(run), what


def test_an_evaluation_in_inception_features_caches_its_reference(tmp_path, weights,
                                                                  monkeypatch):
  from gax import variants
  config = variants.base_config("gan")
  config.dataset = "fake"
  config.data.num_fake_examples = 30  # 6 held out: enough for k = 5 neighbours
  config.eval.features = "inception"
  config.eval.inception_weights = str(weights)
  config.eval.cache_dir = str(tmp_path / "cache")
  config.eval.num_samples = 6
  config.eval.kid_subset_size = 4
  config.eval.parzen = False
  config.eval.is_splits = 2
  calls = []
  extract = inception.InceptionFeatures.features_and_logits
  monkeypatch.setattr(inception.InceptionFeatures, "features_and_logits",
                      lambda self, images: calls.append(len(images)) or extract(self, images))
  source = lambda split: data_lib.Source(config.dataset, split)
  first = evaluator.create_dataset_evaluator(config, source("train"), source("test"))
  floor = first.real_floor()
  assert {"density", "coverage", "inception_score"} <= set(floor)
  assert "class_histogram" not in floor  # ImageNet's classes are not the dataset's
  first_calls = len(calls)
  assert len(list((tmp_path / "cache" / "features").glob("*.npz"))) == 2
  again = evaluator.create_dataset_evaluator(config, source("train"), source("test"))
  assert again.real_floor()["fid"] == pytest.approx(floor["fid"])
  assert len(calls) == first_calls  # both reference sets came from the cache
