"""Test settings: every graph built is type-checked, and the disk cache lives in a temp folder."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("ADJIT_CHECK_GRAPHS", "1")
if "ADJIT_CACHE_DIR" not in os.environ:
    os.environ["ADJIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="adjit-test-cache-")
    # (removed at exit: each run's kernels would otherwise pile up in the temp folder)
    atexit.register(shutil.rmtree, os.environ["ADJIT_CACHE_DIR"], ignore_errors=True)

import pytest  # noqa: E402  (the environment above is set before anything imports adjit)


@pytest.fixture
def interpreted(monkeypatch):
    """Run the reference interpreter instead of compiling: tests of rules build hundreds of
    small graphs, and compiling each would take seconds; compiled kernels are compared with
    the interpreter in their own tests."""
    from adjit.config import config

    monkeypatch.setattr(config, "jit", False)


@pytest.fixture(scope="module")
def jax_np():
    """JAX in float64 and jax.numpy, for cross-checks; the test is skipped without JAX."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


def pytest_sessionfinish(session, exitstatus):
    """Fail a run in which a loop of a generated kernel was compiled in Python because its nest
    could not be lowered (``adjit.cache_info()["python_loops"]``): the results stay right, so
    no test would notice that the nest language met something it cannot type, and every
    kernel with it would compile slowly (tests/test_nests.py's own such test resets the
    count)."""
    import sys

    cache = sys.modules.get("adjit.backend.numba_cpu.cache")
    loops = cache.cache_info()["python_loops"] if cache is not None else 0
    if loops:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"adjit: {loops} loop(s) compiled in Python after their nest "
                                "failed (logger \"adjit\" at DEBUG names each)", red=True)
        session.exitstatus = 1
