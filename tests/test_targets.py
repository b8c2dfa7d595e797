"""The target registry (adjit.backend), the CPU target's lowering tables, and adjit.config."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import adjit
from adjit.backend import Target, compile_graph, get_target
from adjit.config import Config, config
from adjit.errors import AdjitTypeError, AdjitValueError
from adjit.ir.rules import abstract_rules, kind_of
from adjit.passes import optimize

ROOT = pathlib.Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the registry


def test_unknown_target_names_the_known_ones():
    with pytest.raises(AdjitValueError, match=r"unknown target 'gpu'; known targets: 'cpu'"):
        get_target("gpu")
    graph = adjit.make_graph(lambda x: x * 2.0)(np.ones(3))
    for jit in (True, False):  # the interpreter path checks the name too
        with pytest.raises(AdjitValueError, match="known targets: 'cpu'"):
            compile_graph(graph, target="gpu", jit=jit)


@pytest.mark.parametrize("name", [None, 3, ("cpu",)])
def test_target_named_by_something_else_than_a_string(name):
    with pytest.raises(AdjitTypeError, match="known targets: 'cpu'"):
        get_target(name)


def test_cpu_target():
    target = get_target("cpu")
    assert isinstance(target, Target) and target.name == "cpu"
    assert get_target("cpu") is target
    tag = target.cache_tag()
    assert tag and all(c.isalnum() or c in "._-" for c in tag)
    graph = adjit.make_graph(lambda x, y: x * y + 1.0)(np.ones(3), np.ones(3))
    x, y = np.arange(3.0), np.full(3, 2.0)
    for run in (compile_graph(graph, jit=True), compile_graph(graph, jit=False),
                target.compile(graph, "test")):
        (out,) = run([x, y])
        np.testing.assert_array_equal(out, x * y + 1.0)


def test_import_adjit_loads_no_target_but_cpu():
    code = ("import sys, adjit; import adjit.backend.targets as t; "
            "print(sorted(m for m in sys.modules if m.startswith('adjit.backend.')"
            " and m.count('.') == 2 and m != 'adjit.backend.targets'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True).stdout
    assert out.strip() == "['adjit.backend.numba_cpu']"


# --------------------------------------------------------------------------- lowering tables


def test_cpu_target_lowers_every_primitive_the_generator_can_meet():
    """The generator looks a primitive up in the table named by its kind: views are read
    through by the fusion pass and calls are inlined by the first pass, so neither needs one."""
    lowerings = get_target("cpu").lowerings
    missing = {name: kind_of(name) for name in abstract_rules
               if kind_of(name) not in ("view", "call")
               and name not in lowerings[kind_of(name)]}
    assert not missing, f"primitives without a CPU lowering: {missing}"
    for kind in ("elementwise", "reduction", "gather", "array"):
        misfiled = {name: kind_of(name) for name in lowerings[kind] if kind_of(name) != kind}
        # reshape is a view only when it just adds or drops length-1 axes; pads and
        # concatenations are gathers only along axes of known length (placed_elementwise)
        assert misfiled in ({}, {"reshape": "view"},
                            {"pad": "array", "concatenate": "array"}), (kind, misfiled)
    # per-kernel helper functions: special functions, Revolve's schedule maker, the triangular
    # solve
    assert set(lowerings["helpers"]) <= set(lowerings["elementwise"]) | set(
        lowerings["control"]) | set(lowerings["array"])


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize("name, env, raw, expected", [
    ("jit", "ADJIT_DISABLE_JIT", "1", False),
    ("jit", "ADJIT_DISABLE_JIT", "0", True),
    ("check_graphs", "ADJIT_CHECK_GRAPHS", "yes", True),
    ("dump_ir", "ADJIT_DUMP_IR", "1", True),
    ("dump_ir", "ADJIT_DUMP_IR", "off", False),
    ("log_compiles", "ADJIT_LOG_COMPILES", "1", True),
    ("log_compiles", "ADJIT_LOG_COMPILES", "", False),
    ("cache_dir", "ADJIT_CACHE_DIR", "/tmp/adjit-x", pathlib.Path("/tmp/adjit-x")),
])
def test_option_reads_its_variable_until_set(monkeypatch, name, env, raw, expected):
    fresh = Config()
    assert Config.options()[name] == env
    monkeypatch.setenv(env, raw)
    assert getattr(fresh, name) == expected
    set_value = (pathlib.Path("/tmp/elsewhere") if name == "cache_dir" else not expected)
    fresh.update(name, set_value)
    assert getattr(fresh, name) == set_value
    monkeypatch.setenv(env, "something else")
    assert getattr(fresh, name) == set_value  # a set value wins over the variable
    fresh.reset(name)
    monkeypatch.setenv(env, raw)
    assert getattr(fresh, name) == expected


def test_unset_variables_give_the_defaults(monkeypatch):
    fresh = Config()
    for env in Config.options().values():
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/tmp/xdg")
    assert (fresh.jit, fresh.check_graphs, fresh.dump_ir, fresh.log_compiles) == (
        True, False, False, False)
    assert fresh.cache_dir == pathlib.Path("/tmp/xdg/adjit")


def test_unknown_option_raises():
    with pytest.raises(AttributeError, match="no option 'jitt'"):
        config.update("jitt", False)
    with pytest.raises(AttributeError):
        config.jitt = False


def test_dump_ir_after_import(monkeypatch, capsys):
    monkeypatch.setenv("ADJIT_DUMP_IR", "1")
    optimize(adjit.make_graph(lambda x: x + 0.0)(np.ones(2)))
    assert "--- adjit IR after simplify" in capsys.readouterr().err
