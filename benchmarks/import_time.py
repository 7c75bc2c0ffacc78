"""Cost of ``import phasekit`` against ``import numpy, scipy.integrate, xarray``.

Each import runs in a fresh interpreter; the two commands alternate, so that a
change of machine load hits both alike, and the ratio of the medians is
printed (the target is at most 1.2).  ``python -X importtime -c "import
phasekit"`` shows where the rest goes.

Both are timed twice: as installed (bytecode cached: ``pip install`` compiles
it; here a temporary ``PYTHONPYCACHEPREFIX``) and under
``PYTHONDONTWRITEBYTECODE=1``, where a source tree without ``__pycache__``
is compiled on every import (the installed libraries keep their bytecode).

Usage: ``python benchmarks/import_time.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "numpy, scipy.integrate, xarray": "import numpy, scipy.integrate, xarray",
    "phasekit": "import phasekit",
}


def _time(code: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t0


def _ratio(repeat: int, env: dict, what: str) -> None:
    for code in COMMANDS.values():  # warm the file cache (and write the bytecode cache)
        _time(code, env)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(repeat):
        for name, code in COMMANDS.items():
            times[name].append(_time(code, env))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(what)
    for name, m in med.items():
        print(f"  {name:32s} median {1e3 * m:7.1f} ms over {repeat} runs (interpreter start included)")
    base = med["numpy, scipy.integrate, xarray"]
    print(f"  ratio phasekit / (numpy, scipy.integrate, xarray): {med['phasekit'] / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    with tempfile.TemporaryDirectory() as cache:
        _ratio(args.repeat, {**env, "PYTHONPYCACHEPREFIX": cache}, "bytecode cached (as installed):")
    _ratio(args.repeat, {**env, "PYTHONDONTWRITEBYTECODE": "1"},
           "PYTHONDONTWRITEBYTECODE=1 (a source tree without __pycache__ is compiled on every import):")


if __name__ == "__main__":
    main()
