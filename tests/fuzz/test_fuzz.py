"""Generated programs (tests/fuzz/fuzz_programs.py): most are checked on the reference interpreter
(derivatives to second order, in float64 and float32); a sample is compiled, several programs
per kernel since compilation dominates (control flow nested one deep there: a kernel
of nested loops' Hessian-vector products takes tens of seconds to compile).
``tests/fuzz/run_long.py`` runs the same checks long."""

import numpy as np
import pytest
from fuzz_programs import Program, check_compiled_group, check_interpreted, programs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def fuzz(n):
    return settings(max_examples=n, database=None, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


# 150 (was 200 before control flow was drawn): a program with loops and branches costs a few
# straight-line ones, and the CI fuzz budget stays about as it was (docs/RELIABILITY.md)
@fuzz(150)
@given(programs())
def test_interpreted_float64(prog):
    check_interpreted(prog, np.float64)


@fuzz(100)
@given(programs())
def test_interpreted_float32(prog):
    check_interpreted(prog, np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@fuzz(2)
@given(st.lists(programs(max_ops=5, max_depth=1), min_size=6, max_size=6))
def test_compiled_groups(dtype, progs):
    check_compiled_group(progs, dtype)


# Programs the fuzzer found wrong, shrunk, kept as regression tests (docs/RELIABILITY.md).
REGRESSIONS = [
    # matmul of a rank-3 array and a vector broadcast the vector against the wrong axis
    Program(shapes=[(1, 2, 3), (3,)], lines=["t0 = x0 @ x1"], outs=["t0"], seed=1),
    # and the vector on the left of a stack of matrices
    Program(shapes=[(3,), (2, 3, 2)], lines=["t0 = anp.matmul(x0, x1)"], outs=["t0"], seed=2),
    # a slice n0-1 long broadcast against n0 (legal in NumPy when n0 == 2) was an error
    Program(shapes=[(1, 1, 2)], lines=["t0 = x0[:, :, 1:]", "t1 = x0 * t0"], outs=["t1"],
            seed=3),
]


@pytest.mark.parametrize("prog", REGRESSIONS, ids=lambda p: p.lines[0])
def test_regressions_interpreted(prog):
    check_interpreted(prog, np.float64)
    check_interpreted(prog, np.float32)


def test_regressions_compiled():
    check_compiled_group(REGRESSIONS, np.float64)
