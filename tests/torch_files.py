"""Writes state dicts as torch.save does, without torch: the zip format (torch >= 1.6) and
the legacy one before it, for the weight loader's tests.

Both write the pickle that torch's own files hold (as `pickletools.dis` shows them; the
loader reads files torch itself wrote in `benchmarks/fid_agreement.py`): an OrderedDict
whose values are `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False,
OrderedDict())`, each storage a persistent id ('storage', torch.FloatStorage, key,
'cpu', numel).
"""

import io
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from gax.evaluation import inception_weights

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def _global(module: str, name: str) -> bytes:
  return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _unicode(text: str) -> bytes:
  data = text.encode()
  return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
  return pickle.BININT + struct.pack("<i", value)


def _tuple(items: list[bytes]) -> bytes:
  return pickle.MARK + b"".join(items) + pickle.TUPLE


def _state_dict_pickle(tensors: dict[str, tuple[str, int, tuple, tuple]],
                       storages: dict[str, int], legacy: bool) -> bytes:
  """tensors: name -> (storage key, offset, size, stride); storages: key -> numel."""
  out = [pickle.PROTO + b"\x02", _global("collections", "OrderedDict"),
         pickle.EMPTY_TUPLE, pickle.REDUCE, pickle.MARK]
  for name, (key, offset, size, stride) in tensors.items():
    persistent = [_unicode("storage"), _global("torch", "FloatStorage"), _unicode(key),
                  _unicode("cpu"), _int(storages[key])]
    if legacy:
      persistent.append(pickle.NONE)  # no view
    out += [_unicode(name), _global("torch._utils", "_rebuild_tensor_v2"),
            _tuple([_tuple(persistent) + pickle.BINPERSID, _int(offset),
                    _tuple([_int(n) for n in size]), _tuple([_int(s) for s in stride]),
                    pickle.NEWFALSE, _global("collections", "OrderedDict"),
                    pickle.EMPTY_TUPLE, pickle.REDUCE]),
            pickle.REDUCE]
  out += [pickle.SETITEMS, pickle.STOP]
  return b"".join(out)


def _layout(arrays: dict[str, np.ndarray]):
  """One storage per array, C order."""
  tensors, storages, data = {}, {}, {}
  for index, (name, array) in enumerate(arrays.items()):
    key = str(index)
    array = np.ascontiguousarray(array, np.float32)
    strides = tuple(s // 4 for s in array.strides)
    tensors[name] = (key, 0, array.shape, strides)
    storages[key] = array.size
    data[key] = array.tobytes()
  return tensors, storages, data


def save_zip(path: Path, arrays: dict[str, np.ndarray], tensors=None, storages=None,
             data=None) -> None:
  """torch.save's zip format; `tensors`/`storages`/`data` override the layout (to write
  views that share a storage)."""
  if tensors is None:
    tensors, storages, data = _layout(arrays)
  with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
    archive.writestr("archive/data.pkl", _state_dict_pickle(tensors, storages, False))
    archive.writestr("archive/byteorder", "little")
    for key, payload in data.items():
      archive.writestr(f"archive/data/{key}", payload)
    archive.writestr("archive/version", "3\n")


def save_legacy(path: Path, arrays: dict[str, np.ndarray]) -> None:
  """torch.save(..., _use_new_zipfile_serialization=False)."""
  tensors, storages, data = _layout(arrays)
  buffer = io.BytesIO()
  for header in (_LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
    pickle.dump(header, buffer, protocol=2)
  buffer.write(_state_dict_pickle(tensors, storages, True))
  pickle.dump(list(data), buffer, protocol=2)
  for key, payload in data.items():
    buffer.write(struct.pack("<q", storages[key]))
    buffer.write(payload)
  Path(path).write_bytes(buffer.getvalue())


def random_state_dict(seed: int = 0) -> dict[str, np.ndarray]:
  """A state dict of pytorch-fid's network under torch's names, with random values.

  He-scaled convolutions and identity batch norms keep the signal's scale through the 94
  layers, so the features depend on the input (smaller weights make every image's
  features the same)."""
  rng = np.random.default_rng(seed)
  tensors = {}
  for name, (_, shape, _) in inception_weights._expected().items():
    if name.endswith("conv.weight"):
      value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
    elif name.endswith(("bn.weight", "running_var")):
      value = rng.uniform(0.9, 1.1, shape)
    else:  # batch-norm shifts and means, the fc layer
      value = rng.normal(0, 0.01, shape)
    tensors[name] = value.astype(np.float32)
  return tensors
