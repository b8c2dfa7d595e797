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
  function turns the flag into a status (:func:`is_error_path` says which symbols are such);
  any other symbol that neither libc/libm nor the stub define (BLAS for ``np.dot``)
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
# library (its other helpers, such as BLAS's numba_xxgemm, do real work: left undefined, they
# fail the link with a message naming them).
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


def link(objects: list[str], stub_c: str, output: str, cc: str | None = None) -> None:
    """``cc -shared`` the objects and the C stub into ``output``, depending on libc and libm
    only (undefined symbols are an error, not a load-time surprise)."""
    cc = cc or os.environ.get("CC", "cc")
    # Hidden by default: the stub's CPython and NRT stand-ins must bind inside the library,
    # never to a Python process's own symbols when ctypes loads it there.
    cmd = [cc, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", "-o", output, stub_c,
           *objects, "-lm", "-Wl,--no-undefined"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        missing = sorted(set(re.findall(r"undefined reference to `([^']+)'", proc.stderr)))
        why = (f"the kernel calls {', '.join(missing)}, which exists only inside a Python "
               "process (np.dot and np.linalg call BLAS/LAPACK through SciPy)" if missing
               else proc.stderr.strip()[-2000:])
        raise AdjitError(f"adjit.aot: linking {os.path.basename(output)} failed: {why}\n"
                         f"command: {' '.join(cmd)}")
