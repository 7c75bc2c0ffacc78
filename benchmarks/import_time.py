"""Cost of ``import phasekit`` against ``import numpy, scipy.integrate, xarray``.

Each import runs in a fresh interpreter; the two commands alternate, so that a
change of machine load hits both alike, and the ratio of the medians is
printed (the target is at most 1.2).  ``python -X importtime -c "import
phasekit"`` shows where the rest goes.

Usage: ``python benchmarks/import_time.py [--repeat 15]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "numpy, scipy.integrate, xarray": "import numpy, scipy.integrate, xarray",
    "phasekit": "import phasekit",
}


def _time(code: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for code in COMMANDS.values():  # warm the file cache
        _time(code)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.repeat):
        for name, code in COMMANDS.items():
            times[name].append(_time(code))
    med = {name: statistics.median(t) for name, t in times.items()}
    for name, m in med.items():
        print(f"{name:32s} median {1e3 * m:7.1f} ms over {args.repeat} runs (interpreter start included)")
    base = med["numpy, scipy.integrate, xarray"]
    print(f"ratio phasekit / (numpy, scipy.integrate, xarray): {med['phasekit'] / base:.2f}")


if __name__ == "__main__":
    main()
