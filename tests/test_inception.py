"""pytorch-fid's InceptionV3 in Flax: its size, its weight files, its resize, its features.

Agreement with pytorch-fid itself needs torch: `benchmarks/fid_agreement.py`.
"""

import logging
import pickle
import zipfile

import jax
import numpy as np
import pytest
import torch_files

from gax.evaluation import inception, inception_weights

# pytorch-fid 0.3.0's fid_inception_v3() (torchvision 0.28): sum(p.numel() for p in
# network.parameters()) and len(network.state_dict()), measured in an environment with
# torch; the state dict adds one num_batches_tracked per batch norm.
PYTORCH_FID_PARAMETERS = 23_850_960
PYTORCH_FID_STATE_DICT_ENTRIES = 566
NUM_BATCH_NORMS = 94


@pytest.fixture(scope="module")
def weight_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("weights") / "random_inception.pth"
  torch_files.save_zip(path, torch_files.random_state_dict())
  return path


def test_the_network_has_pytorch_fids_parameters():
  shapes = inception.variable_shapes()
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))
  assert count(shapes["params"]) == PYTORCH_FID_PARAMETERS
  assert (len(jax.tree.leaves(shapes)) + NUM_BATCH_NORMS
          == PYTORCH_FID_STATE_DICT_ENTRIES)
  assert shapes["params"]["fc"]["kernel"].shape == (2048, 1008)


@pytest.mark.parametrize("save", [torch_files.save_zip, torch_files.save_legacy],
                         ids=["zip", "legacy"])
def test_state_dicts_round_trip_in_both_torch_formats(tmp_path, save):
  rng = np.random.default_rng(1)
  arrays = {"a.weight": rng.normal(size=(4, 3, 2, 2)).astype(np.float32),
            "b.bias": rng.normal(size=(5,)).astype(np.float32),
            "c.num_batches_tracked": np.zeros((), np.float32)}
  save(tmp_path / "w.pth", arrays)
  read = inception_weights.read_state_dict(tmp_path / "w.pth")
  assert set(read) == set(arrays)
  for name, array in arrays.items():
    np.testing.assert_array_equal(read[name], array)


def test_a_view_into_a_shared_storage_is_rebuilt_with_its_offset_and_strides(tmp_path):
  storage = np.arange(12, dtype=np.float32)
  tensors = {"whole": ("0", 0, (3, 4), (4, 1)), "transposed": ("0", 0, (4, 3), (1, 4)),
             "tail": ("0", 6, (2, 3), (3, 1))}
  torch_files.save_zip(tmp_path / "w.pth", None, tensors, {"0": 12},
                       {"0": storage.tobytes()})
  read = inception_weights.read_state_dict(tmp_path / "w.pth")
  np.testing.assert_array_equal(read["whole"], storage.reshape(3, 4))
  np.testing.assert_array_equal(read["transposed"], storage.reshape(3, 4).T)
  np.testing.assert_array_equal(read["tail"], storage[6:].reshape(2, 3))


def test_the_loader_places_every_tensor_of_a_full_weight_file(weight_file, tmp_path):
  tensors = torch_files.random_state_dict()
  variables, digest = inception_weights.load(str(weight_file))
  np.testing.assert_array_equal(  # [out, in, kh, kw] -> [kh, kw, in, out]
      variables["params"]["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"],
      tensors["Mixed_6b.branch7x7_2.conv.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(variables["batch_stats"]["Conv2d_1a_3x3"]["bn"]["var"],
                                tensors["Conv2d_1a_3x3.bn.running_var"])
  np.testing.assert_array_equal(variables["params"]["fc"]["kernel"],
                                tensors["fc.weight"].T)
  assert jax.tree.map(np.shape, variables) == jax.tree.map(np.shape,
                                                           inception.variable_shapes())
  assert digest == inception_weights.sha256(weight_file)
  inception_weights.save_npz(tmp_path / "w.npz", variables)
  again, _ = inception_weights.load(str(tmp_path / "w.npz"))
  for x, y in zip(jax.tree.leaves(variables), jax.tree.leaves(again)):
    np.testing.assert_array_equal(x, y)


def test_weights_other_than_the_published_file_are_a_warning(weight_file, caplog):
  with caplog.at_level(logging.WARNING):
    inception_weights.load(str(weight_file))
  assert "not comparable with papers" in caplog.text
  assert inception_weights.PUBLISHED_SHA256_PREFIX in caplog.text


def test_the_environment_variable_names_the_file(weight_file, monkeypatch):
  monkeypatch.setenv(inception_weights.ENVIRONMENT_VARIABLE, str(weight_file))
  assert inception_weights.resolve_path(None) == weight_file
  monkeypatch.delenv(inception_weights.ENVIRONMENT_VARIABLE)
  with pytest.raises(inception_weights.WeightFileError, match="--weights=PATH"):
    inception_weights.resolve_path(None)


def _refusal(path) -> str:
  with pytest.raises(inception_weights.WeightFileError) as raised:
    inception_weights.load(str(path))
  assert "\n" not in str(raised.value)
  return str(raised.value)


def test_a_file_of_another_network_is_refused_in_one_line(tmp_path):
  tensors = torch_files.random_state_dict()
  del tensors["Mixed_7c.branch_pool.conv.weight"]
  tensors["AuxLogits.fc.weight"] = np.zeros((1000, 768), np.float32)
  torch_files.save_zip(tmp_path / "other.pth", tensors)
  message = _refusal(tmp_path / "other.pth")
  assert "is not pytorch-fid's InceptionV3" in message
  assert "lacks 1 of its 472 tensors (first: Mixed_7c.branch_pool.conv.weight)" in message
  assert "holds 1 tensors it has not (first: AuxLogits.fc.weight)" in message
  tensors = torch_files.random_state_dict()
  tensors["fc.weight"] = np.zeros((1000, 2048), np.float32)
  torch_files.save_zip(tmp_path / "classes.pth", tensors)
  assert "fc.weight has shape (1000, 2048), the network's is (1008, 2048)" in _refusal(
      tmp_path / "classes.pth")


@pytest.mark.parametrize("save", [torch_files.save_zip, torch_files.save_legacy],
                         ids=["zip", "legacy"])
def test_a_truncated_file_is_refused_in_one_line(tmp_path, save):
  save(tmp_path / "w.pth", {"a.weight": np.ones((64, 64), np.float32)})
  payload = (tmp_path / "w.pth").read_bytes()
  (tmp_path / "cut.pth").write_bytes(payload[:len(payload) // 2])
  assert "is truncated or not a PyTorch state dict" in _refusal(tmp_path / "cut.pth")


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
  class Exploit:
    def __reduce__(self):
      return (print, ("this must not run",))

  with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
    archive.writestr("archive/data.pkl", pickle.dumps({"x": Exploit()}, protocol=2))
  assert "print, which a state dict does not" in _refusal(tmp_path / "evil.pth")


def test_the_resize_matrix_is_torchs_bilinear_without_align_corners():
  # torch.nn.functional.interpolate(torch.tensor([[[[0., 1.]]]]), size=(1, 4),
  # mode="bilinear", align_corners=False) gives [0, 0.25, 0.75, 1].
  np.testing.assert_allclose(inception.bilinear_matrix(2, 4) @ np.array([0.0, 1.0]),
                             [0.0, 0.25, 0.75, 1.0])
  np.testing.assert_allclose(inception.bilinear_matrix(299), np.eye(299), atol=1e-12)
  down = inception.bilinear_matrix(598)  # no antialiasing: two taps per output
  assert (np.count_nonzero(down, axis=1) <= 2).all()
  np.testing.assert_allclose(down.sum(axis=1), 1.0)
  np.testing.assert_allclose(inception.bilinear_matrix(28).sum(axis=1), 1.0)


def test_features_do_not_depend_on_batching_and_both_resizes_run(weight_file):
  variables, _ = inception_weights.load(str(weight_file))
  images = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 1), np.uint8)
  features, logits = inception.InceptionFeatures(variables, batch_size=4) \
      .features_and_logits(images)
  again, _ = inception.InceptionFeatures(variables, batch_size=8).features_and_logits(
      images[::-1])
  assert features.shape == (5, 2048) and logits.shape == (5, 1008)
  np.testing.assert_allclose(again[::-1], features, rtol=1e-4, atol=1e-6)
  spread = np.linalg.norm(features - features.mean(axis=0), axis=1)
  assert spread.min() > 0.01 * np.linalg.norm(features, axis=1).max()  # input-dependent
  bicubic, probs = inception.InceptionFeatures(variables, "pil_bicubic", batch_size=8)(
      images[:2])
  assert bicubic.shape == (2, 2048)
  np.testing.assert_allclose(probs.sum(axis=1), 1.0)


def test_pil_bicubic_resize_is_clean_fids():
  from PIL import Image
  image = np.random.default_rng(0).integers(0, 256, (1, 7, 9, 3), np.uint8)
  resized = inception.pil_bicubic_resize(image, 20)
  channel = Image.fromarray(image[0, ..., 1].astype(np.float32), mode="F")
  expected = np.clip(np.asarray(channel.resize((20, 20), Image.BICUBIC)), 0, 255)
  np.testing.assert_array_equal(resized[0, ..., 1], expected)


def test_eight_devices_give_one_devices_features(weight_file, tmp_path):
  import os
  import subprocess
  import sys
  images = np.random.default_rng(4).integers(0, 256, (6, 12, 12, 3), np.uint8)
  np.save(tmp_path / "images.npy", images)
  script = (
      "import sys, numpy as np, jax\n"
      "from gax.evaluation import inception, inception_weights\n"
      "assert jax.device_count() == 8\n"
      "variables, _ = inception_weights.load(sys.argv[1])\n"
      "extract = inception.InceptionFeatures(variables, batch_size=4)\n"  # rounded up to 8
      "features, _ = extract.features_and_logits(np.load(sys.argv[2]))\n"
      "np.save(sys.argv[3], features)\n")
  environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  subprocess.run([sys.executable, "-c", script, str(weight_file),
                  str(tmp_path / "images.npy"), str(tmp_path / "eight.npy")],
                 env=environment, check=True, timeout=600)
  variables, _ = inception_weights.load(str(weight_file))
  one, _ = inception.InceptionFeatures(variables, batch_size=8).features_and_logits(images)
  np.testing.assert_allclose(np.load(tmp_path / "eight.npy"), one, rtol=1e-4, atol=1e-6)
