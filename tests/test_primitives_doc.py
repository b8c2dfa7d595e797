"""docs/PRIMITIVES.md is current, and its Numba lowering column is true.

The file must equal what ``adjit.primitives.doc`` generates from the rule tables now
(``python3 -m adjit.primitives.doc`` rewrites it). Each lowering it claims is checked twice:
against the fusion sets and codegen tables, and in generated kernels: the graphs of every case of
tests/test_primitives.py (the function, its JVP and its VJP), optimized and as traced, are fused
and turned into kernel source (not compiled), and each equation's place in the schedule must be
one its primitive claims.
"""

from __future__ import annotations

import os

import pytest

import adjit
from adjit.backend import get_target
from adjit.backend.numba_cpu import lowering
from adjit.backend.numba_cpu.codegen import generate
from adjit.config import config
from adjit.ir.rules import abstract_rules, call_prims, kind_of
from adjit.passes import optimize
from adjit.passes.fusion import LoopNest, fuse, placed_elementwise
from adjit.primitives import doc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_file_is_current():
    with open(os.path.join(ROOT, "docs", "PRIMITIVES.md"), encoding="utf-8") as fh:
        text = fh.read()
    assert text == doc.markdown(), (
        "docs/PRIMITIVES.md is stale: run `python3 -m adjit.primitives.doc`")


def test_every_primitive_has_a_row_rules_a_lowering_and_a_description():
    text = doc.markdown()
    for name in abstract_rules:
        assert f"| `{name}` |" in text
        assert doc.description(name), f"{name} has no description"
        assert doc.lowerings(name), f"{name} has no Numba lowering"
    assert "**missing**" not in text and "**none**" not in text


def test_lowering_claims_match_the_tables():
    for name in abstract_rules:
        for kind in doc.lowerings(name):
            if kind == "fused elementwise":
                assert (kind_of(name) == "elementwise" and name in lowering.SCALAR_LOWERINGS
                        or name == "iota" and kind_of(name) == "gather"), name
            elif kind == "fused reduction":
                assert kind_of(name) == "reduction" and name in lowering.REDUCE_LOWERINGS, name
            elif kind == "gather":
                assert kind_of(name) == "gather" or name in lowering.GATHER_LOWERINGS, name
            elif kind == "control flow":
                assert kind_of(name) == "control" and name in lowering.CONTROL_LOWERINGS, name
            elif kind == "array op":
                assert name in lowering.ARRAY_LOWERINGS, name
            elif kind == "inlined call":
                assert name in call_prims(), name
            else:
                assert kind == "view", kind


def _observed(graph, seen: dict) -> None:
    """Record, per primitive, how the backend lowered its equations in ``graph``."""
    optimized = optimize(graph)
    for eqn in graph.eqns:
        if eqn.prim in call_prims():
            seen.setdefault(eqn.prim, set()).add("inlined call")
    assert not {e.prim for e in optimized.eqns} & call_prims(), "a call survived inlining"
    _scheduled(optimized, seen)
    if not {e.prim for e in graph.eqns} & call_prims():
        _scheduled(graph, seen)  # unoptimized too: simplify removes e.g. every stop_gradient


def _scheduled(graph, seen: dict) -> None:
    schedule = fuse(graph)
    # raises MissingRuleError for a primitive with no lowering
    generate(schedule, get_target("cpu").lowerings)
    for eqn in schedule.views.values():
        seen.setdefault(eqn.prim, set()).add("view")
    for item in schedule.items:
        eqns = item.eqns if isinstance(item, LoopNest) else [item]
        for eqn in eqns:
            if any(v.id in schedule.views for v in eqn.outs):
                kind = "view"
            elif not isinstance(item, LoopNest):
                kind = "control flow" if kind_of(eqn.prim) == "control" else "array op"
            elif kind_of(eqn.prim) == "reduction":
                kind = "fused reduction"
            elif eqn.prim == "take" or placed_elementwise(eqn):
                kind = "gather"
            else:
                kind = "fused elementwise"
            seen.setdefault(eqn.prim, set()).add(kind)


@pytest.fixture(scope="module")
def lowered():
    from test_primitives import CASES, forward_only  # every primitive is in some case there

    seen: dict[str, set] = {}
    saved = config.jit
    config.jit = False  # the VJP's cotangent comes from the interpreter; nothing is compiled
    try:
        for c in CASES:
            args = c.inputs()
            _observed(adjit.make_graph(c.fn)(*args), seen)
            _observed(adjit.make_graph(lambda *xs, c=c: adjit.jvp(c.fn, xs, xs))(*args), seen)
            if forward_only(c):
                continue
            out = adjit.jit(c.fn)(*args)
            _observed(adjit.make_graph(
                lambda *xs, c=c, out=out: adjit.vjp(c.fn, *xs)[1](out))(*args), seen)
    finally:
        config.jit = saved
    return seen


def test_generated_kernels_lower_each_primitive_as_claimed(lowered):
    wrong = {p: sorted(kinds - set(doc.lowerings(p))) for p, kinds in lowered.items()
             if not kinds <= set(doc.lowerings(p))}
    assert not wrong, f"lowered otherwise than docs/PRIMITIVES.md says: {wrong}"


def test_every_claimed_lowering_is_seen_in_a_generated_kernel(lowered):
    unseen = {p: sorted(set(doc.lowerings(p)) - lowered.get(p, set()))
              for p in abstract_rules if set(doc.lowerings(p)) - lowered.get(p, set())}
    assert not unseen, f"claimed but never generated: {unseen}"

