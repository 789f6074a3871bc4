"""pytorch-fid's InceptionV3 weights, read from the user's own file without torch.

gax ships no weights and downloads nothing. `load(path)` reads pytorch-fid's
`pt_inception-2015-12-05-6726825d.pth` (or any state dict of the same network: saved by
torch in its zip format or in the legacy format before it, or as an `.npz` with the same
names), checks every tensor's name and shape against `gax.inception.FIDInceptionV3`, and
returns the network's Flax variables. The pickle is read by an unpickler that knows only
the few globals a state dict holds (torch's tensor rebuild and storage types, and
OrderedDict), so a file cannot run code.

A SHA-256 that does not start with the published file's prefix (the 6726825d in its name,
torch hub's convention) is a warning: the same loader reads weights saved elsewhere, and
random ones in tests, but FIDs measured with them are not comparable with papers.
"""

import collections
import hashlib
import io
import os
import pickle
import struct
import zipfile
from pathlib import Path

import jax
import numpy as np
from absl import logging

from gax import errors
from gax.evaluation import inception

PUBLISHED_NAME = "pt_inception-2015-12-05-6726825d.pth"
PUBLISHED_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                 + PUBLISHED_NAME)
PUBLISHED_SHA256_PREFIX = "6726825d"
ENVIRONMENT_VARIABLE = "GAX_INCEPTION_WEIGHTS"

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class WeightFileError(errors.DataError):
  """A weight file that is missing, unreadable or of another network."""


def resolve_path(path: str | None) -> Path:
  """The weight file: `path`, else $GAX_INCEPTION_WEIGHTS; a missing one is an error that
  says where the file comes from."""
  path = path or os.environ.get(ENVIRONMENT_VARIABLE)
  if not path:
    raise WeightFileError(
        f"InceptionV3 needs a weight file: pass --weights=PATH (eval.inception_weights in "
        f"a config) or set ${ENVIRONMENT_VARIABLE}; pytorch-fid's is {PUBLISHED_URL}")
  if not Path(path).is_file():
    raise WeightFileError(f"InceptionV3 weight file {path} does not exist or is not a file")
  return Path(path)


def sha256(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class _Storage:
  """A storage named in the pickle; its bytes are attached once the file gives them."""

  def __init__(self, dtype, numel: int):
    self.dtype, self.numel, self.array = np.dtype(dtype), int(numel), None


class _StorageType:
  def __init__(self, name: str):
    self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor(storage: _Storage, offset, size, stride, *unused):
  return ("tensor", storage, int(offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
  """Knows OrderedDict, torch's tensor rebuild and its storage types, nothing else."""

  def __init__(self, file, storages: dict[str, _Storage]):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    if (module, name) == ("collections", "OrderedDict"):
      return collections.OrderedDict
    if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
      return _rebuild_tensor
    if module == "torch" and name in _STORAGE_DTYPES:
      return _StorageType(name)
    raise pickle.UnpicklingError(f"holds {module}.{name}, which a state dict does not")

  def persistent_load(self, pid):
    # zip: ('storage', type, key, location, numel); legacy adds a view's metadata.
    if not isinstance(pid, tuple) or pid[0] != "storage":
      raise pickle.UnpicklingError(f"unknown persistent id {pid!r:.60}")
    storage_type, key, numel = pid[1], str(pid[2]), pid[4]
    if len(pid) > 5 and pid[5] is not None:
      raise pickle.UnpicklingError("holds a storage view, which a state dict does not")
    if key not in self._storages:
      self._storages[key] = _Storage(storage_type.dtype, numel)
    return self._storages[key]


def _tensors(state: dict) -> dict[str, np.ndarray]:
  """The unpickled state dict's tensors as NumPy arrays (copies, in C order)."""
  if not isinstance(state, dict):
    raise pickle.UnpicklingError(f"holds a {type(state).__name__}, not a state dict")
  arrays = {}
  for name, value in state.items():
    if not (isinstance(value, tuple) and value and value[0] == "tensor"):
      raise pickle.UnpicklingError(f"entry {name!r} is not a tensor")
    _, storage, offset, size, stride = value
    if storage.array is None or len(storage.array) < storage.numel:
      raise EOFError(f"the data of {name!r} is missing")
    itemsize = storage.dtype.itemsize
    if size and offset + sum((n - 1) * s for n, s in zip(size, stride)) >= storage.numel:
      raise pickle.UnpicklingError(f"entry {name!r} reaches past its storage")
    arrays[name] = np.lib.stride_tricks.as_strided(
        storage.array[offset:], size, [s * itemsize for s in stride]).copy()
  return arrays


def _read_zip(path: Path) -> dict[str, np.ndarray]:
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
    pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pickles) != 1:
      raise pickle.UnpicklingError("is a zip file without torch's data.pkl")
    prefix = pickles[0][:-len("data.pkl")]
    byteorder = prefix + "byteorder"
    if byteorder in names and archive.read(byteorder).decode().strip() != "little":
      raise pickle.UnpicklingError("is saved big-endian")
    storages: dict[str, _Storage] = {}
    state = _StateDictUnpickler(io.BytesIO(archive.read(pickles[0])), storages).load()
    for key, storage in storages.items():
      raw = archive.read(f"{prefix}data/{key}")
      storage.array = np.frombuffer(raw, storage.dtype, count=len(raw) // storage.dtype.itemsize)
  return _tensors(state)


def _read_legacy(path: Path) -> dict[str, np.ndarray]:
  """torch.save before its zip format: pickled magic, version and system info, the state
  dict, its storage keys, then each storage as an int64 count and its bytes."""
  with open(path, "rb") as f:
    storages: dict[str, _Storage] = {}

    def next_pickle():  # each of the file's pickles, read without running code
      return _StateDictUnpickler(f, storages).load()

    if next_pickle() != _LEGACY_MAGIC:
      raise pickle.UnpicklingError("is neither a zip nor a legacy torch file")
    next_pickle()  # protocol version
    next_pickle()  # system info (byte order, type sizes)
    state = next_pickle()
    for key in next_pickle():
      storage = storages[str(key)]
      (count,) = struct.unpack("<q", f.read(8))
      raw = f.read(count * storage.dtype.itemsize)
      storage.array = np.frombuffer(raw, storage.dtype, count=len(raw) // storage.dtype.itemsize)
  return _tensors(state)


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
  """A torch state dict (zip or legacy format) or an .npz, as NumPy arrays by name."""
  try:
    if path.suffix == ".npz":
      with np.load(path, allow_pickle=False) as arrays:
        return {name: arrays[name] for name in arrays.files}
    if zipfile.is_zipfile(path):
      return _read_zip(path)
    return _read_legacy(path)
  except (EOFError, zipfile.BadZipFile, struct.error, pickle.UnpicklingError, ValueError,
          KeyError, OSError, TypeError, IndexError) as e:
    raise WeightFileError(
        f"InceptionV3 weight file {path} is truncated or not a PyTorch state dict "
        f"({type(e).__name__}: {str(e) or 'no detail'})") from None


def _torch_name(path: tuple[str, ...]) -> tuple[str, str]:
  """A Flax variable's path -> (torch state dict name, how to convert)."""
  *modules, leaf = path
  prefix = ".".join(modules)
  if modules[-1] == "fc":
    return f"{prefix}.{'weight' if leaf == 'kernel' else 'bias'}", (
        "transpose" if leaf == "kernel" else "same")
  names = {"kernel": ("weight", "conv"), "scale": ("weight", "same"),
           "bias": ("bias", "same"), "mean": ("running_mean", "same"),
           "var": ("running_var", "same")}
  name, conversion = names[leaf]
  return f"{prefix}.{name}", conversion


def _convert(array: np.ndarray, conversion: str) -> np.ndarray:
  if conversion == "conv":  # [out, in, kh, kw] -> [kh, kw, in, out]
    return array.transpose(2, 3, 1, 0)
  if conversion == "transpose":
    return array.T
  return array


def _expected() -> dict[str, tuple[tuple[str, ...], tuple[int, ...], str]]:
  """torch name -> (Flax path, torch shape, conversion) for every variable."""
  expected = {}
  for key_path, leaf in jax.tree_util.tree_flatten_with_path(inception.variable_shapes())[0]:
    path = tuple(k.key for k in key_path)
    name, conversion = _torch_name(path[1:])
    shape = leaf.shape
    if conversion == "conv":
      shape = (shape[3], shape[2], shape[0], shape[1])
    elif conversion == "transpose":
      shape = shape[::-1]
    expected[name] = (path, shape, conversion)
  return expected


def to_variables(tensors: dict[str, np.ndarray], source: str) -> dict:
  """Torch-named tensors -> FIDInceptionV3's variables; one line says what does not fit."""
  expected = _expected()
  tensors = {k: v for k, v in tensors.items() if not k.endswith(".num_batches_tracked")}
  missing = [name for name in expected if name not in tensors]
  extra = [name for name in tensors if name not in expected]
  if missing or extra:
    problems = []
    if missing:
      problems.append(f"lacks {len(missing)} of its {len(expected)} tensors "
                      f"(first: {missing[0]})")
    if extra:
      problems.append(f"holds {len(extra)} tensors it has not (first: {extra[0]})")
    raise WeightFileError(f"{source} is not pytorch-fid's InceptionV3: it "
                          + " and ".join(problems))
  variables: dict = {}
  for name, (path, shape, conversion) in expected.items():
    array = tensors[name]
    if tuple(array.shape) != shape:
      raise WeightFileError(
          f"{source} is not pytorch-fid's InceptionV3: {name} has shape "
          f"{tuple(array.shape)}, the network's is {shape}")
    if not np.issubdtype(array.dtype, np.floating):
      raise WeightFileError(f"{source}: {name} holds {array.dtype}, not floats")
    node = variables
    for key in path[:-1]:
      node = node.setdefault(key, {})
    node[path[-1]] = np.ascontiguousarray(_convert(array, conversion), np.float32)
  return variables


def load(path: str | None = None) -> tuple[dict, str]:
  """(FIDInceptionV3 variables, the file's SHA-256) from `path` or $GAX_INCEPTION_WEIGHTS."""
  resolved = resolve_path(path)
  digest = sha256(resolved)
  if not digest.startswith(PUBLISHED_SHA256_PREFIX):
    logging.warning(
        "InceptionV3 weights %s: SHA-256 %s... is not that of pytorch-fid's %s (%s...); "
        "the network fits, but FIDs measured with these weights are not comparable with "
        "papers", resolved, digest[:8], PUBLISHED_NAME, PUBLISHED_SHA256_PREFIX)
  return to_variables(read_state_dict(resolved), str(resolved)), digest


def save_npz(path: Path, variables: dict) -> None:
  """FIDInceptionV3 variables as an .npz under torch's names (what `load` reads back)."""
  arrays = {}
  for name, (flax_path, _, conversion) in _expected().items():
    value = variables
    for key in flax_path:
      value = value[key]
    value = np.asarray(value)
    arrays[name] = (value.transpose(3, 2, 0, 1) if conversion == "conv" else
                    value.T if conversion == "transpose" else value)
  np.savez(path, **arrays)
