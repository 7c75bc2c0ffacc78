"""Finite-N simulation speed: blocked microscopic SGD against a naive loop and the floor.

For N in {1e3, 1e4, 1e5}, ReLU K = M = 2, eta = 0.1, one run, prints examples
per second of

- floor:       only drawing the N-dimensional Gaussian inputs (in blocks, as
               the simulation draws them), nothing else;
- microscopic: ``simulate(..., method="microscopic")``;
- naive:       a per-example loop of numpy calls on N-vectors (draw xi, two
               field products, the update as an outer product);

all measured in the same run, each for about ``--seconds`` seconds.  Then the
reduced chain's time per example for N in {1e2, 1e4, 1e6} at the same number
of examples (its cost must not depend on N), for one run and for 64 runs.

BLAS is pinned to one thread (set before numpy loads): the blocks are small
matrices, runs are spread over processes instead, and on a busy machine
OpenBLAS threads waiting for a core cost far more than they gain.

Usage: ``python benchmarks/simulate.py [--seconds 3]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import phasekit as pk  # noqa: E402
from phasekit.committee.simulation import block_size, simulate  # noqa: E402

MODEL = pk.Committee(2, 2, "relu", eta=0.1)
START = pk.State(1e-3 * np.eye(2), np.diag([0.2, 0.3]))


def rate(func, n_examples: int, seconds: float) -> float:
    """Examples per second of ``func()`` (which processes ``n_examples``), repeated for ``seconds``."""
    func()  # warm up
    done, t0 = 0, time.perf_counter()
    while True:
        func()
        done += n_examples
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return done / elapsed


def floor(N: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    b = block_size(MODEL, N)
    return rate(lambda: rng.standard_normal((1, b, N)), b, seconds)


def microscopic(N: int, seconds: float) -> float:
    steps = max(2000, int(2e7 / N))
    return rate(lambda: simulate(MODEL, START, N, steps / N, n_points=2), steps, seconds)


def naive(N: int, seconds: float) -> float:
    rng = np.random.default_rng(0)
    J = rng.standard_normal((2, N)) / np.sqrt(N)
    B = rng.standard_normal((2, N)) / np.sqrt(N)
    c = MODEL.eta / N
    steps = 200

    def run() -> None:
        nonlocal J
        for _ in range(steps):
            xi = rng.standard_normal(N)
            x, y = J @ xi, B @ xi
            delta = (np.maximum(y, 0).sum() - np.maximum(x, 0).sum()) * (x > 0)
            J += c * np.outer(delta, xi)

    return rate(run, steps, seconds)


def reduced_time(N: int, n_examples: int, runs: int, seconds: float) -> float:
    """Seconds per example and run of the reduced chain."""
    alpha = n_examples / N
    r = rate(lambda: simulate(MODEL, START, N, alpha, n_runs=runs, method="reduced", n_points=2),
             n_examples * runs, seconds)
    return 1.0 / r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per entry")
    args = parser.parse_args()
    s = args.seconds

    print(f"microscopic SGD, relu K = M = 2, eta = {MODEL.eta}, one run (examples per second)")
    print(f"{'N':>8} {'block':>6} {'floor':>11} {'microscopic':>12} {'naive':>10} {'micro/floor':>12} "
          f"{'micro/naive':>12}")
    for N in (1_000, 10_000, 100_000):
        f, m, n = floor(N, s), microscopic(N, s), naive(N, s)
        print(f"{N:>8} {block_size(MODEL, N):>6} {f:>11.4g} {m:>12.4g} {n:>10.4g} {m / f:>12.2f} {m / n:>12.2f}")

    print("\nreduced chain: microseconds per example and run (same number of examples at every N)")
    print(f"{'N':>8} {'1 run':>10} {'64 runs':>10}")
    times = {}
    for N in (100, 10_000, 1_000_000):
        t1 = reduced_time(N, 20_000, 1, s)
        t64 = reduced_time(N, 2_000, 64, s)
        times[N] = (t1, t64)
        print(f"{N:>8} {t1 * 1e6:>10.3g} {t64 * 1e6:>10.3g}")
    r1 = times[1_000_000][0] / times[100][0]
    r64 = times[1_000_000][1] / times[100][1]
    print(f"time(N = 1e6) / time(N = 1e2): {r1:.2f} (1 run), {r64:.2f} (64 runs)")


if __name__ == "__main__":
    main()
