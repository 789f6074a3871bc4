"""Writing files so that a crash leaves either the old file or the new one, never half."""

import json
import os
from pathlib import Path
from typing import Any


def write_atomically(path: Path, payload: bytes | str) -> None:
  """Writes to a temporary sibling, then renames it over `path`."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_name(f"{path.name}.partial{os.getpid()}")
  if isinstance(payload, str):
    payload = payload.encode()
  partial.write_bytes(payload)
  partial.replace(path)


def write_json(path: Path, payload: Any) -> None:
  write_atomically(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
