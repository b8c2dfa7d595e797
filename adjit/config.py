"""Switches, each also settable from the environment before import."""

from __future__ import annotations

import os


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no", "off")


class Config:
    def __init__(self):
        # Compile transformed functions (False: run the reference interpreter, for debugging).
        self.jit = not _flag("ADJIT_DISABLE_JIT", False)
        # Type-check every graph that is built (the tests turn this on).
        self.check_graphs = _flag("ADJIT_CHECK_GRAPHS", False)

    def update(self, name: str, value) -> None:
        if not hasattr(self, name):
            raise AttributeError(f"adjit.config has no option {name!r}")
        setattr(self, name, value)


config = Config()
