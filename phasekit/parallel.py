"""Map a function over many independent points with dask.

The single place where phasekit talks to dask for embarrassingly parallel
work (grids of parameters, seeds).  Points are grouped into batches so that
the scheduler sees few, sizeable tasks.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

__all__ = ["parallel_map", "default_workers"]


def default_workers() -> int:
    """Number of worker processes for a local cluster: all cores."""
    return max(1, os.cpu_count() or 1)


def _run_batch(func: Callable[[Any], Any], batch: Sequence[Any]) -> list[Any]:
    return [func(item) for item in batch]


def parallel_map(
    func: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    client: Any = None,
    n_workers: int | None = None,
    batch_size: int | None = None,
) -> list[Any]:
    """``[func(item) for item in items]`` computed in parallel, order preserved.

    Parameters
    ----------
    func : callable
        A picklable (module-level) function of one item.
    items : sequence
        The points.
    client : dask.distributed.Client, optional
        Run on this existing cluster.  Without it: ``n_workers == 1`` runs
        serially in this process; otherwise dask's multiprocessing scheduler
        with ``n_workers`` processes (default: all cores).
    n_workers : int, optional
        Worker processes when no client is given.
    batch_size : int, optional
        Items per task; default aims at about four tasks per worker.
    """
    items = list(items)
    if not items:
        return []
    workers = n_workers or default_workers()
    if client is None and workers == 1:
        return [func(item) for item in items]
    if batch_size is None:
        n_target = 4 * (len(client.scheduler_info()["workers"]) if client is not None else workers)
        batch_size = max(1, -(-len(items) // max(1, n_target)))
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    if client is not None:
        futures = client.map(_run_batch, [func] * len(batches), batches, pure=False)
        results = client.gather(futures)
    else:
        import dask

        tasks = [dask.delayed(_run_batch)(func, b) for b in batches]
        # chunksize=1: the multiprocessing scheduler would otherwise send six tasks at a time
        results = dask.compute(*tasks, scheduler="processes", num_workers=workers, chunksize=1)
    return [r for batch in results for r in batch]
