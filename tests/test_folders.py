"""Folder datasets (gax/data/folders.py): layouts, labels, splits, pairs, channels and
bad files; training through them (DCGAN, CycleGAN, pix2pix)."""

import logging
import subprocess
import sys

import bad_input_cases
import jax
import ml_collections
import numpy as np
import pytest
from helpers import ROOT, load_config, read_metrics, restore_params, tiny
from image_files import class_folder, cyclegan_tree, digits, paired_folders, write
from PIL import Image

from gax import config_base, errors
from gax.data import datasets as data_lib
from gax.data import folders
from gax.training import train


def data_config(**overrides) -> ml_collections.ConfigDict:
  config = config_base.base_config().data
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory):
  return class_folder(tmp_path_factory.mktemp("digits"), 2000)


def test_a_folder_of_pngs_and_jpegs_trains_through_gax_main(digit_folder, tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "gax.main",
       f"--config=configs/dcgan_mnist.py:dataset=folder:{digit_folder}",
       f"--workdir={tmp_path}", "--config.num_train_steps=3", "--config.batch_size=16",
       "--config.log_every=1", "--config.sample_every=3", "--config.num_samples=4",
       "--config.health.real_examples=0"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Input pipeline: " in result.stderr and "in memory" in result.stderr
  assert [r["step"] for r in read_metrics(tmp_path) if "d_loss" in r] == [1, 2, 3]


def test_labels_come_from_subfolders_and_the_hash_split_holds_a_tenth_out(digit_folder):
  train_set = data_lib.load_dataset(data_config(), f"folder:{digit_folder}", "train")
  test_set = data_lib.load_dataset(data_config(), f"folder:{digit_folder}", "test")
  assert len(train_set) + len(test_set) == 2000
  assert 150 < len(test_set) < 250
  assert train_set.num_classes == 10 and train_set.images.shape[1:] == (28, 28, 1)
  images, labels = digits(2000)
  # A PNG decodes to the very pixels written, labelled with its folder's class.
  png = sorted(digit_folder.rglob("*.png"))[0]
  index = int(png.stem)
  both = [train_set, test_set]
  found = [(im, label) for d in both for im, label in zip(d.images, d.labels)
           if np.array_equal(im[..., 0], images[index])]
  assert found and found[0][1] == labels[index] == int(png.parent.name)
  # The split is a function of the path alone: the held-out files do not move.
  again = data_lib.load_dataset(data_config(), f"folder:{digit_folder}", "test")
  np.testing.assert_array_equal(again.images, test_set.images)


def test_split_folders_channels_and_transparency(tmp_path):
  write(np.full((6, 6, 3), (255, 0, 0), np.uint8), tmp_path / "train" / "red.png")
  rgba = np.zeros((6, 6, 4), np.uint8)  # fully transparent: white once composited
  write(rgba, tmp_path / "train" / "clear.png")
  write(np.full((6, 6), 128, np.uint8), tmp_path / "test" / "grey.jpg")
  name = f"folder:{tmp_path}"
  rgb = data_lib.load_dataset(data_config(channels=3), name, "train")
  assert rgb.images.shape == (2, 6, 6, 3) and rgb.labels is None
  np.testing.assert_array_equal(rgb.images[0], 255)  # clear.png sorts first
  np.testing.assert_array_equal(rgb.images[1], np.full((6, 6, 3), (255, 0, 0)))
  grey = data_lib.load_dataset(data_config(channels=1, image_size=4), name, "train")
  assert grey.images.shape == (2, 4, 4, 1)
  assert data_lib.load_dataset(data_config(), name, "test").images.shape == (1, 6, 6, 1)
  with pytest.raises(errors.DataError, match="no val/ folder"):
    data_lib.load_dataset(data_config(), name, "val")


@pytest.mark.parametrize("side_by_side", [False, True])
def test_paired_layouts_keep_each_pair_together(tmp_path, side_by_side):
  root = paired_folders(tmp_path, 60, side_by_side)
  config = data_config(pairs="side_by_side" if side_by_side else "auto")
  dataset = data_lib.load_dataset(config, f"folder:{root}", "train")
  assert len(dataset) == 54 and dataset.images_b is not None
  np.testing.assert_array_equal(dataset.images_b, 255 - dataset.images)


def test_pix2pix_trains_on_both_paired_layouts(tmp_path):
  # The same pairs in either layout: the two runs train on the same data, step for step.
  for layout in ("folders", "side_by_side"):
    root = paired_folders(tmp_path / layout, 40, layout == "side_by_side")
    config = tiny(load_config("pix2pix_folder", f"dataset=folder:{root},layout={layout}"), 2)
    train.train_and_evaluate(config, str(tmp_path / f"run_{layout}"))
  assert read_metrics(tmp_path / "run_folders") == read_metrics(tmp_path / "run_side_by_side")
  for a, b in zip(jax.tree.leaves(restore_params(tmp_path / "run_folders", 2)),
                  jax.tree.leaves(restore_params(tmp_path / "run_side_by_side", 2)),
                  strict=True):
    np.testing.assert_array_equal(a, b)


def test_cyclegan_reads_a_train_a_train_b_tree(tmp_path):
  root = cyclegan_tree(tmp_path / "tree", 80)
  config = tiny(load_config("cyclegan_horse2zebra", f"dataset=folder:{root}"), 2)
  run = train.create_run(config)
  counts = {name: len(array) for name, array in run.batches.arrays.items()}
  assert counts == {"a": 36, "b": 36}
  final = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert np.isfinite(final["g_loss"])


def test_undecodable_files_are_skipped_and_counted_up_to_the_allowed_share(tmp_path,
                                                                          caplog):
  images, _ = digits(20)
  for i, image in enumerate(images):
    write(image, tmp_path / "train" / f"{i:02d}.png")
  (tmp_path / "train" / "05.png").write_bytes(b"not an image")
  truncated = (tmp_path / "train" / "07.png").read_bytes()
  (tmp_path / "train" / "07.png").write_bytes(truncated[:len(truncated) // 2])
  name = f"folder:{tmp_path}"
  dataset = data_lib.load_dataset(data_config(max_bad_fraction=0.2), name, "train")
  assert len(dataset) == 18
  logged = caplog.text
  assert "05.png" in logged and "07.png" in logged
  with pytest.raises(errors.DataError, match=r"cannot be (read|decoded)"):
    data_lib.load_dataset(data_config(max_bad_fraction=0.01), name, "train")


def test_images_of_mixed_sizes_need_a_resize_rule(tmp_path):
  write(np.zeros((8, 8), np.uint8), tmp_path / "a.png")
  write(np.zeros((8, 12), np.uint8), tmp_path / "b.png")
  name = f"folder:{tmp_path}"
  with pytest.raises(errors.DataError, match="differ in size.*data.image_size"):
    data_lib.load_dataset(data_config(), name, "train")
  resized = data_lib.load_dataset(data_config(image_size=8), name, "train")
  assert resized.images.shape[1:] == (8, 8, 1)


def test_one_bit_and_palette_images_decode_as_grey(tmp_path):
  # A 1-bit PNG and a palette GIF decode like any grey or colour image.
  Image.fromarray(np.eye(8, dtype=bool)).save(tmp_path / "bits.png")
  Image.fromarray(np.eye(8, dtype=np.uint8) * 200).convert("P").save(tmp_path / "pal.gif")
  dataset = data_lib.load_dataset(data_config(channels=1), f"folder:{tmp_path}", "train")
  assert dataset.images.dtype == np.uint8 and dataset.images.shape[1:] == (8, 8, 1)
  assert jax.numpy.asarray(dataset.images).max() > 0


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory):
  return bad_input_cases.folder_cases(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("index", range(6))
def test_a_folder_that_cannot_be_read_is_one_clear_error(bad_folders, index):
  what, name, overrides, message = bad_folders[index]
  config = load_config(*name.split(":", 1))
  config_base.apply_overrides(config, overrides)
  with pytest.raises(errors.DataError) as raised:
    train.create_run(config)
  assert message in str(raised.value), what
  assert "\n" not in str(raised.value)


def test_gax_main_refuses_unpaired_names_in_one_line_and_keeps_the_workdir(bad_folders,
                                                                           tmp_path):
  _, name, _, message = bad_folders[2]
  config, arg = name.split(":", 1)
  (tmp_path / "notes.txt").write_text("kept")
  result = subprocess.run(
      [sys.executable, "-m", "gax.main", f"--config=configs/{config}.py:{arg}",
       f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("gax: error")]
  assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr
  assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_sixteen_bit_images_are_read_at_their_true_values(tmp_path):
  values = (np.arange(8 * 8).reshape(8, 8) * 1000).astype(np.uint16)  # 0 .. 63,000
  for split in ("train", "test"):
    for i in range(4):
      write(values, tmp_path / split / f"{i}.png")
  config = load_config("dcgan_mnist").data
  dataset = data_lib.load_dataset(config, f"folder:{tmp_path}", "train")
  expected = np.round(values / 257.0).astype(np.uint8)
  assert dataset.images.shape == (4, 8, 8, 1)
  np.testing.assert_array_equal(dataset.images[0, ..., 0], expected)
  np.testing.assert_array_equal(folders.read_folder(tmp_path / "train")[0, ..., 0],
                                expected)  # gax.fid's reading


def test_a_decompression_bomb_among_images_is_skipped_and_named(tmp_path, caplog):
  caplog.set_level(logging.WARNING, logger="absl")
  for i in range(20):
    write(np.full((8, 8), i, np.uint8), tmp_path / "train" / f"{i:02d}.png")
  (tmp_path / "train" / "bomb.png").write_bytes(bad_input_cases.bomb_png(100_000, 100_000))
  config = load_config("dcgan_mnist").data
  config.max_bad_fraction = 0.1
  dataset = data_lib.load_dataset(config, f"folder:{tmp_path}", "train")
  assert len(dataset) == 20 and "bomb.png" in caplog.text
