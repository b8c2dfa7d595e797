"""Build examples/aot's library and C program and run it, as `make run` does (for machines
without make): python examples/aot/build_and_run.py [output folder]."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "build"))
subprocess.run([sys.executable, "-m", "adjit", "aot", "derivatives:V", "derivatives:dV",
                "derivatives:d2V", "derivatives:vdV", "--name", "deriv", "--output-dir", build],
               cwd=HERE, check=True)
exe = os.path.join(build, "main")
subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe, os.path.join(HERE, "main.c"),
                f"-I{build}", f"-L{build}", "-lderiv", "-Wl,-rpath,$ORIGIN", "-lm"], check=True)
sys.exit(subprocess.run([exe]).returncode)
