"""A long fuzz run, outside pytest: ``python tests/fuzz/run_long.py --seed S --count N``.

Checks N generated programs on the reference interpreter in float64 (value against NumPy,
derivatives to second order against finite differences and reverse against forward; forward
mode only for programs with a while_loop), one in ``--float32-every`` (drawn with the program)
in float32 too, and ``--groups`` groups of ``--group-size``
programs compiled (value, gradient, jvp and Hessian-vector product against the interpreter).
Programs are drawn by hypothesis in chunks; a failure is shrunk to a minimal program and
printed as a reproducer (adjit.numpy source and inputs), and the run goes on with the next
chunk. Exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402
from fuzz_programs import (  # noqa: E402
    check_compiled_group,
    check_interpreted,
    programs,
)
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _run_chunk(strategy, check, n, chunk_seed, counter):
    """Run ``check`` on ``n`` drawn examples; returns the failure text or None."""
    @settings(max_examples=n, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @seed(chunk_seed)
    @given(strategy)
    def run(example):
        check(example)
        counter[0] += 1

    try:
        run()
    except Exception as exc:  # the shrunk failure
        notes = "\n".join(getattr(exc, "__notes__", ()))
        return f"{type(exc).__name__}: {exc}\n{notes}"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--count", type=int, default=1000, help="programs on the interpreter")
    ap.add_argument("--float32-every", type=int, default=4)
    ap.add_argument("--groups", type=int, default=None,
                    help="compiled groups (default: count // 500)")
    ap.add_argument("--group-size", type=int, default=6)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--start-chunk", type=int, default=0,
                    help="begin at this chunk of the seed's sequence (rerun a failed chunk)")
    args = ap.parse_args(argv)
    groups = args.count // 500 if args.groups is None else args.groups

    start = time.time()
    failures = []
    checked = {"float64": [0], "float32": [0], "compiled": [0]}

    def check(drawn):
        prog, pick = drawn
        check_interpreted(prog, np.float64)
        checked["float64"][0] += 1
        if args.float32_every and pick == 0:
            check_interpreted(prog, np.float32)
            checked["float32"][0] += 1

    def run_group(g):
        def check_group(progs):
            dtype = np.float32 if g % 2 else np.float64
            check_compiled_group(progs, dtype)
            checked["compiled"][0] += len(progs)

        strategy = st.lists(programs(max_ops=5, max_depth=1), min_size=args.group_size,
                            max_size=args.group_size)
        failure = _run_chunk(strategy, check_group, 1, args.seed * 100_003 + 50_000 + g, [0])
        if failure:
            failures.append(failure)
            print(f"FAILURE (compiled group {g}):\n{failure}\n", flush=True)
        print(f"[{time.time() - start:7.1f}s] compiled group {g + 1}/{groups}: "
              f"{checked['compiled'][0]} programs compiled", flush=True)

    # The compiled groups are spread over the run, so a run cut short has some of each.
    done, chunk_no, groups_done = 0, args.start_chunk, 0
    while done < args.count:
        n = min(args.chunk, args.count - done)
        # whether a program is also checked in float32 is drawn with it, so a failure
        # replays (and shrinks) the same way
        drawn = st.tuples(programs(), st.integers(0, max(args.float32_every, 1) - 1))
        failure = _run_chunk(drawn, check, n, args.seed * 100_003 + chunk_no, [0])
        if failure:
            failures.append(failure)
            print(f"FAILURE (interpreted, chunk {chunk_no}):\n{failure}\n", flush=True)
        done += n
        chunk_no += 1
        print(f"[{time.time() - start:7.1f}s] {checked['float64'][0]} programs checked "
              f"(float32: {checked['float32'][0]})", flush=True)
        while groups_done < groups * done // args.count:
            run_group(groups_done)
            groups_done += 1

    elapsed = time.time() - start
    print(f"checked {checked['float64'][0]} programs on the interpreter (float64), "
          f"{checked['float32'][0]} also in float32, {checked['compiled'][0]} compiled "
          f"({groups} kernels); {len(failures)} failures; seed {args.seed}; {elapsed:.0f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
