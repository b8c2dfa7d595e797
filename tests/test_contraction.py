"""Contractions (einsum, batched matmul): values against NumPy, derivatives, compiled against
interpreted for every contraction of the table, and the kernel's BLAS calls.

One kernel computes every contraction of the table and its VJP; it is called at small lengths
(the matrix products run as loops) and at large ones (BLAS calls), since its lengths are
symbolic. Letters have the same length in every operand of the table, and the large lengths
map the small ones one to one, so both calls share the one kernel."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import adjit
import adjit.numpy as anp
from adjit.backend import get_target
from adjit.backend.numba_cpu import runtime as rt
from adjit.backend.numba_cpu.lowering import BLAS_MIN_WORK
from adjit.config import config
from adjit.numpy.contraction import SMALL_CONTRACTION
from adjit.testing import check_grads
from adjit.trace import trace_symbolic
from adjit.tree import leaves as tree_leaves

TABLE = [
    "ij,jk->ik",            # matrix-matrix
    "ij,kj->ik",            # right operand transposed: BLAS's transpose flag
    "ji,jk->ik",            # left operand transposed
    "bij,bjk->bik",         # batched
    "bij,bkj->bik",
    "bji,bjk->bki",         # both transposed, the output too
    "bhqd,bhkd->bhqk",      # attention scores
    "bhqk,bhkd->bhqd",      # attention output
    "krj,ikj->ikr",         # ADBench GMM: a batch axis between the matrix axes (read in place)
    "ijk,kl->ijl",          # a second free letter: a batch axis of the other operand
    "ij,bjk->bik",          # a matrix broadcast along the batch
    "ijk,jkl->il",          # two contracted letters: one fused loop
    "ij,kl->ijkl",          # outer products
    "i,j->ij",
    "ii->",                 # traces
    "bii->b",
    "iij,jk->ik",           # a diagonal, then a product
    "ij,j->i",              # matrix-vector
    "bij,bj->bi",
    "i,i->",
    "ij,jk,kl->il",         # chains, contracted pairwise
    "ab,bc,cd,de->ae",
    "...ij,...jk->...ik",   # ellipsis
    "bij,...jk->b...ik",
]
SMALL = dict(zip("abcdehijklqr", [2, 3, 4, 5, 2, 3, 4, 5, 3, 2, 4, 5]))
BIG = {c: n + 9 for c, n in SMALL.items()}  # one to one: 2 -> 11, ..., 5 -> 14
ELLIPSIS = "h"  # the letter '...' stands for in the table


def _shapes(spec: str, sizes: dict):
    inputs = spec.split("->")[0].replace("...", ELLIPSIS)
    return [tuple(sizes[c] for c in part) for part in inputs.split(",")]


def _operands(spec: str, sizes: dict, seed: int):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in _shapes(spec, sizes)]


def _interpreted(fn, *args):
    saved = config.jit
    config.jit = False
    try:
        return fn(*args)
    finally:
        config.jit = saved


@pytest.mark.parametrize("spec", TABLE)
def test_equals_numpy(spec):
    for sizes in (SMALL, BIG):
        xs = _operands(spec, sizes, 0)
        got = _interpreted(lambda *a: anp.einsum(spec, *a), *xs)
        np.testing.assert_allclose(got, np.einsum(spec, *xs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spec", TABLE)
def test_grads(spec):
    xs = _operands(spec, SMALL, 1)
    order = 2 if spec in ("bij,bkj->bik", "krj,ikj->ikr", "ijk,kl->ijl", "ij,jk,kl->il") else 1
    _interpreted(check_grads, lambda *a: anp.sin(anp.einsum(spec, *a)), xs, order)


def _value_and_vjp(all_xs, all_u):
    """Each contraction of the table and its VJP of a given cotangent: one kernel."""
    out = []
    for spec, xs, u in zip(TABLE, all_xs, all_u):
        y, pullback = adjit.vjp(lambda *a, spec=spec: anp.einsum(spec, *a), *xs)
        out.append((y, pullback(u)))
    return out


@pytest.fixture(scope="module")
def both_ways():
    kernel = adjit.jit(_value_and_vjp)
    before = adjit.cache_info()["compiles"]

    def run(sizes, seed):
        xs = [_operands(spec, sizes, seed + k) for k, spec in enumerate(TABLE)]
        rng = np.random.default_rng(seed)
        us = [rng.standard_normal(np.einsum(spec, *x).shape) for spec, x in zip(TABLE, xs)]
        return kernel(xs, us), _interpreted(adjit.jit(_value_and_vjp), xs, us), xs

    runs = {"small": run(SMALL, 0), "big": run(BIG, 50)}
    return runs, adjit.cache_info()["compiles"] - before


@pytest.mark.slow  # one kernel for the whole table: about 40 s of compilation
@pytest.mark.parametrize("lengths", ["small", "big"])
def test_compiled_equals_interpreted(both_ways, lengths):
    runs, compiles = both_ways
    compiled, interpreted, xs = runs[lengths]
    for spec, x, (y, g), (y_ref, g_ref) in zip(TABLE, xs, compiled, interpreted):
        np.testing.assert_allclose(y, y_ref, rtol=1e-11, atol=1e-11, err_msg=spec)
        np.testing.assert_allclose(y, np.einsum(spec, *x), rtol=1e-11, atol=1e-11,
                                   err_msg=spec)
        for a, b in zip(g, g_ref):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=spec)
    assert compiles <= 1  # one kernel for both lengths (none where the disk cache has it)


def test_lengths_choose_loops_or_blas():
    assert max(SMALL.values()) ** 3 < BLAS_MIN_WORK <= min(BIG.values()) ** 3


def _schedule(fn, *args):
    """The CPU target's schedule and kernel source for ``fn`` (not compiled by Numba)."""
    graph, _ = trace_symbolic(fn, list(args))
    compiled = get_target("cpu").compile(graph, reason="test")
    return compiled.schedule, compiled.source.plain


@pytest.mark.parametrize("spec", ["bij,bjk->bik", "bij,bkj->bik", "bhqd,bhkd->bhqk"])
def test_batched_products_are_blas_calls_on_views(spec):
    """Value and VJP: only BLAS calls on slices of the inputs (and .T of them), no loop nest
    copying a matrix."""
    xs = _operands(spec, BIG, 0)
    u = np.ones(np.einsum(spec, *xs).shape)

    def fn(u, *a):
        y, pullback = adjit.vjp(lambda *b: anp.einsum(spec, *b), *a)
        return [y, *pullback(u)]

    schedule, source = _schedule(fn, u, *xs)
    assert source.count("rt.gemm_into(") == 3, source
    assert schedule.loop_count == 0, source


def test_products_of_whole_stacked_matrices_call_blas_from_the_kernel():
    """A product of stacks whose matrices are whole slices (``m[b]``, ``m[b].T``: types Numba
    knows are contiguous) calls BLAS from the kernel itself, linking nothing in (no strided
    ``gemm_into``, no NumPy copy), value and gradient; results equal NumPy's."""
    import re

    rng = np.random.default_rng(7)
    a, b = rng.standard_normal((4, 30, 40)), rng.standard_normal((4, 50, 40))

    def f(a, b):
        return anp.sum(anp.sin(anp.einsum("bij,bkj->bik", a, b)))

    info = adjit.inspect(adjit.value_and_grad(f, argnums=(0, 1)), a, b)
    assert info.source.count("rt.gemm_into(") == 3 and "].T," in info.source, info.source
    defined = re.findall(r'^define [^@]*@"?([\w.$]+)', info.llvm, re.M)
    assert not [name for name in defined if "gemm_into" in name or "contiguous" in name], defined
    value, (da, db) = adjit.jit(adjit.value_and_grad(f, argnums=(0, 1)))(a, b)
    c = np.einsum("bij,bkj->bik", a, b)
    np.testing.assert_allclose(value, np.sum(np.sin(c)), rtol=1e-12)
    np.testing.assert_allclose(da, np.einsum("bik,bkj->bij", np.cos(c), b), rtol=1e-11,
                               atol=1e-12)
    np.testing.assert_allclose(db, np.einsum("bik,bij->bkj", np.cos(c), a), rtol=1e-11,
                               atol=1e-12)


def test_gmm_contraction_reads_its_operand_in_place():
    """'krj,ikj->ikr' reads x (n, K, d) per k as x[:, k, :] in place (BLAS with x's row
    stride), with no loop nest copying x into (K, n, d) order: the only nest is the sum."""
    q, x = _operands("krj,ikj->ikr", BIG, 0)
    schedule, source = _schedule(lambda q, x: [anp.sum(anp.einsum("krj,ikj->ikr", q, x))], q, x)
    assert source.count("rt.gemm_into(") == 1 and ", :]" in source, source
    assert schedule.loop_count == 1, source


def test_elementwise_work_around_a_batched_product_is_batch_major():
    """ADBench GMM's 'kij,nkj->nki' between elementwise work on (n, K, d): the values around
    the product are computed K-major (the batch_major pass), so every BLAS call of the value
    and gradient reads and writes whole contiguous matrices (m[b], never the strided m[:, b,
    :]), and the sum over d is a reduction of the K-major value transposed back. The means'
    gradient sums the einsum's transpose over the points: one row times each matrix
    (simplify), not a third batched product. Value and gradient compiled equal the
    interpreter's, and the gradient finite differences."""
    rng = np.random.default_rng(5)
    n, k, d = 40, 6, 5
    x = rng.standard_normal((n, d))

    def f(ltri, means, q):
        xc = x[:, None, :] - means[None, :, :]
        qx = anp.exp(q)[None, :, :] * xc + anp.einsum("kij,nkj->nki", ltri, xc)
        return anp.sum(anp.log(anp.sum(qx * qx, axis=2) + 1.0))

    args = (rng.standard_normal((k, d, d)), rng.standard_normal((k, d)),
            0.3 * rng.standard_normal((k, d)))
    grad = adjit.value_and_grad(f, argnums=(0, 1, 2))
    _, source = _schedule(lambda *a: list(tree_leaves(grad(*a))), *args)
    assert source.count("rt.gemm_into(") == 2 and "[:, b" not in source, source
    value, grads = adjit.jit(grad)(*args)
    value_ref, grads_ref = _interpreted(grad, *args)
    np.testing.assert_allclose(value, value_ref, rtol=1e-13)
    for a, b in zip(grads, grads_ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    check_grads(f, args, order=1, modes=("rev",))


def test_short_contractions_are_fused_products():
    """A contracted letter of known length at most SMALL_CONTRACTION (ADBench GMM at d=2) is a
    broadcast product summed, computed in the loop nest of its reader, not a BLAS call; one
    longer stays a BLAS call. Value and VJP compiled equal NumPy's and the interpreter's."""
    rng = np.random.default_rng(4)

    for d in (SMALL_CONTRACTION, SMALL_CONTRACTION + 2):
        def f(u, q, x, d=d):  # d known: the slices fix the contracted length
            return adjit.vjp(lambda q, x: anp.einsum("krj,ikj->ikr", q[:, :, :d],
                                                     x[:, :, :d]), q, x)[1](u)

        q, x, u = (rng.standard_normal(s) for s in [(3, d, d), (60, 3, d), (60, 3, d)])
        _, source = _schedule(f, u, q, x)
        assert ("rt.gemm_into(" in source) == (d > SMALL_CONTRACTION), source
        got = adjit.jit(f)(u, q, x)
        want = (np.einsum("ikr,ikj->krj", u, x), np.einsum("krj,ikr->ikj", q, u))
        for a, b, c in zip(got, want, _interpreted(f, u, q, x)):
            np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)
            np.testing.assert_allclose(a, c, rtol=1e-13, atol=1e-13)


def test_small_products_are_loops_chosen_at_run_time():
    xs = _operands("bij,bjk->bik", SMALL, 0)
    _, source = _schedule(lambda a, b: [anp.einsum("bij,bjk->bik", a, b)], *xs)
    assert f">= {BLAS_MIN_WORK}:" in source and "rt.gemm_into(" in source


def test_a_stack_times_one_matrix_is_one_blas_call():
    """x @ W over a batch (a dense layer): the batch folds into the rows, one BLAS call."""
    xs = _operands("ijk,kl->ijl", BIG, 0)
    schedule, source = _schedule(lambda x, w: [anp.einsum("ijk,kl->ijl", x, w), x @ w], *xs)
    assert source.count("rt.gemm_into(") == 1 and "rt.reshape(" in source, source  # one, after CSE
    assert schedule.loop_count == 0 and " for " not in source, source


@numba.njit(cache=False)
def _gemm_into(a, b, out):
    rt.gemm_into(a, b, out)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_gemm_into_reads_every_layout_in_place_or_copies(dtype):
    """``rt.gemm_into`` against NumPy for operands whose rows are contiguous, whose columns
    are, neither (a reversed view: copied first), single rows and columns, k = 0, into a slice
    of a stack (its neighbours untouched): operands typed C or Fortran-contiguous take the
    BLAS call written in the kernel, others (views typed 'A') the strided implementation."""
    rng = np.random.default_rng(0)
    for m, k, n in [(3, 4, 5), (1, 4, 5), (3, 1, 5), (3, 4, 1), (1, 1, 1), (3, 0, 2)]:
        a4 = (rng.standard_normal((m, 3, k, 2)) * 4).astype(dtype)
        b3 = (rng.standard_normal((k, 2, n)) * 4).astype(dtype)
        lefts = [a4[:, 1, :, 0], np.ascontiguousarray(a4[:, 1, :, 0]),
                 np.asfortranarray(a4[:, 1, :, 0]), a4[::-1, 1, :, 0], a4[:, 1, :, :].T[0].T]
        rights = [b3[:, 1, :], np.ascontiguousarray(b3[:, 1, :]), np.asfortranarray(b3[:, 1, :])]
        for a in lefts:
            for b in rights:
                stack = np.full((2, m, n), 7, dtype)
                _gemm_into(a, b, stack[1])
                np.testing.assert_allclose(stack[1], a @ b, rtol=1e-5, atol=1e-4)
                assert (stack[0] == 7).all()


def test_integer_products_of_stacks_are_loops():
    """BLAS has no integer gemm: a product of integer stacks is the kernel's own loops, exact,
    at lengths where floats would call BLAS (and a stack times one matrix too)."""
    a = np.arange(2 * 30 * 40).reshape(2, 30, 40) % 7
    b = np.arange(2 * 40 * 50).reshape(2, 40, 50) % 5
    schedule, source = _schedule(lambda a, b: [a @ b, a @ b[0]], a, b)
    assert "gemm_into" not in source, source
    got = adjit.jit(lambda a, b: (a @ b, a @ b[0]))(a, b)
    np.testing.assert_array_equal(got[0], a @ b)
    np.testing.assert_array_equal(got[1], a @ b[0])


def test_gemm_into_refuses_an_output_without_contiguous_rows_or_of_other_lengths():
    out = np.zeros((3, 4), order="F")
    with pytest.raises(ValueError, match="contiguous rows"):
        _gemm_into(np.ones((3, 2)), np.ones((2, 4)), out)
    for a, b, out in [(np.ones((3, 2)), np.ones((3, 4)), np.zeros((3, 4))),
                      (np.ones((3, 2)), np.ones((2, 4)), np.zeros((3, 5)))]:
        with pytest.raises(ValueError, match="incompatible lengths"):
            _gemm_into(a, b, out)


def test_products_and_new_arrays_link_no_helper_into_the_kernel():
    """``runtime.py``'s allocations, products, copies and reshapes are intrinsics: the compiled
    gradient of a two-layer network (matrix products, a transposed operand, matrix-vector
    products, new and filled arrays) defines no function but the kernel, its CPython wrapper
    and NRT's reference counts (no ``np.dot`` or ``np.empty`` implementation linked in, which
    LLVM would optimize and compile again in every kernel), and its values are right."""
    import re

    rng = np.random.default_rng(3)
    x, v = rng.standard_normal((6, 5)), rng.standard_normal(4)

    def loss(w, b):
        hidden = anp.tanh(x @ w + b)
        scores = hidden @ v
        return anp.sum(anp.exp(scores - anp.max(scores))) + anp.sum(hidden.T @ hidden)

    w, b = rng.standard_normal((5, 4)), rng.standard_normal(4)
    info = adjit.inspect(adjit.grad(loss, argnums=(0, 1)), w, b)
    assert "rt.dot(" in info.source and "rt.full(" in info.source, info.source
    defined = re.findall(r'^define [^@]*@"?([\w.$]+)', info.llvm, re.M)
    extra = [name for name in defined if "_adjit_kernel_" not in name
             and not name.startswith("NRT_")]
    assert len(defined) >= 2 and not extra, extra
    check_grads(loss, (w, b), order=1, modes=("rev",))


@numba.njit(cache=False)
def _runtime_calls(a, b, v, w, n):
    """Every intrinsic of ``runtime.py`` once (``test_runtime_intrinsics_equal_numpy``)."""
    new = (rt.empty((n, np.int64(2)), np.float64).shape, rt.zeros((n,), np.bool_),
           rt.full((n, n), 3), rt.full((n,), True), rt.full((n,), -np.inf),
           # fixed lengths (literals: sized at typing), one array of 8 MiB (huge pages)
           rt.full((3, 2, 4), 1.5), rt.full((n, 4), 2), rt.zeros((1024, 1024), np.float64),
           rt.empty((2, 0, 5), np.int32))
    products = (rt.dot(a, b), rt.dot(a.T, a), rt.dot(b.T, a.T), rt.dot(a, v), rt.dot(w, a),
                rt.dot(v, v), rt.dot(a.T, w), rt.dot(a[::2], b))
    views = (rt.copy(a), rt.copy(a[::2]), rt.ascontiguousarray(a.T), rt.reshape(a, (a.size,)))
    scalars = (rt.select(n > 1, 1, 2.5), rt.clamp(n - 10, 4), rt.clamp(n + 10, 4),
               rt.clip_index(-n, 5), rt.clip_index(n + 7, 5))
    rows = rt.zeros((2, a.shape[0], a.shape[1]), a.dtype)
    rt.copy_into(rows[1], a)  # contiguous both: a memcpy
    columns = rt.zeros((a.shape[1], a.shape[0]), a.dtype).T
    rt.copy_into(columns, a[:, ::-1])  # neither contiguous: a loop
    return new, products, views, scalars, (rows, columns)


@numba.njit(cache=False)
def _impossible(n):
    return rt.empty((-1, 2), np.float64).size + rt.empty((n, 2), np.float64).size


@numba.njit(cache=False)
def _unallocatable(n):
    return rt.empty((n, 1 << 20), np.float64).size


def test_impossible_lengths_raise():
    """A negative fixed length is no literal size: the array is sized in the kernel, which
    raises as ``np.empty`` does, as for a negative length known only there; a size no address
    space holds (2 PiB) is a MemoryError."""
    with pytest.raises(ValueError, match="negative or too large"):
        _impossible(3)
    with pytest.raises(MemoryError, match="could not allocate"):
        _unallocatable(1 << 28)


@numba.njit(cache=False)
def _copy_into(out, a):
    rt.copy_into(out, a)


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # the strided operand
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_runtime_intrinsics_equal_numpy(dtype):
    """``runtime.py``'s intrinsics against NumPy: new arrays (a value of another type, booleans),
    every product of contiguous vectors and matrices (gemm, gemv either side, dot, transposed
    operands, a strided one through Numba's ``np.dot``, a shared length of 0), copies (a
    strided source too, not aliasing its source; into a row, into a strided array, into one of
    another shape), views, selects and index clamps."""
    rng = np.random.default_rng(1)
    for m, k in [(5, 3), (4, 0)]:
        a = (rng.standard_normal((m, k)) * 3).astype(dtype)
        b, v, w = [(rng.standard_normal(s) * 3).astype(dtype) for s in ((k, 2), (k,), (m,))]
        new, products, views, scalars, (rows, columns) = _runtime_calls(a, b, v, w, np.int64(3))
        np.testing.assert_array_equal(rows, np.stack([np.zeros_like(a), a]))
        np.testing.assert_array_equal(columns, a[:, ::-1])
        assert new[0] == (3, 2) and new[1].dtype == np.bool_ and not new[1].any()
        assert new[2].dtype == np.int64 and (new[2] == 3).all() and new[3].all()
        assert (new[4] == -np.inf).all()
        for got, shape, fill in zip(new[5:], [(3, 2, 4), (3, 4), (1024, 1024), (2, 0, 5)],
                                    [1.5, 2, 0.0, None]):
            want = np.full(shape, fill) if fill is not None else np.empty(shape, np.int32)
            assert got.shape == shape and (got.strides == want.strides or not want.size)
            assert fill is None or (got == fill).all()
        expected = (a @ b, a.T @ a, b.T @ a.T, a @ v, w @ a, v @ v, a.T @ w, a[::2] @ b)
        for got, want in zip(products, expected):
            assert np.shape(got) == np.shape(want)
            assert np.ndim(got) == 0 or got.dtype == dtype  # (a scalar comes back a float)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
        for got, want in zip(views, (a, a[::2], a.T, a.reshape(-1))):
            assert got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
        views[0][...] = 0
        assert not (a == 0).all() or a.size == 0  # a copy, not the source
        assert scalars == (1.0, 0, 4, 2, 4)
    with pytest.raises(ValueError, match="copying an array into one of another shape"):
        _copy_into(np.zeros((2, 3), dtype), np.ones((3, 2), dtype))
