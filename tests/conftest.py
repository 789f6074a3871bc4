"""Test-session settings: one cache of trained feature networks for the whole session."""

import os
import tempfile

# Tests train the digit classifier at most once per session (or reuse a cache the
# developer points GAX_CACHE_DIR at); subprocesses inherit the variable.
if not os.environ.get("GAX_CACHE_DIR"):
  os.environ["GAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="gax-test-cache-")
