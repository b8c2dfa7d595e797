"""Test settings: every graph built is type-checked, and the disk cache lives in a temp folder."""

import os
import tempfile

os.environ.setdefault("ADJIT_CHECK_GRAPHS", "1")
os.environ.setdefault("ADJIT_CACHE_DIR", tempfile.mkdtemp(prefix="adjit-test-cache-"))
