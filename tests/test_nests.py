"""Loop nests lowered by adjit (``backend/numba_cpu/nests.py``): the text ``wrap`` writes, and
each construct of the nest language compiled both ways (Numba's Python loops, adjit's nests),
compared."""

import logging
import textwrap

import numba
import numpy as np
import pytest
from numba.core.registry import cpu_target

import adjit
import adjit.numpy as anp
from adjit.backend.numba_cpu import cache, nests

HEADER = """import cmath
import math

import numba
import numpy as np

from adjit.backend.numba_cpu import runtime as rt

from adjit.backend.numba_cpu.vecmath import _cos, _exp, _sin, _tanh


@numba.njit(fastmath={"reassoc", "contract", "nsz"}, error_model="numpy")
"""


def _kernel(text: str):
    namespace: dict = {}
    exec(compile(text, "<test kernel>", "exec"), namespace)
    return namespace["kernel"]



@pytest.mark.parametrize("count", [nests.ARGUMENTS_MAX, nests.ARGUMENTS_MAX + 1])
def test_values_are_passed_one_by_one_or_past_the_limit_in_one_tuple(count):
    """A nest's values are the call's arguments, up to ARGUMENTS_MAX (so Numba builds no tuple
    to count references of); more go in one tuple (CPython would build one anyway, and Numba
    would type the loop's text as a plain string). Both compile to the sum the loop makes."""
    names = [f"c{k}" for k in range(count - 2)]  # and a, total
    body = [f"{name} = {k + 1}" for k, name in enumerate(names)] + [
        "total = 0.0", "for i in range(a.shape[0]):",
        f"    total += a[i] * ({' + '.join(names)})", "return total"]
    text = HEADER + "def kernel(a):\n" + "".join(f"    {line}\n" for line in body)
    wrapped = nests.wrap(text)
    call = wrapped.split('"""')[2].split(")")[0]
    packed = count > nests.ARGUMENTS_MAX
    assert call.startswith(", (" if packed else ", a") and call.count(",") == count + packed, call
    a = np.arange(4.0)
    assert _kernel(wrapped)(a) == 6.0 * sum(range(1, count - 1))

def test_wrap_names_what_a_loop_reads_and_what_the_kernel_reads_after_it():
    text = HEADER + textwrap.dedent("""\
        def kernel(a):
            n = a.shape[0]
            out = rt.empty((n,), np.float64)
            total = 0.0
            for i in range(n):
                e = a[i]
                out[i] = e * 2.0
                total += e
            return out, total
        """)
    wrapped = nests.wrap(text)
    assert "from adjit.backend.numba_cpu.nests import nest\n" in wrapped
    assert wrapped.split("def kernel(a):\n")[1] == textwrap.indent(textwrap.dedent('''\
        n = a.shape[0]
        out = rt.empty((n,), np.float64)
        total = 0.0
        total, = nest(r"""
            n, a, out, total -> total | apart: a; out
            for i in range(n):
                e = a[i]
                out[i] = e * 2.0
                total += e
        """, n, a, out, total)
        return out, total
        '''), "    ")
    a = np.arange(5.0)
    out, total = _kernel(wrapped)(a)
    np.testing.assert_array_equal(out, 2 * a)
    assert total == 10.0


def test_arrays_are_declared_apart_by_the_memory_they_may_lie_in():
    """The kernel's arguments share one group (a caller may pass overlapping arrays), a new
    array and the views of it another, a copy a third; carries that swap belong to none."""
    text = HEADER + textwrap.dedent("""\
        def kernel(a, b, n):
            fresh = rt.empty((n,), np.float64)
            viewed = rt.full((2 * n,), 0.5)
            half = viewed[0:n]
            view = rt.reshape(rt.ascontiguousarray(half), (n,))
            left = rt.zeros((n,), np.float64)
            right = rt.full((n,), 2.0)
            left, right = right, left
            row = rt.copy(a)
            for i in range(n):
                fresh[i] = a[i] + b[i]
                half[i] = view[i] * 3.0
                left[i] = right[i] + 1.0
                row[i] = row[i] * 2.0
            return fresh, viewed, left, row
        """)
    wrapped = nests.wrap(text)
    header = wrapped.split('nest(r"""\n')[1].split("\n")[0].strip()
    assert header == "n, fresh, a, b, half, view, left, right, row -> " \
        "| apart: fresh; a b; half view; row", header
    a, b = np.arange(4.0), np.ones(4)
    for got, want in zip(_kernel(wrapped)(a, b, 4), _kernel(text)(a, b, 4)):
        np.testing.assert_array_equal(got, want)


def test_rows_of_one_new_array_are_apart_where_they_cannot_meet():
    """The parts of a concatenation written in its place (rows ``whole[start:stop]``, seen
    through a reshape too) are declared apart where one ends where the other starts, or
    both are constants that do not meet; rows that may meet, or the whole array, share a
    group with them."""
    text = HEADER + textwrap.dedent("""\
        def kernel(a, n):
            whole = rt.zeros((n + n + 10,), np.float64)
            first = whole[0:n]
            second = rt.reshape(whole[n:n + n], (n,))
            low = whole[n + n:n + n + 4]
            high = rt.reshape(whole[n + n + 4:n + n + 10], (3, 2))
            early = whole[0:3]
            late = whole[5:7]
            for i in range(n):
                first[i] = a[i]
                second[i] = a[i] * 2.0
            for j in range(3):
                for k in range(2):
                    high[j, k] = low[j] + k
            for m in range(2):
                late[m] = early[m] * 3.0
            for q in range(3):
                early[q] = late[0] + first[q]
            for r in range(4):
                low[r] = whole[r] + first[r]
            return whole
        """)
    wrapped = nests.wrap(text)
    headers = [line.strip() for line in wrapped.split("\n")
               if " -> " in line or line.endswith(" ->")]
    assert headers == ["n, first, a, second -> | apart: first; a; second",
                       "high, low -> | apart: high; low",
                       "late, early -> | apart: late; early",
                       "early, late, first ->",  # [0:3] and [0:n] may meet; [5:7] and [0:n]
                       "low, whole, first ->"], headers
    a = np.arange(5.0)
    np.testing.assert_array_equal(_kernel(wrapped)(a, 5), _kernel(text)(a, 5))


def test_wrap_leaves_what_the_language_does_not_hold():
    # A slice, a call of a function the nest does not know, an assignment of a tuple, a
    # loop binding rows (the nest language's variables are numbers).
    text = HEADER + textwrap.dedent("""\
        def kernel(a, b):
            for i in range(3):
                b[i] = a[i:].sum()
            for i in range(3):
                b[i] = len(a)
            for i in range(3):
                x, y = a[i], b[i]
            for i in range(3):
                row = a[i]
                b[i] = row[0]
            return b
        """)
    assert nests.wrap(text) == text


# Each program runs compiled from its Python loops and from its nests; results compared
# (floats to rounding: LLVM may vectorize the two differently and reassociate sums).
PROGRAMS = {
    "floats": ("""\
        def kernel(a, b, s):
            n = a.shape[0]
            out = np.empty((n, 3), np.float64)
            acc = np.zeros(n)
            total = 0.0
            flag = False
            for i in range(n):
                for j in range(3):
                    x = a[i, j] * s + b[j]
                    y = _exp(x) - math.log1p(abs(x)) + _sin(x) * _cos(x) + _tanh(x) + x ** 2.5
                    out[i, j] = rt.select((x > 0.5) | (x != x), y, -y)
                    acc[i] += y
                    total += x * x
                    flag |= x != x
            if flag:
                total = -1.0
            else:
                total = total / n
            return out, acc, total
        """, lambda rng: (rng.standard_normal((50, 3)), np.array([0.5, np.nan, -np.inf]), 1.5)),
    "integers": ("""\
        def kernel(k, v):
            n = k.shape[0]
            out = np.empty(n, np.int64)
            f = np.empty(n, np.float64)
            for i in range(n):
                q = k[i] // 3
                r = k[i] % 3
                z = k[i] // (i - i)
                out[i] = q * 7 + r - z + ((k[i] >> 1) ^ (k[i] & 5))
                f[i] = np.float64(k[i]) / 2 + v[-1 - i] + v[rt.clip_index(k[i], v.shape[0])] \\
                    + v[rt.clamp(k[i], n - 1)] + (i / (i - i))
            s = 0
            for i in range(1, n):
                s += out[i - 1] * 2
            return out, f, s
        """, lambda rng: (rng.integers(-20, 20, 40), rng.standard_normal(40))),
    "float32 and booleans": ("""\
        def kernel(x, m):
            n = x.shape[0]
            y = np.empty(n, np.float32)
            b = np.empty(n, np.bool_)
            for i in range(n):
                t = 0
                if m[i]:
                    t = x[i] * np.float32(2.0)
                y[i] = t + np.float32(1.5)
                b[i] = (x[i] > 0) != m[i]
            return y, b
        """, lambda rng: (rng.standard_normal(33).astype(np.float32), rng.random(33) > 0.5)),
    "strided, Fortran order, complex": ("""\
        def kernel(a, c):
            n = a.shape[0]
            m = a.shape[1]
            out = np.empty((n, m), np.complex128)
            for i in range(n):
                for j in range(m):
                    out[i, j] = c[j, i] * a[i, j] + cmath.exp(c[j, i])
            return out
        """, lambda rng: (rng.standard_normal((14, 12))[::2, ::3],
                          np.asfortranarray(rng.standard_normal((4, 7))
                                            + 1j * rng.standard_normal((4, 7))))),
    "constant indices, C and Fortran order": ("""\
        def kernel(a, f):
            out = np.empty((4, 5))
            for j in range(4):
                for k in range(5):
                    out[j, k] = a[0, j, k] + a[2, j, 0] + a[1, 0, k] * f[k, 0] + f[0, 5] \\
                        + f[k, j] + a[0, 0, 0]
            return out
        """, lambda rng: (rng.standard_normal((3, 4, 5)),
                          np.asfortranarray(rng.standard_normal((5, 6))))),
    "empty loops": ("""\
        def kernel(a):
            best = -np.inf
            last = 7
            for i in range(a.shape[0]):
                best = rt.select(a[i] > best, a[i], best)
                last = i
            return best, last
        """, lambda rng: (np.empty(0),)),
}


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_a_nest_computes_what_its_python_loop_computes(name):
    body, make = PROGRAMS[name]
    plain = HEADER + textwrap.dedent(body)
    wrapped = nests.wrap(plain)
    assert 'nest(r"""' in wrapped
    args = make(np.random.default_rng(0))
    want, got = _kernel(plain)(*args), _kernel(wrapped)(*args)
    for w, g in zip(want if isinstance(want, tuple) else (want,),
                    got if isinstance(got, tuple) else (got,)):
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype
        if w.dtype.kind in "fc":
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0)
        else:
            np.testing.assert_array_equal(g, w)


def test_a_nest_numba_cannot_type_is_an_error_naming_it():
    """float // complex has no Numba typing: the error names the loop (its text as written,
    a continued line included), and wrapping again with it kept leaves that loop Python."""
    plain = HEADER + textwrap.dedent("""\
        def kernel(a, c):
            for i in range(a.shape[0]):
                a[i] = a[i] \\
                    // c
            return a
        """)
    with pytest.raises(nests.NestError, match="adjit nest: no typing of floordiv") as error:
        _kernel(nests.wrap(plain))(np.ones(3), 1j)
    assert nests.wrap(plain, frozenset({error.value.loop})) == plain


def test_the_runner_compiles_python_loops_where_a_nest_fails(monkeypatch, caplog):
    def refuse(self, *args):
        raise nests.NestError("refused by the test")

    monkeypatch.setattr(nests._Typed, "__init__", refuse)
    monkeypatch.setitem(cache._counts, "python_loops", 0)
    x = np.linspace(-1.0, 1.0, 7)
    with caplog.at_level(logging.DEBUG, logger="adjit"):
        g = adjit.grad(lambda x: anp.sum(anp.sin(x) * x * 1.25))(x)
    np.testing.assert_allclose(g, 1.25 * (np.cos(x) * x + np.sin(x)), rtol=1e-14)
    assert "refused by the test; compiling that loop in Python" in caplog.text
    assert adjit.cache_info()["python_loops"] >= 1


def test_kernels_run_their_loops_as_nests():
    x = np.linspace(-1.0, 1.0, 7)
    source = adjit.inspect(adjit.grad(lambda x: anp.sum(anp.exp(x) * x)), x).source
    assert 'nest(r"""' in source and "\n    for " not in source


def test_values_assigned_once_before_their_reads_are_not_stack_slots():
    """``_single_assignments``: what a nest keeps as LLVM values rather than stack slots, and
    the same loops compiled both ways compute what their Python loops compute."""
    plain = HEADER + textwrap.dedent("""\
        def kernel(a, n):
            out = np.empty(n, np.float64)
            carried = 0.0
            last = 0.0
            for i in range(n):
                e = a[i]
                before = carried * 0.5
                carried = e + before
                if e > 0.0:
                    branch = e * 2.0
                    out[i] = branch
                else:
                    out[i] = -e
                later = e * 3.0
                for j in range(2):
                    step = later * j
                    out[i] += step
                last = step
            k = 0
            for m in range(n):
                k = m
            return out, carried, last, k
        """)
    wrapped = nests.wrap(plain)
    first = wrapped.split('nest(r"""')[1].split('"""')[0]
    inputs = first.strip().split(" ->")[0].split(", ")
    assert sorted(inputs) == ["a", "carried", "last", "n", "out"]
    examples = {"a": np.ones(3), "out": np.ones(3), "n": 5, "carried": 0.0, "last": 0.0}
    typing = cpu_target.typing_context
    typing.refresh()  # the registries' templates, as Numba loads them before it types
    typed = nests._Typed(typing, first,
                         tuple(numba.typeof(examples[name]) for name in inputs))
    # carried: assigned in the loop and read before that in the next step; step: read after
    # the loop it is assigned in, which may not run; last: an output.
    assert nests._single_assignments(typed) == {"a", "n", "out", "i", "e", "before", "branch",
                                                "later", "j"}
    args = (np.array([0.5, -1.0, 2.0, -0.25, 3.0]), 5)
    for w, g in zip(_kernel(plain)(*args), _kernel(wrapped)(*args)):
        np.testing.assert_allclose(g, w, rtol=1e-15, atol=0)

