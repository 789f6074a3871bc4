"""Test-session settings, shared by every pytest-xdist worker of one run and by the
subprocesses tests start: one cache of trained feature networks, and one persistent
cache of compiled programs (many tests compile the same tiny steps)."""

import os
import sys
import tempfile
from pathlib import Path

_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID") or str(os.getpid())
_ROOT = Path(tempfile.gettempdir()) / f"gax-test-{_RUN}"

# A developer's own GAX_CACHE_DIR (a cache of trained classifiers) is reused.
os.environ.setdefault("GAX_CACHE_DIR", str(_ROOT / "classifiers"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_ROOT / "compiled"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# The benchmarks' helpers (FLOPs, interleaved step timing) are modules of benchmarks/,
# imported as its scripts import them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
