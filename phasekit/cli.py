"""The ``phasekit`` command line.

Subcommands: ``run`` (a study file: sweep or recipe, then figures and
report), ``report`` (Markdown report of a sweep dataset), ``fixed-points``
(table of fixed points with eigenvalues), ``integrate`` (one trajectory to
netCDF and a figure) and ``recipes`` (list the named recipes).  Errors in the
input are reported on one line, with exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--K", type=int, default=2, help="student hidden units")
    p.add_argument("--M", type=int, default=None, help="teacher hidden units (default: K)")
    p.add_argument("--activation", default="relu", help="activation (see phasekit.available_activations())")
    p.add_argument("--eta", type=float, default=0.1, help="learning rate")
    p.add_argument("--first-order", action="store_true", help="drop the eta^2 term (small-eta limit)")
    p.add_argument("--noise", type=float, default=0.0, help="output-noise standard deviation")


def _model(args: argparse.Namespace):
    from .committee import Committee

    return Committee(args.K, args.M if args.M is not None else args.K, activation=args.activation,
                     eta=args.eta, second_order=not args.first_order, noise=args.noise)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``phasekit`` (one subparser per subcommand)."""
    parser = argparse.ArgumentParser(
        prog="phasekit", formatter_class=_Formatter,
        description="Exact order-parameter dynamics, fixed points and phase diagrams of on-line SGD "
                    "in soft committee machines.",
        epilog="example:\n  phasekit run studies/quickstart.toml\n  phasekit run --help")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "run", formatter_class=_Formatter, help="run a study file (sweep or recipe), then figures and report",
        description="Run a study file.  A sweep study computes its grid in parallel with dask "
                    "(resuming from checkpoints under OUTDIR/checkpoints), writes OUTDIR/<name>.nc, "
                    "figures and OUTDIR/report.md.  A recipe study runs its recipe.",
        epilog="examples:\n  phasekit run studies/quickstart.toml\n"
               "  phasekit run studies/quickstart.toml --workers 2 --outdir /tmp/qs\n"
               "  phasekit run big.toml --scheduler tcp://10.0.0.5:8786")
    p.add_argument("study", type=Path, help="study file (TOML)")
    p.add_argument("--outdir", type=Path, default=None, help="output folder (default: outputs/<study name>)")
    p.add_argument("--scheduler", default=None, help="address of a running dask scheduler to use")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: all cores; 0: serial, no dask)")
    p.add_argument("--batch-size", type=int, default=None, help="grid points per dask task")
    p.add_argument("--fresh", action="store_true", help="discard existing checkpoints instead of resuming")
    p.add_argument("--quick", action="store_true", help="recipes only: the cheap variant")
    p.add_argument("--no-report", action="store_true", help="skip figures and report")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "report", formatter_class=_Formatter, help="Markdown report with figures of a sweep dataset",
        description="Write report.md and figures/ for a dataset written by 'phasekit run'.",
        epilog="example:\n  phasekit report outputs/quickstart/quickstart.nc")
    p.add_argument("dataset", type=Path, help="sweep dataset (netCDF)")
    p.add_argument("--outdir", type=Path, default=None, help="output folder (default: the dataset's folder)")
    p.add_argument("--no-trajectories", action="store_true", help="skip the order-parameter trajectories")

    p = sub.add_parser(
        "fixed-points", formatter_class=_Formatter, help="table of fixed points with their eigenvalues",
        description="Find the fixed points of the order-parameter flow from many starts and print "
                    "each with eps_g, stability and the leading Jacobian eigenvalues.",
        epilog="example:\n  phasekit fixed-points --K 2 --M 2 --activation relu --first-order")
    _add_model_args(p)
    p.add_argument("--n-starts", type=int, default=64, help="random starting points of the root finder")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting points")
    p.add_argument("--out", type=Path, default=None, help="also write the fixed points to this netCDF file")

    p = sub.add_parser(
        "integrate", formatter_class=_Formatter, help="integrate one trajectory to netCDF and a figure",
        description="Integrate the order-parameter ODEs from R = X * identity, Q = diag(Q0) and write "
                    "the trajectory (netCDF) and a figure of R, Q and eps_g.",
        epilog="example:\n  phasekit integrate --K 2 --activation relu --eta 0.1 --first-order "
               "--eta-alpha-max 60 --out outputs/relu22.nc")
    _add_model_args(p)
    p.add_argument("--X", type=float, default=1e-3, help="initial overlaps R_in = X for i == n")
    p.add_argument("--Q0", type=float, nargs="+", default=None, help="initial student norms Q_ii")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--alpha-max", type=float, default=None, help="final time alpha")
    g.add_argument("--eta-alpha-max", type=float, default=None, help="final time in eta*alpha (default 100)")
    p.add_argument("--n-points", type=int, default=501, help="samples of the trajectory")
    p.add_argument("--stop-eg", type=float, default=None, help="stop once eps_g falls below this")
    p.add_argument("--out", type=Path, default=Path("outputs/trajectory.nc"), help="netCDF file to write")
    p.add_argument("--figure", type=Path, default=None, help="PNG figure (default: next to --out)")

    sub.add_parser("recipes", formatter_class=_Formatter, help="list the named recipes",
                   description="List the recipes that a study file can name with recipe = \"NAME\".",
                   epilog="example:\n  phasekit recipes")
    return parser


def _cmd_run(args: argparse.Namespace) -> int:
    from .study import load_study

    study = load_study(args.study)
    outdir = args.outdir or Path("outputs") / study.name
    if study.recipe is not None:
        from .recipes import run_recipe

        files = run_recipe(study.recipe, outdir, quick=args.quick, **study.parameters)
        for role, f in files.items():
            print(f"{role}: {f}")
        return 0
    from .report import write_report
    from .sweeps import sweep

    ds = sweep(study, scheduler=args.scheduler, n_workers=args.workers, outdir=outdir,
               batch_size=args.batch_size, fresh=args.fresh, progress=not args.no_progress)
    counts = ", ".join(f"{ds.attrs[f'n_{s}']} {s}" for s in ("ok", "diverged", "failed", "missing")
                       if ds.attrs.get(f"n_{s}"))
    dataset = outdir / f"{study.name}.nc"
    print(f"dataset: {dataset} ({study.n_points} points: {counts})")
    if not args.no_report:
        report = write_report(ds, outdir, dataset_path=dataset)
        print(f"report: {report}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    if not args.dataset.exists():
        raise ValueError(f"dataset: no such file {args.dataset}")
    print(f"report: {write_report(args.dataset, args.outdir, trajectories=not args.no_trajectories)}")
    return 0


def _cmd_fixed_points(args: argparse.Namespace) -> int:
    import numpy as np

    from .fixed_points import fixed_points

    model = _model(args)
    fps = fixed_points(model, n_starts=args.n_starts, seed=args.seed)
    print(f"# fixed points of {model!r}")
    print(f"{'#':>3} {'kind':>17} {'eps_g':>10} {'stable':>6} {'unstable':>8} {'residual':>9}  "
          f"leading eigenvalues [1/alpha]; state")
    for j, fp in enumerate(fps):
        lam = np.asarray(fp.eigenvalues)
        lead = ", ".join(f"{complex(x).real:+.4g}" + (f"{complex(x).imag:+.2g}j" if abs(complex(x).imag) > 1e-9
                                                     else "") for x in lam[:4])
        R = np.array2string(np.asarray(fp.state.R), precision=4, separator=",").replace("\n", "")
        Q = np.array2string(np.asarray(fp.state.Q), precision=4, separator=",").replace("\n", "")
        kind = fp.label or fp.kind
        print(f"{j:>3} {kind:>17} {fp.eg:>10.5g} {('yes' if fp.stable else 'no'):>6} {fp.n_unstable:>8d} "
              f"{fp.residual:>9.2g}  [{lead}]; R = {R}, Q = {Q}")
        if fp.escape_eigenvalue is not None:
            print(f"    symmetric plateau: escape eigenvalue {float(np.real(fp.escape_eigenvalue)):.5g}")
    if args.out is not None:
        import xarray as xr

        args.out.parent.mkdir(parents=True, exist_ok=True)
        parts = [fp.to_dataset().expand_dims(fixed_point=[j]) for j, fp in enumerate(fps)]
        if parts:
            xr.concat(parts, dim="fixed_point").to_netcdf(args.out, engine="scipy")
            print(f"dataset: {args.out}")
    return 0


def _cmd_integrate(args: argparse.Namespace) -> int:
    from .dynamics import integrate
    from .plotting import save_figure
    from .plotting.committee import order_parameters
    from .sweeps import initial_state

    model = _model(args)
    state0 = initial_state(model, args.X, Q0=args.Q0)
    if args.alpha_max is not None:
        alpha_max = args.alpha_max
    else:
        alpha_max = (args.eta_alpha_max or 100.0) / model.eta
    traj = integrate(model, state0, alpha_max, n_points=args.n_points, stop_eg=args.stop_eg)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    traj.to_netcdf(args.out, engine="scipy")
    fig_path = args.figure or args.out.with_suffix(".png")
    save_figure(order_parameters(traj), fig_path)
    print(f"status: {traj.attrs['status']} ({traj.attrs['message']}); final eps_g = {float(traj['eg'][-1]):.6g}")
    print(f"dataset: {args.out}")
    print(f"figure: {fig_path}")
    return 0


def _cmd_recipes(args: argparse.Namespace) -> int:
    from .recipes import available_recipes, get_recipe

    for name in available_recipes():
        doc = (get_recipe(name).__doc__ or "").strip().splitlines()
        print(f"{name:28s} {doc[0] if doc else ''}")
    return 0


_COMMANDS = {"run": _cmd_run, "report": _cmd_report, "fixed-points": _cmd_fixed_points,
             "integrate": _cmd_integrate, "recipes": _cmd_recipes}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``phasekit`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, RuntimeError, NotImplementedError, OSError) as exc:
        # Bad input or an unavailable piece: one line, no traceback.
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"phasekit {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"phasekit {args.command}: interrupted (finished points are checkpointed)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
