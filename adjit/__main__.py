"""``python -m adjit SUBCOMMAND``: adjit's command line.

    python -m adjit aot MODULE:FUNCTION[=NAME] ... --name NAME --output-dir DIR [--target T]

``aot`` builds a C shared library (``adjit.aot.build``). Each ``MODULE:FUNCTION`` names an
attribute of an importable module (a dotted path after the colon reaches into objects); the
module says how to call it with ``<FUNCTION>_example_args`` (a tuple) or the function's
``example_args`` attribute. The exported C name is the attribute's last part, or NAME after
``=``. The working directory is on ``sys.path``, so a script next to you is importable.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys


def _resolve(spec: str):
    """(export name, function, example args) of ``MODULE:FUNCTION[=NAME]``."""
    target, _, export = spec.partition("=")
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name or not attr:
        raise SystemExit(f"adjit aot: {spec!r} is not MODULE:FUNCTION")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    leaf = attr.split(".")[-1]
    examples = getattr(module, f"{leaf}_example_args", None)
    if examples is None:
        examples = getattr(obj, "example_args", None)
    if examples is None:
        raise SystemExit(f"adjit aot: {spec}: define {module_name}.{leaf}_example_args "
                         f"(a tuple of example arguments) or {attr}.example_args")
    return export or leaf, obj, tuple(examples) if isinstance(examples, list) else examples


def aot(argv) -> int:
    p = argparse.ArgumentParser(prog="python -m adjit aot",
                                description="Build a C shared library of adjit functions.")
    p.add_argument("functions", nargs="+", metavar="MODULE:FUNCTION[=NAME]")
    p.add_argument("--name", required=True, help="library name: lib<NAME>.so, <NAME>.h")
    p.add_argument("--output-dir", default=".", help="where to write the files (default: .)")
    p.add_argument("--target", default="host",
                   help="'host' (this machine's CPU, the default), 'generic' (any x86-64), or "
                        "an LLVM CPU name such as x86-64-v3")
    args = p.parse_args(argv)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    from adjit.aot import build

    functions = {}
    for spec in args.functions:
        name, fun, examples = _resolve(spec)
        functions[name] = (fun, examples)
    built = build(functions, args.name, args.output_dir, target=args.target)
    for path in (built.library, built.header, built.loader):
        print(path)
    return 0


COMMANDS = {"aot": aot}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
