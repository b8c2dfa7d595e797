"""adjit's switches: every environment variable adjit reads is read here.

``jit`` (``ADJIT_DISABLE_JIT``, inverted): compile transformed functions; False runs the
    reference interpreter instead, for debugging.
``check_graphs`` (``ADJIT_CHECK_GRAPHS``): type-check every graph that is built, derivative
    graphs included (the tests turn this on).
``dump_ir`` (``ADJIT_DUMP_IR``): print each graph to stderr as traced and after every pass.
``log_compiles`` (``ADJIT_LOG_COMPILES``): log each kernel compilation with its reason (logger
    ``"adjit"``, INFO; to stderr when that logger would not show it).
``cache_dir`` (``ADJIT_CACHE_DIR``): the disk-cache folder, a ``pathlib.Path``; when the variable
    is unset or empty, the platform's cache folder (``$XDG_CACHE_HOME/adjit``, else
    ``~/.cache/adjit``; ``%LOCALAPPDATA%\\adjit\\Cache`` on Windows). None (set, or no such
    folder): compiled kernels are kept in memory only.
``tiered`` (``ADJIT_TIERED``, off by default): a new kernel's first call starts compiling it in
    a background thread and is answered by the reference interpreter (on the optimized graph),
    as are further calls until the kernel is ready; then calls run the kernel. The first call
    waits for the interpreter instead of the compiler, but its results differ from the
    kernel's in the last bits (summation order, fastmath, vectorized transcendental
    functions): leave it off where results must be bitwise equal from call to call. The
    parallel kernel (large calls with ``parallel=True``), CUDA, ``adjit.inspect``,
    ``to_numba`` and ``adjit.aot`` always compile in the foreground. An error while compiling
    in the background is raised by the next call; a process waits at exit for the compilations
    still running (``adjit.backend.numba_cpu.runner.wait_for_kernels()`` waits earlier).

``num_threads`` (``ADJIT_NUM_THREADS``): how many threads a ``parallel=True`` kernel runs on;
    unset (None), all of Numba's (``NUMBA_NUM_THREADS``, the number of cores), which is also the
    most it can use. Read on each call of a parallel kernel, so it can change between calls.

A flag's variable is true unless empty, ``0``, ``false``, ``no`` or ``off``.

``config.update(name, value)`` (or ``config.name = value``) sets an option for this process;
until then an option reads its variable each time it is read, so a variable set after
``import adjit`` still takes effect. Options are read only on cold paths (tracing, optimizing,
compiling), never per call (but ``num_threads``, read by each large parallel call, and
``tiered``, read by the calls of a kernel that is not compiled yet).
``config.reset(name)`` returns an option to its variable.
"""

from __future__ import annotations

import os
import pathlib

from adjit.errors import AdjitValueError


def _flag(raw: str | None) -> bool:
    return raw is not None and raw.strip().lower() not in ("", "0", "false", "no", "off")


def _path(value) -> pathlib.Path | None:
    return pathlib.Path(value).expanduser() if value else None


def _default_cache_dir() -> pathlib.Path | None:
    if os.name == "nt":  # pragma: no cover
        base = os.environ.get("LOCALAPPDATA")
        return pathlib.Path(base, "adjit", "Cache") if base else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        return pathlib.Path(xdg, "adjit")
    try:
        return pathlib.Path.home() / ".cache" / "adjit"
    except RuntimeError:  # no home folder
        return None


def _threads(value) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise AdjitValueError(f"adjit: num_threads (ADJIT_NUM_THREADS) must be a positive whole "
                         f"number, got {value!r}")
    return n


_UNSET = object()


class _Option:
    """One switch: ``from_env(raw)`` gives its value from the variable's text (None when unset)
    until the option is set; ``coerce`` normalizes a set value."""

    def __init__(self, env: str, from_env, coerce=lambda value: value):
        self.env, self.from_env, self.coerce = env, from_env, coerce

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, config, owner=None):
        if config is None:
            return self
        value = config._values.get(self.name, _UNSET)
        return self.from_env(os.environ.get(self.env)) if value is _UNSET else value

    def __set__(self, config, value):
        config._values[self.name] = self.coerce(value)


class Config:
    __slots__ = ("_values",)

    jit = _Option("ADJIT_DISABLE_JIT", lambda raw: not _flag(raw))
    check_graphs = _Option("ADJIT_CHECK_GRAPHS", _flag)
    dump_ir = _Option("ADJIT_DUMP_IR", _flag)
    log_compiles = _Option("ADJIT_LOG_COMPILES", _flag)
    cache_dir = _Option("ADJIT_CACHE_DIR", lambda raw: _path(raw) or _default_cache_dir(), _path)
    num_threads = _Option("ADJIT_NUM_THREADS", _threads, _threads)
    tiered = _Option("ADJIT_TIERED", _flag)

    def __init__(self):
        self._values: dict = {}

    @classmethod
    def _option(cls, name: str) -> _Option:
        option = cls.__dict__.get(name)
        if not isinstance(option, _Option):
            raise AttributeError(f"adjit.config has no option {name!r}")
        return option

    @classmethod
    def options(cls) -> dict[str, str]:
        """Each option's name and its environment variable."""
        return {name: o.env for name, o in vars(cls).items() if isinstance(o, _Option)}

    def update(self, name: str, value) -> None:
        self._option(name).__set__(self, value)

    def reset(self, name: str) -> None:
        """Forget a value set with ``update``: the option reads its variable again."""
        self._option(name)
        self._values.pop(name, None)

    def __repr__(self):
        return "adjit.config(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.options()) + ")"


config = Config()
