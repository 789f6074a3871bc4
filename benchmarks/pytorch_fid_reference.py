"""pytorch-fid's side of `fid_agreement.py`; runs in an environment with torch and
pytorch-fid (and without gax).

Builds pytorch-fid's own InceptionV3 with random weights (its download is skipped), gives
each batch norm a random positive shift (its scale stays 1), calibrates the batch-norm
statistics on the calibration images (train mode, cumulative averages), and then, in
eval mode, writes:
- weights.pth (torch's zip format) and weights_legacy.pth (the format before it): the
  state dict of pytorch-fid's Inception3, as its published file holds it;
- reference.npz: pool features and fc logits of image sets a and b, pytorch-fid's FID
  between them, the seconds its extraction took, and the pool features of a's first
  `--float64_images` images computed in float64 (the same network, `model.double()`).

  python benchmarks/pytorch_fid_reference.py --images=IMAGES.npz --out=DIR
"""

import argparse
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn


def _import_pytorch_fid():
  try:
    import torchvision  # noqa: F401, PLC0415
  except RuntimeError:
    # A torchvision wheel built for CUDA fails to register its C ops on a CPU-only torch;
    # pytorch-fid uses only its pure-Python Inception3, which needs none of them.
    for name in [m for m in sys.modules if m.startswith("torchvision")]:
      del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("stub")
  from pytorch_fid import fid_score, inception  # noqa: PLC0415
  return fid_score, inception


def build_random_network(inception):
  """pytorch-fid's InceptionV3([pool]) and its Inception3, with random weights."""
  built = {}
  build = inception.fid_inception_v3

  def recording_build():
    built["network"] = build()
    return built["network"]

  original_load = nn.Module.load_state_dict
  inception.load_state_dict_from_url = lambda *args, **kwargs: None
  nn.Module.load_state_dict = lambda self, state, *a, **k: (
      None if state is None else original_load(self, state, *a, **k))
  inception.fid_inception_v3 = recording_build
  try:
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]])
  finally:
    nn.Module.load_state_dict = original_load
    inception.fid_inception_v3 = build
  return model, built["network"]


def _batches(images: np.ndarray, size: int, dtype=np.float32):
  for start in range(0, len(images), size):
    chunk = images[start:start + size]
    if chunk.shape[-1] == 1:
      chunk = np.repeat(chunk, 3, axis=-1)
    yield torch.from_numpy(chunk.transpose(0, 3, 1, 2).astype(dtype) / 255.0)


def calibrate(model, network, images: np.ndarray, seed: int, batch_size: int) -> None:
  generator = torch.Generator().manual_seed(seed)
  for module in network.modules():
    if isinstance(module, nn.BatchNorm2d):
      with torch.no_grad():
        # A positive shift keeps most ReLUs open, so float32 rounding is amplified less
        # (with shift 0 float32 features differ from float64 ones by 2e-4 in torch alone).
        module.bias.copy_(0.5 + 0.1 * torch.randn(module.bias.shape, generator=generator))
      module.reset_running_stats()
      module.momentum = None  # cumulative average over the calibration batches
  model.train()
  with torch.no_grad():
    for batch in _batches(images, batch_size):
      model(batch)
  model.eval()


def extract(model, network, images: np.ndarray, batch_size: int):
  features, logits = [], []
  with torch.no_grad():
    for batch in _batches(images, batch_size):
      pool = model(batch)[0].squeeze(3).squeeze(2)
      features.append(pool.numpy())
      logits.append(network.fc(pool).numpy())
  return np.concatenate(features), np.concatenate(logits)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--images", required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--float64_images", type=int, default=64)
  args = parser.parse_args()
  fid_score, inception = _import_pytorch_fid()
  torch.manual_seed(args.seed)
  out = Path(args.out)
  images = np.load(args.images)
  model, network = build_random_network(inception)
  calibrate(model, network, images["calibration"], args.seed, args.batch_size)
  state = network.state_dict()
  torch.save(state, out / "weights.pth")
  torch.save(state, out / "weights_legacy.pth", _use_new_zipfile_serialization=False)
  start = time.perf_counter()
  features_a, logits_a = extract(model, network, images["a"], args.batch_size)
  seconds_a = time.perf_counter() - start
  features_b, logits_b = extract(model, network, images["b"], args.batch_size)
  statistics = lambda f: (np.mean(f, axis=0), np.cov(f, rowvar=False))
  fid = fid_score.calculate_frechet_distance(*statistics(features_a), *statistics(features_b))
  model.double()
  network.double()
  with torch.no_grad():
    features_64 = np.concatenate([
        model(batch)[0].squeeze(3).squeeze(2).numpy()
        for batch in _batches(images["a"][:args.float64_images], args.batch_size,
                              np.float64)])
  np.savez(out / "reference.npz", features_a=features_a, features_b=features_b,
           features_a_float64=features_64,
           logits_a=logits_a, logits_b=logits_b, fid=fid, seconds_a=seconds_a,
           threads=torch.get_num_threads(), torch_version=torch.__version__)
  print(f"pytorch-fid: FID {fid:.6f}, {len(images['a']) / seconds_a:.2f} images/s")


if __name__ == "__main__":
  main()
