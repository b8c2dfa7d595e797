"""Issue 9's rows: loops that stay loops (row 9) and the ADBench D-LSTM gradient through
``adjit.scan`` (row 10), each measured against its peers in the same process run.

Row 9: ``grad`` of ``x -> sum(fori_loop(0, N, lambda i, x: x + a * sin(x), x))`` over 1000
float64 values, N = 400 and N = 10^5: adjit's compile time (the first call in a warm process,
minus the time of a steady call) at both trip counts and against a straight-line kernel's first
call, and the time per call against a hand-written ``@njit`` forward loop storing the adjoint's
factor per step plus a hand-written adjoint loop, and against ``jax.jit(jax.grad(...))`` of the
same ``lax.fori_loop``. Every gradient is checked against the hand-written one before timing.

Row 10: the ADBench D-LSTM objective (``../shared/docs/BENCHMARKS.md`` section 4) written with
``adjit.scan`` as a user would (the layers a Python loop inside the body), its value checked
against a hand-written NumPy objective and its gradient (main, extra) against JAX's
``jit(grad)`` of the same code over ``lax.scan``; J/F is the gradient's time over the best
objective time of the run (adjit ``jit``, NumPy, JAX ``jit``).
"""

from __future__ import annotations

import math
import os
import re
import time

import numpy as np
from harness import CheckError, Line, check_close, fmt_time, log
from numba import njit
from rows import Context, _short, measure

LOOP_N = 1000
LOOP_STEPS = (400, 100_000)
LOOP_A = 0.01
LSTM_FILE = "lstm_l2_c1024.txt"
LSTM_SEED = 9
LSTM_BITS_P = 0.25  # fraction of ones in the data file's sequence (0.248)


# --------------------------------------------------------------------------- hand-written


@njit(fastmath=True)
def loop_grad_hand(x0, n_steps, a):
    """Gradient of sum(x_N), x_{k+1} = x_k + a sin(x_k): a forward loop storing the adjoint's
    factor 1 + a cos(x_k) per step (n_steps x n), then the adjoint loop multiplying it in."""
    n = x0.shape[0]
    tape = np.empty((n_steps, n))
    x = x0.copy()
    for k in range(n_steps):
        for i in range(n):
            xi = x[i]
            tape[k, i] = 1.0 + a * math.cos(xi)
            x[i] = xi + a * math.sin(xi)
    g = np.ones(n)
    for k in range(n_steps - 1, -1, -1):
        for i in range(n):
            g[i] *= tape[k, i]
    return g


def lstm_objective_numpy(main, extra, state, seq):
    """The D-LSTM objective written by hand in NumPy, as BENCHMARKS.md section 4 states it."""
    n_layers, b, c = main.shape[0] // 2, extra.shape[1], seq.shape[0]
    hidden = [state[2 * k].copy() for k in range(n_layers)]
    cell = [state[2 * k + 1].copy() for k in range(n_layers)]
    total = 0.0
    for t in range(c - 1):
        x = seq[t] * extra[0]
        for k in range(n_layers):
            w, bias = main[2 * k], main[2 * k + 1]
            f = 1.0 / (1.0 + np.exp(-(x * w[:b] + bias[:b])))
            i = 1.0 / (1.0 + np.exp(-(hidden[k] * w[b:2 * b] + bias[b:2 * b])))
            o = 1.0 / (1.0 + np.exp(-(x * w[2 * b:3 * b] + bias[2 * b:3 * b])))
            g = np.tanh(hidden[k] * w[3 * b:] + bias[3 * b:])
            cell[k] = cell[k] * f + i * g
            hidden[k] = o * np.tanh(cell[k])
            x = hidden[k]
        y = x * extra[1] + extra[2]
        lse = np.log(np.sum(np.exp(y)) + 2.0)
        total += float(np.dot(seq[t + 1], y - lse))
    return -total / ((c - 1) * b)


def make_lstm_objective(m, scan, n_layers: int, b: int):
    """The D-LSTM objective over ``scan`` as a user writes it: ``m`` is adjit.numpy or
    jax.numpy, ``scan`` adjit.scan or jax.lax.scan; the carry holds each layer's hidden and
    cell vectors and the running total; the layers are a Python loop inside the body."""

    def sigmoid(z):
        return 1.0 / (1.0 + m.exp(-z))

    def objective(main, extra, state, seq):
        def step(carry, xs):
            hidden, cell, total = carry
            x_t, next_t = xs
            x = x_t * extra[0]
            new_hidden, new_cell = [], []
            for k in range(n_layers):
                w, bias = main[2 * k], main[2 * k + 1]
                f = sigmoid(x * w[:b] + bias[:b])
                i = sigmoid(hidden[k] * w[b:2 * b] + bias[b:2 * b])
                o = sigmoid(x * w[2 * b:3 * b] + bias[2 * b:3 * b])
                g = m.tanh(hidden[k] * w[3 * b:] + bias[3 * b:])
                c = cell[k] * f + i * g
                x = o * m.tanh(c)
                new_hidden.append(x)
                new_cell.append(c)
            y = x * extra[1] + extra[2]
            lse = m.log(m.sum(m.exp(y)) + 2.0)
            return (new_hidden, new_cell, total + m.dot(next_t, y - lse)), None

        init = ([state[2 * k] for k in range(n_layers)],
                [state[2 * k + 1] for k in range(n_layers)], 0.0 * main[0, 0])
        (_, _, total), _ = scan(step, init, (seq[:-1], seq[1:]))
        return -total / ((seq.shape[0] - 1) * b)

    return objective


def read_lstm(path: str):
    """An ADBench D-LSTM file: header ``l c b``, then main (2l, 4b), extra (3, b), state
    (2l, b), seq (c, b)."""
    with open(path) as fh:
        n_layers, c, b = (int(v) for v in fh.readline().split())
        values = np.array(fh.read().split(), dtype=np.float64)
    shapes = [(2 * n_layers, 4 * b), (3, b), (2 * n_layers, b), (c, b)]
    if values.size != sum(r * k for r, k in shapes):
        raise ValueError(f"{path}: {values.size} numbers, expected {shapes}")
    out, at = [], 0
    for r, k in shapes:
        out.append(values[at:at + r * k].reshape(r, k))
        at += r * k
    return out


def generate_lstm(n_layers: int, c: int, b: int = 14, seed: int = LSTM_SEED):
    """Inputs generated the way the data file's look: main, extra and state drawn from
    U(0, 1), the sequence 0/1 bits (a quarter of them ones, as in the file)."""
    rng = np.random.default_rng(seed)
    main = rng.uniform(0.0, 1.0, (2 * n_layers, 4 * b))
    extra = rng.uniform(0.0, 1.0, (3, b))
    state = rng.uniform(0.0, 1.0, (2 * n_layers, b))
    seq = (rng.uniform(0.0, 1.0, (c, b)) < LSTM_BITS_P).astype(np.float64)
    return main, extra, state, seq


# --------------------------------------------------------------------------- kernel analysis


def kernel_profile(source: str) -> str:
    """What the generated kernel does per loop step: for each ``for stepN`` loop, how many
    arrays it allocates per step (np.empty/zeros/copy at any depth inside it) and how many
    arrays the kernel allocates with the trip count as leading dimension (stored per step)."""
    lines = source.splitlines()
    parts = []
    for k, line in enumerate(lines):
        m = re.match(r"(\s*)for (step\d+) in range\((.*)\):", line)
        if not m:
            continue
        indent = len(m.group(1))
        allocs = 0
        for inner in lines[k + 1:]:
            if inner.strip() and len(inner) - len(inner.lstrip()) <= indent:
                break
            allocs += len(re.findall(r"np\.(empty|zeros|copy|ones)\(", inner))
        direction = "reversed" if "-1, -1" in m.group(3) else "forward"
        parts.append(f"{direction} loop: {allocs} array allocations per step")
    first = re.search(r"for step\d+ in range\((\d+)", source)
    if first:
        stacked = len(re.findall(rf"np\.empty\(\({first.group(1)}[,)]", source))
        parts.append(f"{stacked} arrays of {first.group(1)} x ... stored per step")
    return "; ".join(parts)


def _first_call(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


# --------------------------------------------------------------------------- row 9


def _steady(fn, arg, calls: int = 3) -> float:
    best = math.inf
    for _ in range(calls):
        t0 = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - t0)
    return best


def _best(runs):
    times = [t for t, _ in runs if t is not None]
    notes = [n for _, n in runs if n]
    return (min(times) if times else None), "; ".join(dict.fromkeys(notes))


def row9_loops(ctx: Context) -> None:
    """Issue 9's loop row: compile time independent of the trip count, and the time per call
    of grad through a fori_loop against a hand-written forward + adjoint loop and JAX."""
    log("row 9: grad through fori_loop, n=1000 float64, N = 400 and 10^5")
    adjit, anp, rep = ctx.adjit, ctx.anp, ctx.report
    x = np.random.default_rng(0).uniform(-2.0, 2.0, LOOP_N)
    # Compile times are first calls at 2 elements: the kernel is the same at any length (the
    # length is symbolic), and the run is then negligible even at 10^5 steps, so the first
    # call minus a steady call is the compilation, not the noise of a 2-second run.
    x2 = x[:2].copy()
    variants = 3 if ctx.quick else 5  # compile-time samples: new functions (new constant a)
    coeffs = [LOOP_A * (1.0 + 1e-3 * j) for j in range(variants)]
    jax = jnp = None
    if "jax" in ctx.peers:
        jax, jnp = ctx.peers["jax"]

    def adjit_loss(n_steps, a):
        def loss(v):
            return anp.sum(adjit.fori_loop(0, n_steps, lambda i, u: u + a * anp.sin(u), v))
        return loss

    def jax_grad(n_steps, a):
        jg = jax.jit(jax.grad(lambda v: jnp.sum(jax.lax.fori_loop(
            0, n_steps, lambda i, u: u + a * jnp.sin(u), v))))
        return lambda v: jg(v).block_until_ready()

    # A warm process: a straight-line grad, and a grad through a loop of another body, are
    # compiled before anything is timed (their first calls are reported, not counted).
    warm = {}
    try:
        warm["straight"] = _first_call(adjit.grad(lambda v: anp.sum(v * anp.cos(v) + 0.5)),
                                       x)[0]
        warm["loop"] = _first_call(adjit.grad(lambda v: anp.sum(adjit.fori_loop(
            0, 3, lambda i, u: 0.9 * u + anp.cos(u), v))), x)[0]
        log(f"  warm-up first calls: straight-line {fmt_time(warm['straight'])}, first loop "
            f"{fmt_time(warm['loop'])}")
    except Exception as e:
        log(f"  adjit warm-up: ERROR {_short(e, 400)}")
    if jax is not None:
        jax_grad(3, 0.5)(jnp.asarray(x2))
    hand_compile = _first_call(loop_grad_hand, x2, 2, LOOP_A)[0]

    comp: dict = {}
    errors: dict = {}

    def sample(key, make, arg, expected):
        if key in errors:
            return
        try:
            fn = make()
            first, r = _first_call(fn, arg)
            check_close(f"{key} first call", np.asarray(r), expected, rtol=1e-12, atol=1e-14)
            comp.setdefault(key, []).append(first - _steady(fn, arg))
        except Exception as e:
            errors[key] = (f"check failed: {_short(e)}" if isinstance(e, CheckError)
                           else f"error: {_short(e)}")
            log(f"  {key}: {errors[key]}")

    for a in coeffs:  # alternating, so that a noisy stretch hits every kind alike
        sample(("adjit", "straight"),
               lambda a=a: adjit.grad(lambda v: anp.sum(v + a * anp.sin(v))), x2,
               1.0 + a * np.cos(x2))
        for n_steps in LOOP_STEPS:
            exp = loop_grad_hand(x2, n_steps, a)
            sample(("adjit", n_steps), lambda n=n_steps, a=a: adjit.grad(adjit_loss(n, a)), x2,
                   exp)
            if jax is not None:
                sample(("JAX", n_steps), lambda n=n_steps, a=a: jax_grad(n, a),
                       jnp.asarray(x2), exp)
    for key, ts in comp.items():
        log(f"  compile {key}: {', '.join(fmt_time(t) for t in ts)}")

    for n_steps in LOOP_STEPS:
        log(f"  N = {n_steps}: time per call, n = {LOOP_N}")
        expected = loop_grad_hand(x, n_steps, LOOP_A)

        def check(label, expected=expected):
            return lambda r: check_close(f"{label} gradient", np.asarray(r), expected,
                                         rtol=1e-12, atol=1e-14)

        runs = {"adjit": [], "hand": [], "JAX": []}
        g = adjit.grad(adjit_loss(n_steps, LOOP_A))
        jg = jax_grad(n_steps, LOOP_A) if jax is not None else None
        xj = jnp.asarray(x) if jax is not None else None
        before = ctx.compiles()
        rounds = 1 if ctx.quick and n_steps > 1000 else 2
        for _ in range(rounds):  # alternating rounds, minimum kept
            runs["adjit"].append(measure(ctx, f"adjit grad N={n_steps}", g, x, check("adjit")))
            runs["hand"].append(measure(
                ctx, f"hand njit N={n_steps}",
                lambda v, n_steps=n_steps: loop_grad_hand(v, n_steps, LOOP_A), x, check("hand")))
            if jg is not None:
                runs["JAX"].append(measure(ctx, f"jax jit(grad) N={n_steps}", jg, xj,
                                           check("JAX")))
        after = ctx.compiles()
        a_time, a_note = _best(runs["adjit"])
        h_time, h_note = _best(runs["hand"])
        j_time, j_note = _best(runs["JAX"]) if jg is not None else (None,
                                                                    "not installed (skipped)")
        a_n = a_note and f"adjit {a_note}"
        recompiled = ("" if before is None or after is None or after == before else
                      f"adjit compiled {after - before} kernel(s) at n=1000 after n=2")
        what = f"`grad` of sum(fori_loop) N={n_steps:,}, n=1000 float64: per call"
        rep.lines.append(Line(
            "9", what, "hand-written Numba", a_time, h_time, "≤ 1.2x", lambda r, *_: r <= 1.2,
            "; ".join(p for p in (a_n, h_note, recompiled, "`@njit(fastmath=True)` forward loop "
                                  "storing 1 + a cos x per step (in place, no allocation per "
                                  "step), then the adjoint loop") if p)))
        rep.lines.append(Line(
            "9", what, "JAX", a_time, j_time, "faster (< 1x)", lambda r, *_: r < 1.0,
            "; ".join(p for p in (a_n, j_note, "`jax.jit(jax.grad(...))` of `lax.fori_loop`")
                      if p)))
        if ("adjit", n_steps) in comp or ("JAX", n_steps) in comp:
            a_c, j_c = comp.get(("adjit", n_steps)), comp.get(("JAX", n_steps))
            rep.lines.append(Line(
                "9", f"compile time of `grad` through `fori_loop`, N={n_steps:,}", "JAX",
                min(a_c) if a_c else None, min(j_c) if j_c else None, "", None,
                "; ".join(p for p in (
                    errors.get(("adjit", n_steps)), errors.get(("JAX", n_steps)),
                    f"first call − steady call at 2 elements, minimum over {variants} new "
                    "functions", a_c and "adjit " + ", ".join(map(fmt_time, a_c)),
                    j_c and "JAX " + ", ".join(map(fmt_time, j_c))) if p)))

    lo, hi = LOOP_STEPS
    c_lo, c_hi = comp.get(("adjit", lo)), comp.get(("adjit", hi))
    c_st = comp.get(("adjit", "straight"))
    rep.lines.append(Line(
        "9", "compile time of `grad` through `fori_loop`: N=100,000 vs N=400", "adjit at N=400",
        c_hi and min(c_hi), c_lo and min(c_lo), "within 20%", lambda r, *_: 1 / 1.2 <= r <= 1.2,
        f"first call − steady call at 2 elements, minimum over {variants} new functions each"))
    rep.lines.append(Line(
        "9", "compile time of `grad` through `fori_loop` (N=400) vs a straight-line kernel",
        "adjit straight-line `grad(sum(x + a sin x))`", c_lo and min(c_lo), c_st and min(c_st),
        "same order (≤ 3x)", lambda r, *_: r <= 3.0,
        "; ".join(p for p in (
            errors.get(("adjit", "straight")),
            "the loop's body as one straight-line step, measured alike; the bound 3x is this "
            "row's reading of 'of the order'",
            warm and f"the first grad through a loop in the process took "
            f"{fmt_time(warm.get('loop'))} (one-off, not counted; the first straight-line grad "
            f"{fmt_time(warm.get('straight'))})",
            f"hand-written njit loop compile {fmt_time(hand_compile)}") if p)))
    rep.lines.append(Line(
        "9", "compile time of `grad` through `fori_loop` (N=400) vs compiling a hand-written loop",
        "hand-written Numba (first call of its `@njit` loop)", c_lo and min(c_lo), hand_compile,
        "", None, "reference, no goal: the hand-written forward + adjoint loop's first call at 2 "
        "elements and 2 steps, once, after the warm-up"))
    for n_steps in LOOP_STEPS:
        try:
            prof = kernel_profile(adjit.inspect(adjit.grad(adjit_loss(n_steps, LOOP_A)),
                                                x).source)
        except Exception as e:
            prof = f"adjit.inspect failed: {_short(e)}"
        rep.notes.append(f"Row 9 adjit kernel (`adjit.inspect(...).source`), N={n_steps:,}: "
                         f"{prof}. The hand-written loop allocates nothing per step and "
                         "stores one N x n array.")


# --------------------------------------------------------------------------- row 10


def row10_lstm(ctx: Context) -> None:
    """ADBench D-LSTM: gradient w.r.t. main and extra through adjit.scan; J/F against the
    best objective of the run, and the gradient time against JAX's jit(grad) of lax.scan."""
    log("row 10: D-LSTM gradient through scan")
    adjit, anp, rep = ctx.adjit, ctx.anp, ctx.report
    path = os.path.join(os.path.dirname(ctx.adjit_root), "shared", "data", "adbench", LSTM_FILE)
    if not os.path.exists(path):
        path = os.path.join(ctx.bench_dir, "..", "..", "shared", "data", "adbench", LSTM_FILE)
    cases = []
    try:
        cases.append(("l=2, c=1024 (data file)", read_lstm(path)))
    except Exception as e:
        rep.notes.append(f"Row 10: cannot read {LSTM_FILE}: {_short(e)}")
    cases.append((f"l=4, c=4096 (generated, seed {LSTM_SEED})", generate_lstm(4, 4096)))

    for name, (main, extra, state, seq) in cases:
        n_layers, b = main.shape[0] // 2, extra.shape[1]
        log(f"  {name}")
        args = (main, extra, state, seq)
        ref_value = lstm_objective_numpy(*args)

        def check_value(label, ref_value=ref_value):
            return lambda r: check_close(f"{label} objective", float(np.asarray(r)), ref_value,
                                         rtol=1e-12)

        objectives, notes = {}, []
        # adjit: the objective, and its gradient (first call timed: trace + compile + run).
        fa = make_lstm_objective(anp, adjit.scan, n_layers, b)
        obj_a = adjit.jit(fa)
        objectives["adjit `jit`"] = measure(ctx, "adjit objective", lambda a: obj_a(*a), args,
                                            check_value("adjit"))
        objectives["NumPy"] = measure(ctx, "NumPy objective",
                                      lambda a: lstm_objective_numpy(*a), args,
                                      check_value("NumPy"))
        grad_a = adjit.grad(fa, argnums=(0, 1))
        try:
            a_first, a_grad = _first_call(grad_a, *args)
            notes.append(f"adjit `grad` first call {fmt_time(a_first)}")
            log(f"  adjit grad first call {fmt_time(a_first)}")
        except Exception as e:
            a_grad, a_first = None, None
            notes.append(f"adjit grad error: {_short(e)}")
            log(f"  adjit grad: ERROR {_short(e, 400)}")

        j_time, j_note, j_grad = None, "not installed (skipped)", None
        if "jax" in ctx.peers:
            jax, jnp = ctx.peers["jax"]
            fj = make_lstm_objective(jnp, jax.lax.scan, n_layers, b)
            args_j = tuple(jnp.asarray(v) for v in args)
            obj_j = jax.jit(fj)
            objectives["JAX `jit`"] = measure(ctx, "jax objective",
                                              lambda a: obj_j(*a).block_until_ready(), args_j,
                                              check_value("JAX"))
            grad_j = jax.jit(jax.grad(fj, argnums=(0, 1)))
            try:
                j_first, j_grad = _first_call(lambda a: jax.block_until_ready(grad_j(*a)),
                                              args_j)
                j_grad = tuple(np.asarray(v) for v in j_grad)
                notes.append(f"JAX `jit(grad)` first call {fmt_time(j_first)}")
                j_note = ""
            except Exception as e:
                j_note = f"error: {_short(e)}"

        # Gradients: adjit's against JAX's (relative to each block's largest entry).
        def check_grad(label, r, j_grad=j_grad):
            if j_grad is None:
                raise CheckError("no JAX gradient to check against")
            for part, got, exp in zip(("main", "extra"), r, j_grad):
                scale = float(np.max(np.abs(exp)))
                check_close(f"{label} d/d{part}", np.asarray(got), exp, rtol=1e-9,
                            atol=1e-12 * scale)

        a_time, a_note = (None, "no gradient")
        if a_grad is not None:
            a_time, a_note = measure(ctx, "adjit grad", lambda a: grad_a(*a), args,
                                     lambda r: check_grad("adjit", r))
        if j_grad is not None:
            j_time, j_note = measure(ctx, "jax grad",
                                     lambda a: jax.block_until_ready(grad_j(*a)), args_j,
                                     lambda r: check_grad("JAX", tuple(map(np.asarray, r))))

        timed = {k: t for k, (t, _) in objectives.items() if t is not None}
        obj_notes = [f"{k} {n}" for k, (_, n) in objectives.items() if n]
        best = min(timed, key=timed.get) if timed else None
        objs = ", ".join(f"{k} {fmt_time(t)}" for k, t in timed.items())
        what = f"D-LSTM gradient (main, extra), {name}, b={b}"
        a_n = a_note and f"adjit {a_note}"
        rep.lines.append(Line(
            "10", what + ": J/F", f"best objective ({best})" if best else "best objective",
            a_time, timed.get(best), "J/F ≤ 4", lambda r, *_: r <= 4.0,
            "; ".join(p for p in (a_n, *obj_notes, f"objectives: {objs}",
                                  a_time and j_time and f"JAX's own J/F "
                                  f"{j_time / timed[best]:.2f}") if p)))
        rep.lines.append(Line(
            "10", what, "JAX `jit(grad)` of `lax.scan`", a_time, j_time, "faster (< 1x)",
            lambda r, *_: r < 1.0,
            "; ".join(p for p in (a_n, j_note and f"JAX {j_note}", *notes) if p)))
        if a_first is not None:
            try:
                prof = kernel_profile(adjit.inspect(grad_a, *args).source)
                rep.notes.append(f"Row 10 adjit gradient kernel, {name}: {prof}.")
            except Exception as e:
                rep.notes.append(f"Row 10 adjit.inspect failed: {_short(e)}")


# --------------------------------------------------------------------------- row 11: memory

_MEMORY_SCRIPT = r"""
import json, resource, sys
import numpy as np
import adjit, adjit.numpy as anp
steps, state, schedule = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kw = {} if schedule == "stored" else {"checkpoint": "binomial", "snapshots": 20}
grad = adjit.grad(lambda x: anp.sum(adjit.fori_loop(
    0, steps, lambda i, v: v - 1e-5 * v ** 3 + 1e-4 * anp.sin(v), x, **kw)))
grad(np.linspace(0.5, 1.5, 2))  # compiled (one kernel serves every state length)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
g = grad(np.linspace(0.5, 1.5, state))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(sys.argv[4], g)
print(json.dumps({"peak_kib": after - before}))
"""


def row11_memory(ctx: Context) -> None:
    """Issue 9's memory goal: reverse mode through a fori_loop of 10^5 steps over 10^3
    float64 values, binomial checkpointing with 20 snapshots against storing every step: the
    growth of the process's peak resident memory during the gradient call (after the kernel
    is compiled on a 2-element input), each in a fresh subprocess; same gradient to 1e-10."""
    import json
    import subprocess
    import sys
    import tempfile

    steps, state = (20_000, 1000) if ctx.quick else (100_000, 1000)
    log(f"row 11: memory of reverse mode through {steps} steps x {state} values")
    env = dict(os.environ, PYTHONPATH=ctx.adjit_root)
    peaks, grads = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for schedule in ("stored", "binomial"):
            out = os.path.join(tmp, f"{schedule}.npy")
            run = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, str(steps), str(state),
                                  schedule, out], capture_output=True, text=True, env=env,
                                 timeout=1200)
            if run.returncode:
                log(f"  {schedule} failed: {run.stderr[-400:]}")
                return
            peaks[schedule] = json.loads(run.stdout.strip().splitlines()[-1])["peak_kib"]
            grads[schedule] = np.load(out)
    check_close("binomial vs stored gradient", grads["binomial"], grads["stored"], rtol=1e-10,
                atol=0.0)
    stored_bytes = steps * state * 8
    ctx.report.lines.append(Line(
        "11", f"peak memory growth, grad through fori_loop, {steps:,} steps x {state} float64",
        "storing every step", peaks["binomial"] * 1024, peaks["stored"] * 1024,
        "binomial (20 snapshots) ≤ 1/50", lambda _, a, o: a * 50 <= o,
        f"bytes, from ru_maxrss in fresh processes; one stored value per step is "
        f"{stored_bytes / 1e6:.0f} MB; gradients equal to 1e-10", unit="count"))
