"""Committee grid points integrated as one batch, ahead of their measures.

A phase diagram is many small runs; one run alone is dominated by the fixed
cost of each right-hand-side call.  :class:`Prefetch` integrates the
trajectories of grid points that share their shape (``K``, ``M``,
activations, order, teacher, weights; any ``eta``, ``noise``,
``weight_decay``, ``drift``, ``eta_second_layer``, horizon and sampling) and
their ``stop_eg`` as one batch
(:func:`phasekit.committee.batch.integrate_batch`), together with the
eps_g crossings their ``convergence_time`` measures need.  The results are
handed to each point's :class:`~phasekit.study.measures.PointContext` before
its measures run, so the measures (and each point's checkpoint) are those of
the per-point path; they equal the per-point results to the solver
tolerance.

Points are batched only where the per-point path would integrate exactly
this: the study integrates with DOP853 and the point has no learning-rate
schedule; everything else (a point whose model or start cannot be built, a
batch that raises) is left to the per-point path, which reports it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ..committee.batch import CommitteeBatch, batch_key, integrate_batch
from .committee_measures import horizon, point_model, point_start
from .measures import PointContext

__all__ = ["BATCH_SIZE", "TRAJECTORY_MEASURES", "Prefetch"]

# Measures that read the point's trajectory (and nothing a batch changes).
TRAJECTORY_MEASURES = ("trajectory", "final_eg", "convergence_time")

# Points per batch: the batch's cost per step grows slowly with its size, its
# number of steps is that of its slowest point; beyond ~64 little is gained.
BATCH_SIZE = 64


def _sample_kwargs(ctx: PointContext) -> dict[str, Any]:
    p = ctx.params  # as committee_measures.point_trajectory samples: n_points up to where the run ends
    return {"n_points": p["n_points"], "spacing": p["spacing"]}


class Prefetch:
    """Batched trajectories for the points of ``tasks``, a stretch of the grid at a time.

    The grid's flat indices are cut into stretches of ``8 * batch_size``
    consecutive points; when the first point of a stretch is asked for, the
    stretch's points still to compute are grouped by shape and each group
    integrated in batches of at most ``batch_size``.  Only models whose rows
    are rounded independently of their batch are batched
    (:attr:`~phasekit.committee.batch.CommitteeBatch.exact_rows`), so a point
    gets the very same numbers whichever points it was integrated with: a
    resumed, extended or parallel run equals an uninterrupted serial one.

    Parameters
    ----------
    study : Study
    tasks : list of (index, record, trajectory)
        The runner's tasks.
    batch_size : int
        Most points per batch.
    """

    def __init__(self, study: Any, tasks: list, batch_size: int = BATCH_SIZE) -> None:
        self.study = study
        self.batch_size = int(batch_size)
        self.uses = any(m in study.measures for m in TRAJECTORY_MEASURES)
        self.enabled = study.system == "committee" and study.solver.method == "DOP853" and self.batch_size > 1
        self.wanted = {int(j) for j, rec, traj in tasks if (rec and self.uses) or traj}
        # Points whose samples someone reads (a stored trajectory, the "trajectory" measure); the
        # others' measures read only where and how the run ended, so their batch is integrated
        # without the second pass that samples early stops (the same steps, the same end).
        self.sampled = {int(j) for j, rec, traj in tasks if traj or (rec and "trajectory" in study.measures)}
        self._ready: dict[int, dict] = {}
        self._done_blocks: set[int] = set()

    def _point(self, j: int) -> Any:
        """``(key, model, start, horizon, sampling, thresholds)`` of point ``j``, or None (per-point path)."""
        try:
            ctx = PointContext(self.study, j)
            model = point_model(ctx)
            key = batch_key(model)
            if key is None or not CommitteeBatch([model]).exact_rows:
                return None
            amax = horizon(ctx)
            stop = ctx.params["stop_eg"]
            thresholds = ()
            if "convergence_time" in self.study.measures:
                thr = ctx.settings("convergence_time")["threshold"] or stop or 1e-3
                thresholds = () if thr == stop else (float(thr),)
            # Two samples (the start and where the run ends) for a point whose samples nobody reads:
            # sampled or not, a point's steps, end and crossings are the same, so both share a batch.
            sampling = _sample_kwargs(ctx) if j in self.sampled else {"n_points": 2, "spacing": ctx.params["spacing"]}
            return (key, stop, sampling["spacing"]), model, point_start(ctx), amax, sampling, thresholds
        except Exception:  # the per-point path reports it
            return None

    def worker_tasks(self, tasks: list, size: int) -> list[list]:
        """``tasks`` cut into worker tasks of at most ``size`` points that share their shape.

        A worker batches only the points of its own task, so a task holds
        points of one model shape.  The shapes with the most
        field pairs ``K * M`` (the costliest per point) go first, so that the
        run does not end waiting on one large task; among equals the grid order.
        """
        groups: dict[Any, list] = {}
        cost: dict[Any, int] = {}
        for task in tasks:
            key, pairs = None, 0
            try:
                model = point_model(PointContext(self.study, int(task[0])))
                key, pairs = batch_key(model), model.K * model.M
            except Exception:  # the per-point path reports it
                pass
            groups.setdefault(key, []).append(task)
            cost[key] = max(cost.get(key, 0), pairs)
        return [g[k:k + size] for key in sorted(groups, key=lambda key: -cost[key])
                for g in [groups[key]] for k in range(0, len(g), size)]

    def take(self, index: int) -> dict | None:
        """What to put in point ``index``'s context (its trajectory, crossings, seconds), or None."""
        index = int(index)
        if not self.enabled or index not in self.wanted:
            return None
        block = index // (8 * self.batch_size)
        if block not in self._done_blocks:
            self._done_blocks.add(block)
            self._compute_block(block)
        return self._ready.pop(index, None)

    def _compute_block(self, block: int) -> None:
        lo = block * 8 * self.batch_size
        groups: dict[Any, list] = {}
        for j in sorted(j for j in self.wanted if lo <= j < lo + 8 * self.batch_size):
            pt = self._point(j)
            if pt is not None:
                groups.setdefault(pt[0], []).append((j, pt))
        chunks = [(key[1], g[k:k + self.batch_size]) for key, g in groups.items()
                  for k in range(0, len(g), self.batch_size)]
        for stop, group in chunks:
            pts = [pt for _, pt in group]
            sampling = {"n_points": np.array([pt[4]["n_points"] for pt in pts]), "spacing": pts[0][4]["spacing"]}
            thresholds = sorted({t for pt in pts for t in pt[5]})
            t0 = time.perf_counter()
            try:
                with np.errstate(all="ignore"):
                    res = integrate_batch([pt[1] for pt in pts], [pt[2] for pt in pts], [pt[3] for pt in pts],
                                          solver=self.study.solver, stop_eg=stop, thresholds=thresholds,
                                          **sampling)
            except Exception:  # the per-point path computes (and reports) these points
                continue
            share = (time.perf_counter() - t0) / len(group)
            for r, (j, pt) in enumerate(group):
                shared: dict[Any, Any] = {"trajectory": res.datasets[r]}
                for t in pt[5]:
                    shared[("convergence_time", t)] = res.crossings[t][r]
                self._ready[j] = {"shared": shared, "seconds": share}
