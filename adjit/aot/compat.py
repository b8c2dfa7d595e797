"""Every Numba/LLVM workaround the ahead-of-time build needs, in one place.

The route (``../shared/docs/NUMBA_NOTES.md``, "Ahead-of-time compilation"): a ``numba.cfunc``
taking raw pointers calls the CPU target's kernel; its LLVM IR (the cfunc, the kernel and
Numba's runtime helpers, linked into one module) is emitted as an object file by llvmlite and
linked by the system C compiler with a C stub. What that needs:

* The cfunc's C entry point is named ``cfunc.<mangled name>``, which C cannot spell:
  :func:`object_code` renames it.
* Each export's module defines the same helpers (``NRT_incref``, Numba's own functions):
  :func:`object_code` gives every definition but the entry point internal linkage, so objects
  of several exports link together.
* The kernel allocates its outputs and temporaries with Numba's runtime (NRT), which lives in
  a Python extension: the C stub defines the few NRT functions the IR calls
  (:data:`NRT_SYMBOLS`) over ``malloc``/``free``, with Numba's ``MemInfo`` layout (refcount,
  destructor, destructor data, data pointer, size, allocator).
* Every symbol but the exported functions is hidden (``-fvisibility=hidden``, the entry
  points' visibility): a library loaded into a Python process must not bind its stand-ins
  to that process's real CPython functions, nor export them.
* The cfunc's error path (reached only if the kernel raises, e.g. on a failed allocation)
  calls the CPython API and Numba's helper library to report the exception: the stub defines
  those symbols as functions that set a thread-local flag and return 0, and the exported C
  function turns the flag into a status (:func:`is_error_path` says which symbols are such).
* ``np.dot`` (matrix products) calls Numba's BLAS helpers ``numba_xxdot``/``numba_xxgemv``/
  ``numba_xxgemm``, which forward to SciPy's BLAS inside a Python process: the stub defines
  them as plain C loops (:data:`BLAS_SYMBOLS`), correct but unblocked and single-threaded.
  Any other symbol that neither libc/libm nor the stub define (LAPACK and the other helpers
  ``np.linalg`` calls, the SciPy special functions of adjit.backend.numba_cpu.scipy_special)
  fails the link, which :func:`link` reports as an ``AdjitError`` naming it.
* Numba optimizes the IR for the build machine's CPU; ``target="generic"`` re-emits it for
  plain x86-64 (LLVM legalizes the wider vectors), so a portable binary may be slower.
"""

from __future__ import annotations

import os
import re
import subprocess

from adjit.errors import AdjitError

# The NRT functions kernels call, and their definitions over malloc/free in the C stub.
NRT_SYMBOLS = {
    "NRT_Allocate": "void *NRT_Allocate(size_t size) { return malloc(size); }",
    "NRT_Free": "void NRT_Free(void *ptr) { free(ptr); }",
    "NRT_MemInfo_alloc": "void *NRT_MemInfo_alloc(size_t size) "
                         "{ return adjit_meminfo_alloc(size, 16); }",
    "NRT_MemInfo_alloc_aligned": "void *NRT_MemInfo_alloc_aligned(size_t size, unsigned align) "
                                 "{ return adjit_meminfo_alloc(size, align); }",
    "NRT_MemInfo_alloc_safe_aligned": "void *NRT_MemInfo_alloc_safe_aligned(size_t size, "
                                      "unsigned align) "
                                      "{ return adjit_meminfo_alloc(size, align); }",
    "NRT_MemInfo_call_dtor": "void NRT_MemInfo_call_dtor(adjit_meminfo *mi) { "
                             "if (mi->dtor) mi->dtor(mi->data, mi->size, mi->dtor_info); "
                             "free(mi); }",
}

# Symbols only the cfunc's exception path calls: the CPython API, and these of Numba's helper
# library (its other helpers do real work: BLAS_SYMBOLS below define np.dot's; the rest, such
# as LAPACK's numba_ez_gesdd, left undefined, fail the link with a message naming them).
ERROR_PATH_PREFIXES = ("Py", "_Py")
NUMBA_ERROR_PATH = {"numba_do_raise", "numba_gil_ensure", "numba_gil_release",
                    "numba_runtime_build_excinfo_struct", "numba_unpickle", "numba_fatal_error"}


def is_error_path(symbol: str) -> bool:
    return symbol.startswith(ERROR_PATH_PREFIXES) or symbol in NUMBA_ERROR_PATH

NRT_PRELUDE = """\
/* Numba's MemInfo layout (numba/core/runtime/nrt.cpp): the kernel's IR reads `data` (field 3)
   and updates `refct` (field 0) itself; the block holds the MemInfo and the data after it. */
typedef struct {
    size_t refct;
    void (*dtor)(void *data, size_t size, void *info);
    void *dtor_info;
    void *data;
    size_t size;
    void *external_allocator;
} adjit_meminfo;

static void *adjit_meminfo_alloc(size_t size, unsigned align) {
    if (align < 16) align = 16;
    char *block = malloc(sizeof(adjit_meminfo) + size + align);
    if (!block) return NULL;
    adjit_meminfo *mi = (adjit_meminfo *)block;
    uintptr_t data = (uintptr_t)(block + sizeof(adjit_meminfo));
    data = (data + align - 1) / align * align;
    mi->refct = 1;
    mi->dtor = NULL;
    mi->dtor_info = NULL;
    mi->data = (void *)data;
    mi->size = size;
    mi->external_allocator = NULL;
    return mi;
}
"""


# Numba's BLAS helpers (numba/_lapack.c), which np.dot's lowering calls (numba/np/linalg.py:
# call_xxdot, call_xxgemv, call_xxgemm) and which in a Python process forward to SciPy's BLAS.
# Here they are plain loops with the same signatures and Fortran BLAS semantics: column-major
# matrices with leading dimensions, 'n'/'t'/'c' transposes ('c' conjugates complex kinds),
# alpha and beta read through pointers (beta == 0 sets the output without reading it), kind
# 's' float, 'd' double, 'c'/'z' complex float/double (interleaved re, im); 0 on success, -1
# for an unknown kind (Numba then takes its fatal-error path: a failed call here). Loops run
# along the contiguous axis of each operand where the transposes allow (reference BLAS's
# orders); reductions keep four partial sums so the compiler can pipeline them. No blocking,
# no threads: large products are several times slower than an optimized BLAS.
BLAS_PRELUDE = r"""
/* Numba's BLAS helpers as plain loops (see adjit/aot/compat.py; numba/_lapack.c). */
#include <stddef.h>
#define ADJIT_TRANS(t) ((t) == 't' || (t) == 'T' || (t) == 'c' || (t) == 'C')
#define ADJIT_CONJ(t) ((t) == 'c' || (t) == 'C')

/* sum over l < k of x[l * incx] * y[l * incy], in four partial sums */
#define ADJIT_REAL_DOT(NAME, T)                                                        \
static T NAME(ptrdiff_t k, const T *x, ptrdiff_t incx, const T *y, ptrdiff_t incy) {   \
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;                                                  \
    ptrdiff_t l = 0;                                                                   \
    if (incx == 1 && incy == 1) {           /* the common case, vectorizable */        \
        for (; l + 4 <= k; l += 4) {                                                   \
            s0 += x[l] * y[l];                                                         \
            s1 += x[l + 1] * y[l + 1];                                                 \
            s2 += x[l + 2] * y[l + 2];                                                 \
            s3 += x[l + 3] * y[l + 3];                                                 \
        }                                                                              \
    }                                                                                  \
    for (; l + 4 <= k; l += 4) {                                                       \
        s0 += x[l * incx] * y[l * incy];                                               \
        s1 += x[(l + 1) * incx] * y[(l + 1) * incy];                                   \
        s2 += x[(l + 2) * incx] * y[(l + 2) * incy];                                   \
        s3 += x[(l + 3) * incx] * y[(l + 3) * incy];                                   \
    }                                                                                  \
    for (; l < k; l++) s0 += x[l * incx] * y[l * incy];                                \
    return (s0 + s1) + (s2 + s3);                                                      \
}
ADJIT_REAL_DOT(adjit_sdot, float)
ADJIT_REAL_DOT(adjit_ddot, double)

/* y[0:len] = beta * y (0 if beta == 0), y's elements inc apart */
#define ADJIT_REAL_SCALE(NAME, T)                                                      \
static void NAME(ptrdiff_t len, T beta, T *y, ptrdiff_t inc) {                         \
    if (beta == 0) { for (ptrdiff_t i = 0; i < len; i++) y[i * inc] = 0; }             \
    else if (beta != 1) { for (ptrdiff_t i = 0; i < len; i++) y[i * inc] *= beta; }    \
}
ADJIT_REAL_SCALE(adjit_sscale, float)
ADJIT_REAL_SCALE(adjit_dscale, double)

/* C (m x n, ldc) = alpha op(A) op(B) + beta C, column-major */
#define ADJIT_REAL_GEMM(NAME, T, DOT, SCALE)                                           \
static void NAME(int ta, int tb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,       \
                 const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb, T beta,         \
                 T *c, ptrdiff_t ldc) {                                                \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        T *cj = c + j * ldc;                                                           \
        SCALE(m, beta, cj, 1);                                                         \
        if (alpha == 0) continue;                                                      \
        if (!ta && m < 4) {   /* few rows (np.dot of a matrix and a column): dots */   \
            for (ptrdiff_t i = 0; i < m; i++)                                          \
                cj[i] += alpha * (tb ? DOT(k, a + i, lda, b + j, ldb)                  \
                                     : DOT(k, a + i, lda, b + j * ldb, 1));            \
        } else if (!ta) {     /* columns of A, scaled by B's (l, j), added to C's */   \
            for (ptrdiff_t l = 0; l < k; l++) {                                        \
                const T t = alpha * (tb ? b[j + l * ldb] : b[l + j * ldb]);            \
                const T *al = a + l * lda;                                             \
                for (ptrdiff_t i = 0; i < m; i++) cj[i] += t * al[i];                  \
            }                                                                          \
        } else {              /* C's (i, j): A's column i dotted with op(B)'s column j */ \
            for (ptrdiff_t i = 0; i < m; i++)                                          \
                cj[i] += alpha * (tb ? DOT(k, a + i * lda, 1, b + j, ldb)              \
                                     : DOT(k, a + i * lda, 1, b + j * ldb, 1));        \
        }                                                                              \
    }                                                                                  \
}
ADJIT_REAL_GEMM(adjit_sgemm, float, adjit_sdot, adjit_sscale)
ADJIT_REAL_GEMM(adjit_dgemm, double, adjit_ddot, adjit_dscale)

/* y = alpha op(A) x + beta y, A m x n column-major */
#define ADJIT_REAL_GEMV(NAME, T, DOT, SCALE)                                           \
static void NAME(int t, ptrdiff_t m, ptrdiff_t n, T alpha, const T *a, ptrdiff_t lda,  \
                 const T *x, T beta, T *y) {                                           \
    SCALE(t ? n : m, beta, y, 1);                                                      \
    if (alpha == 0) return;                                                            \
    for (ptrdiff_t j = 0; j < n; j++) {                                                \
        const T *aj = a + j * lda;                                                     \
        if (t) { y[j] += alpha * DOT(m, aj, 1, x, 1); continue; }                      \
        const T s = alpha * x[j];                                                      \
        for (ptrdiff_t i = 0; i < m; i++) y[i] += s * aj[i];                           \
    }                                                                                  \
}
ADJIT_REAL_GEMV(adjit_sgemv, float, adjit_sdot, adjit_sscale)
ADJIT_REAL_GEMV(adjit_dgemv, double, adjit_ddot, adjit_dscale)

/* Complex kinds: (re, im) pairs; products written out (no libgcc's __mulsc3). */
#define ADJIT_CPLX(NAME_DOT, NAME_GEMM, NAME_GEMV, T)                                  \
static void NAME_DOT(ptrdiff_t k, const T *x, ptrdiff_t incx, int cx, const T *y,      \
                     ptrdiff_t incy, int cy, T *out) {                                 \
    T sr = 0, si = 0;                                                                  \
    for (ptrdiff_t l = 0; l < k; l++) {                                                \
        const T xr = x[2 * l * incx], xi = cx ? -x[2 * l * incx + 1] : x[2 * l * incx + 1]; \
        const T yr = y[2 * l * incy], yi = cy ? -y[2 * l * incy + 1] : y[2 * l * incy + 1]; \
        sr += xr * yr - xi * yi;                                                       \
        si += xr * yi + xi * yr;                                                       \
    }                                                                                  \
    out[0] = sr;                                                                       \
    out[1] = si;                                                                       \
}                                                                                      \
/* z = alpha s + beta z, beta == 0 ignoring z's value */                               \
static void NAME_DOT##_axpby(const T *alpha, const T *s, const T *beta, T *z) {        \
    T zr = 0, zi = 0;                                                                  \
    if (beta[0] != 0 || beta[1] != 0) {                                                \
        zr = beta[0] * z[0] - beta[1] * z[1];                                          \
        zi = beta[0] * z[1] + beta[1] * z[0];                                          \
    }                                                                                  \
    z[0] = zr + alpha[0] * s[0] - alpha[1] * s[1];                                     \
    z[1] = zi + alpha[0] * s[1] + alpha[1] * s[0];                                     \
}                                                                                      \
static void NAME_GEMM(char transa, char transb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, \
                      const T *alpha, const T *a, ptrdiff_t lda, const T *b,           \
                      ptrdiff_t ldb, const T *beta, T *c, ptrdiff_t ldc) {             \
    const int ta = ADJIT_TRANS(transa), tb = ADJIT_TRANS(transb);                      \
    for (ptrdiff_t j = 0; j < n; j++)                                                  \
        for (ptrdiff_t i = 0; i < m; i++) {                                            \
            T s[2];                                                                    \
            NAME_DOT(k, ta ? a + 2 * i * lda : a + 2 * i, ta ? 1 : lda, ADJIT_CONJ(transa), \
                     tb ? b + 2 * j : b + 2 * j * ldb, tb ? ldb : 1, ADJIT_CONJ(transb), s); \
            NAME_DOT##_axpby(alpha, s, beta, c + 2 * (i + j * ldc));                   \
        }                                                                              \
}                                                                                      \
static void NAME_GEMV(char trans, ptrdiff_t m, ptrdiff_t n, const T *alpha, const T *a, \
                      ptrdiff_t lda, const T *x, const T *beta, T *y) {                \
    const int t = ADJIT_TRANS(trans);                                                  \
    for (ptrdiff_t i = 0; i < (t ? n : m); i++) {                                      \
        T s[2];                                                                        \
        NAME_DOT(t ? m : n, t ? a + 2 * i * lda : a + 2 * i, t ? 1 : lda, ADJIT_CONJ(trans), \
                 x, 1, 0, s);                                                          \
        NAME_DOT##_axpby(alpha, s, beta, y + 2 * i);                                   \
    }                                                                                  \
}
ADJIT_CPLX(adjit_cdot, adjit_cgemm, adjit_cgemv, float)
ADJIT_CPLX(adjit_zdot, adjit_zgemm, adjit_zgemv, double)
"""

BLAS_SYMBOLS = {
    "numba_xxdot": r"""
int numba_xxdot(char kind, char conjugate, ptrdiff_t n, void *dx, void *dy, void *result) {
    switch (kind) {
    case 's': *(float *)result = adjit_sdot(n, dx, 1, dy, 1); return 0;
    case 'd': *(double *)result = adjit_ddot(n, dx, 1, dy, 1); return 0;
    case 'c': adjit_cdot(n, dx, 1, conjugate, dy, 1, 0, result); return 0;
    case 'z': adjit_zdot(n, dx, 1, conjugate, dy, 1, 0, result); return 0;
    }
    return -1;
}""",
    "numba_xxgemv": r"""
int numba_xxgemv(char kind, char trans, ptrdiff_t m, ptrdiff_t n, void *alpha, void *a,
                 ptrdiff_t lda, void *x, void *beta, void *y) {
    switch (kind) {
    case 's': adjit_sgemv(ADJIT_TRANS(trans), m, n, *(float *)alpha, a, lda, x,
                          *(float *)beta, y); return 0;
    case 'd': adjit_dgemv(ADJIT_TRANS(trans), m, n, *(double *)alpha, a, lda, x,
                          *(double *)beta, y); return 0;
    case 'c': adjit_cgemv(trans, m, n, alpha, a, lda, x, beta, y); return 0;
    case 'z': adjit_zgemv(trans, m, n, alpha, a, lda, x, beta, y); return 0;
    }
    return -1;
}""",
    "numba_xxgemm": r"""
int numba_xxgemm(char kind, char transa, char transb, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                 void *alpha, void *a, ptrdiff_t lda, void *b, ptrdiff_t ldb, void *beta,
                 void *c, ptrdiff_t ldc) {
    switch (kind) {
    case 's': adjit_sgemm(ADJIT_TRANS(transa), ADJIT_TRANS(transb), m, n, k, *(float *)alpha,
                          a, lda, b, ldb, *(float *)beta, c, ldc); return 0;
    case 'd': adjit_dgemm(ADJIT_TRANS(transa), ADJIT_TRANS(transb), m, n, k, *(double *)alpha,
                          a, lda, b, ldb, *(double *)beta, c, ldc); return 0;
    case 'c': adjit_cgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              return 0;
    case 'z': adjit_zgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
              return 0;
    }
    return -1;
}""",
}


def blas_source(functions) -> str:
    """The C text of the BLAS helpers among ``functions`` ('' if none)."""
    used = [s for s in sorted(functions) if s in BLAS_SYMBOLS]
    if not used:
        return ""
    return "\n".join([BLAS_PRELUDE, *(BLAS_SYMBOLS[s].strip() + "\n" for s in used)])


def undefined_symbols(module) -> tuple[list[str], list[str]]:
    """(functions, global variables) a parsed llvmlite module uses but does not define."""
    functions = [f.name for f in module.functions
                 if f.is_declaration and not f.name.startswith("llvm.")]
    variables = [g.name for g in module.global_variables if g.is_declaration]
    return sorted(set(functions)), sorted(set(variables))


def object_code(cfunc, export_name: str, cpu: str, features: str, exported: bool = False):
    """(object file bytes, undefined functions, undefined variables) of ``cfunc``'s module,
    its C entry point renamed ``export_name`` (exported from the library if ``exported``, else
    hidden: the library's own C function calls it) and every other definition made internal."""
    import llvmlite.binding as llvm

    module = llvm.parse_assembly(cfunc.inspect_llvm())
    entry = "cfunc." + cfunc.native_name if not cfunc.native_name.startswith("cfunc.") \
        else cfunc.native_name
    for fn in module.functions:
        if fn.is_declaration:
            continue
        if fn.name == entry:
            fn.name = export_name
            fn.linkage = "external"
            fn.visibility = "default" if exported else "hidden"
        else:
            fn.linkage = "internal"
    for gv in module.global_variables:
        if not gv.is_declaration:
            gv.linkage = "internal"
    module.verify()
    target = llvm.Target.from_default_triple()
    machine = target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic",
                                           codemodel="default")
    return (machine.emit_object(module), *undefined_symbols(module))


def host_cpu() -> tuple[str, str]:
    """(CPU name, features) of the build machine, as Numba compiles for it."""
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name(), llvm.get_host_cpu_features().flatten()


def cpu_for(target: str) -> tuple[str, str]:
    if target == "host":
        return host_cpu()
    if target == "generic":
        return "x86-64", ""
    return target, ""  # an LLVM CPU name (x86-64-v3, skylake, ...)


def stub_flags(target: str) -> list[str]:
    """C compiler flags for the stub: the build machine's CPU for ``"host"`` (the kernels'
    objects are compiled for it already; the BLAS loops vectorize for it), else the compiler's
    default (LLVM's CPU names are not all the C compiler's)."""
    return ["-march=native"] if target == "host" else []


def link(objects: list[str], stub_c: str, output: str, cc: str | None = None,
         cflags: list[str] | None = None) -> None:
    """``cc -shared`` the objects and the C stub into ``output``, depending on libc and libm
    only (undefined symbols are an error, not a load-time surprise)."""
    cc = cc or os.environ.get("CC", "cc")
    # Hidden by default: the stub's CPython and NRT stand-ins must bind inside the library,
    # never to a Python process's own symbols when ctypes loads it there.
    cmd = [cc, "-shared", "-fPIC", "-O2", *(cflags or []), "-fvisibility=hidden", "-o", output,
           stub_c,
           *objects, "-lm", "-Wl,--no-undefined"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        missing = sorted(set(re.findall(r"undefined reference to `([^']+)'", proc.stderr)))
        why = (f"the kernel calls {', '.join(missing)}, which exists only inside a Python "
               "process (np.linalg calls LAPACK and most of scipy.special calls SciPy's compiled "
               "code; only np.dot's BLAS helpers are provided)" if missing
               else proc.stderr.strip()[-2000:])
        raise AdjitError(f"adjit.aot: linking {os.path.basename(output)} failed: {why}\n"
                         f"command: {' '.join(cmd)}")
