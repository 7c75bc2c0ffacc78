"""The ``phasekit`` command line.

Subcommands: ``run`` (a study file: its grid, then figures and report),
``report`` (Markdown report of a study dataset; computes nothing),
``studies`` (the study files with their description and cost),
``fixed-points`` (table of fixed points with eigenvalues) and ``integrate``
(one trajectory to netCDF and a figure); ``recipes`` is an alias of
``studies``.

Exit status: 0 done; 1 a run that ended with failed or missing points, or
lost its workers or scheduler, or found its output folder in use; 2 bad input
(reported on one line, before any work); 130 interrupted (Ctrl-C); 143
terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "console", "build_parser"]


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--K", type=int, default=2, help="student hidden units")
    p.add_argument("--M", type=int, default=None, help="teacher hidden units (default: K)")
    p.add_argument("--activation", default="relu", help="activation (see phasekit.available_activations())")
    p.add_argument("--eta", type=float, default=0.1, help="learning rate")
    p.add_argument("--first-order", action="store_true", help="drop the eta^2 term (small-eta limit)")
    p.add_argument("--noise", type=float, default=0.0, help="output-noise standard deviation")
    p.add_argument("--subspace", default=None,
                   help="restrict the flow to an invariant subspace, e.g. site_symmetric (K = M; cost independent of K)")


def _model(args: argparse.Namespace):
    from .committee.model import Committee

    model = Committee(args.K, args.M if args.M is not None else args.K, activation=args.activation,
                      eta=args.eta, second_order=not args.first_order, noise=args.noise)
    return model if args.subspace is None else model.restrict(args.subspace)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``phasekit`` (one subparser per subcommand)."""
    from .core.parallel import WORKER_TIMEOUT

    parser = _Parser(
        prog="phasekit", formatter_class=_Formatter,
        description="Exact order-parameter dynamics, fixed points and phase diagrams of on-line SGD "
                    "in soft committee machines.",
        epilog="example:\n  phasekit run studies/quickstart.toml\n  phasekit run --help")
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"phasekit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "run", formatter_class=_Formatter, help="run a study file, then figures and report",
        description="Run a study file: compute its grid in parallel, in local worker processes or on a dask "
                    "cluster (resuming from checkpoints under OUTDIR/checkpoints), write OUTDIR/<name>.nc, "
                    "figures and OUTDIR/report.md.  --quick runs the study's cheap variant (its [quick] "
                    "table).  Exit status: 0 done, 1 points failed or missing (or workers lost, or OUTDIR in "
                    "use by another run), 2 bad input, 130 interrupted, 143 terminated.",
        epilog="examples:\n  phasekit run studies/quickstart.toml\n"
               "  phasekit run studies/quickstart.toml --workers 2 --outdir /tmp/qs\n"
               "  phasekit run big.toml --scheduler tcp://10.0.0.5:8786")
    p.add_argument("study", type=Path, help="study file (TOML)")
    p.add_argument("--outdir", type=Path, default=None,
                   help="output folder (default: outputs/<study name>, outputs/<study name>-quick with --quick)")
    p.add_argument("--scheduler", default=None, help="address of a running dask scheduler to use")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: the study's [run] n_workers, else one per core; 0 or 1: in "
                        "this process); at most "
                        "4 per core unless the environment variable PHASEKIT_MAX_WORKERS allows more")
    p.add_argument("--batch-size", type=int, default=None, help="grid points per task (>= 1)")
    p.add_argument("--batch-points", type=int, default=None,
                   help="committee grid points of one shape integrated together as one batch (>= 1; e.g. 64; "
                        "default: the study's [run] batch_points, else 1, each point alone)")
    p.add_argument("--worker-timeout", type=float, default=WORKER_TIMEOUT,
                   help="with --scheduler: give up when the cluster has had no worker for this many seconds")
    p.add_argument("--fresh", action="store_true", help="discard existing checkpoints instead of resuming")
    p.add_argument("--repair", action="store_true",
                   help="rebuild a damaged or missing OUTDIR/checkpoints/study.json for this study, keeping "
                        "the checkpoints")
    p.add_argument("--quick", action="store_true", help="the study's cheap variant (its [quick] table)")
    p.add_argument("--no-report", action="store_true", help="skip figures and report")
    p.add_argument("--report-dir", type=Path, default=None,
                   help="write figures and report.md here instead of OUTDIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser(
        "report", formatter_class=_Formatter, help="Markdown report with figures of a study dataset",
        description="Write report.md and figures/ for a dataset written by 'phasekit run' (its .nc file), "
                    "or for a study file whose dataset is at outputs/<name>/<name>.nc.  Computes nothing: "
                    "everything shown is stored in the dataset.",
        epilog="example:\n  phasekit report outputs/quickstart/quickstart.nc\n"
               "  phasekit report studies/quickstart.toml --outdir /tmp/quickstart-report")
    p.add_argument("dataset", type=Path, help="study dataset (netCDF), or its study file (TOML)")
    p.add_argument("--quick", action="store_true",
                   help="the study's cheap variant: with a study file its dataset outputs/<name>-quick/<name>.nc; "
                        "a dataset given as .nc must be that variant")
    p.add_argument("--outdir", type=Path, default=None, help="output folder (default: the dataset's folder)")
    p.add_argument("--no-trajectories", action="store_true", help="skip the figures of stored trajectories")

    p = sub.add_parser(
        "fixed-points", formatter_class=_Formatter, help="table of fixed points with their eigenvalues",
        description="Find the fixed points of the order-parameter flow from many starts and print "
                    "each with eps_g, stability and the leading Jacobian eigenvalues.",
        epilog="example:\n  phasekit fixed-points --K 2 --M 2 --activation relu --first-order")
    _add_model_args(p)
    p.add_argument("--n-starts", type=int, default=64, help="random starting points of the root finder")
    p.add_argument("--seed", type=int, default=0, help="seed of the starting points")
    p.add_argument("--out", type=Path, default=None, help="also write the fixed points to this netCDF file")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _refuse_quick(p)

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
    _refuse_quick(p)

    for name, helptext in (("studies", "list the study files with their description and cost"),
                           ("recipes", "the same as 'studies' (recipes are study files now)")):
        p = sub.add_parser(name, formatter_class=_Formatter, help=helptext,
                           description="List the study files of a folder: name, system, grid points, cost of "
                                       "the full run, whether a cheap variant (--quick) exists, description.",
                           epilog=f"example:\n  phasekit {name}\n  phasekit {name} --folder my_studies")
        p.add_argument("--folder", type=Path, default=Path("studies"), help="folder of study files")
        p.add_argument("--quick", action="store_true",
                       help="the grid points of each study's cheap variant (the one 'phasekit run --quick' runs)")
    return parser


# --quick means one thing: a study file's cheap variant (its [quick] table).  The commands without a
# study file accept the option only to refuse it in one line, rather than argparse's "unrecognized arguments".
def _refuse_quick(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)


def _check_no_quick(args: argparse.Namespace, instead: str) -> None:
    if getattr(args, "quick", False):
        raise ValueError(f"--quick: means a study file's cheap variant (phasekit run STUDY --quick); "
                         f"'{args.command}' takes no study file ({instead})")


def _check_run_args(args: argparse.Namespace) -> int:
    """Validate the options of ``run`` (one-line errors naming the option); the worker count to use."""
    from .core.parallel import check_batch_size, check_workers, default_workers

    workers = check_workers(args.workers, "--workers")
    check_batch_size(args.batch_size, "--batch-size")
    if args.batch_points is not None and args.batch_points < 1:
        raise ValueError(f"--batch-points: must be an integer >= 1, got {args.batch_points}")
    if not args.worker_timeout > 0:
        raise ValueError(f"--worker-timeout: must be > 0 seconds, got {args.worker_timeout:g}")
    if args.fresh and args.repair:
        raise ValueError("--fresh, --repair: give one of them (--fresh discards the checkpoints, --repair keeps them)")
    # The command line is a guarded entry point: it may start worker processes, one per core by default.
    return default_workers() if workers is None else workers


def _writable(folder: Path) -> bool:
    import os

    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return os.access(folder, os.W_OK)


def _check_figures(study: Any) -> None:
    """Every [[report.figures]] table of ``study`` names a figure and its arguments (before any work)."""
    from .plotting import figure_problem

    for j, spec in enumerate(study.report.get("figures", [])):
        problem = figure_problem(spec)
        if problem:
            key, _, what = problem.partition(": ")
            raise ValueError(f"{study.source}: key 'report.figures[{j}].{key}': {what}")


def _cmd_run(args: argparse.Namespace) -> int:
    from .core.options import ParallelOptions
    from .core.results import STATUS
    from .report import write_report
    from .study.runner import run_study
    from .study.schema import load_study

    _freeze_loaded()
    workers = _check_run_args(args)
    study = load_study(args.study, quick=args.quick)
    _check_figures(study)
    outdir = args.outdir or Path("outputs") / (f"{study.name}-quick" if args.quick else study.name)
    extra = {} if args.batch_points is None else {"batch_points": args.batch_points}
    if args.workers is None and study.run.get("n_workers") is not None:
        workers = study.run["n_workers"]  # the study's [run] n_workers
    parallel = ParallelOptions(n_workers=workers, scheduler=args.scheduler, batch_size=args.batch_size,
                               worker_timeout=args.worker_timeout, **extra)
    ds = run_study(study, outdir=outdir, parallel=parallel, fresh=args.fresh, repair=args.repair,
                   progress=not args.no_progress)
    counts = ", ".join(f"{ds.attrs[f'n_{s}']} {s}" for s in STATUS if ds.attrs.get(f"n_{s}"))
    dataset = outdir / f"{study.name}.nc"
    print(f"dataset: {dataset} ({study.n_points} points: {counts})")
    if not args.no_report:
        report_dir = args.report_dir or outdir
        if args.report_dir is None and not _writable(report_dir):
            print(f"phasekit run: report not written: {report_dir} is not writable (give --report-dir DIR)",
                  file=sys.stderr)
        else:
            print(f"report: {write_report(ds, report_dir, dataset_path=dataset)}")
    bad = int(ds.attrs.get("n_failed", 0)) + int(ds.attrs.get("n_missing", 0))
    if bad:
        print(f"phasekit run: {bad} of {study.n_points} points failed or are missing (see 'message' in {dataset}); "
              f"a rerun computes the points that have no checkpoint", file=sys.stderr)
        return 1
    return 0


def _netcdf_kind(path: Path) -> str:
    """``"classic"`` (what phasekit writes), ``"hdf5"`` (netCDF4) or ``"other"``, from the magic bytes."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:3] == b"CDF":
        return "classic"
    if head == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    return "other"


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    path = args.dataset
    if path.suffix.lower() == ".toml":
        from .study.schema import load_study

        study = load_study(path, quick=args.quick)
        path = Path("outputs") / (f"{study.name}-quick" if args.quick else study.name) / f"{study.name}.nc"
        if not path.exists():
            quick = " --quick" if args.quick else ""
            raise ValueError(f"dataset: no dataset of study '{study.name}' at {path}; run 'phasekit run{quick} "
                             f"{args.dataset}' first, or give the .nc file written by phasekit run")
    if not path.exists():
        raise ValueError(f"dataset: no such file {path}")
    if path.is_dir() or _netcdf_kind(path) != "classic":
        raise ValueError(f"dataset: {path} is not a dataset written by 'phasekit run' (a netCDF .nc file, "
                         f"e.g. outputs/<study>/<study>.nc)")
    if args.quick and path is args.dataset:
        import xarray as xr

        with xr.open_dataset(path, engine="scipy") as ds:
            variant, name = ds.attrs.get("variant", "full"), ds.attrs.get("study_name", "?")
        if variant != "quick":
            raise ValueError(f"--quick: {path} holds the {variant} variant of study '{name}', not its cheap one; "
                             f"drop --quick, or give outputs/{name}-quick/{name}.nc")
    print(f"report: {write_report(path, args.outdir, trajectories=not args.no_trajectories)}")
    return 0


def _cmd_fixed_points(args: argparse.Namespace) -> int:
    import numpy as np

    from .committee.search import fixed_points

    _check_no_quick(args, "fewer --n-starts make the search cheaper")
    model = _model(args)
    fps = fixed_points(model, n_starts=args.n_starts, seed=args.seed, progress=not args.no_progress)
    print(f"# fixed points of {model!r}")
    print(f"{'#':>3} {'kind':>17} {'eps_g':>10} {'stable':>6} {'unstable':>8} {'residual':>9}  "
          f"leading eigenvalues [1/alpha]; state")
    for j, fp in enumerate(fps):
        lam = np.asarray(fp.eigenvalues)
        lead = ", ".join(f"{complex(x).real:+.4g}" + (f"{complex(x).imag:+.2g}j" if abs(complex(x).imag) > 1e-9
                                                     else "") for x in lam[:4])
        if args.subspace is not None:  # a reduced model's fixed point: its order parameters
            where = ", ".join(f"{name} = {x:.4g}" for name, x in zip(fp.labels, fp.vector))
            kind = fp.message if fp.message in ("perfect", "symmetric_plateau") else fp.kind
            eg = float(model.eg_vector(fp.vector))
        else:
            R = np.array2string(np.asarray(fp.state.R), precision=4, separator=",").replace("\n", "")
            Q = np.array2string(np.asarray(fp.state.Q), precision=4, separator=",").replace("\n", "")
            where, kind, eg = f"R = {R}, Q = {Q}", fp.label or fp.kind, fp.eg
        print(f"{j:>3} {kind:>17} {eg:>10.5g} {('yes' if fp.stable else 'no'):>6} {fp.n_unstable:>8d} "
              f"{fp.residual:>9.2g}  [{lead}]; {where}")
        if getattr(fp, "escape_eigenvalue", None) is not None:
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
    from .committee.dynamics import integrate
    from .plotting import save_figure
    from .plotting.committee import order_parameters
    from .committee.starts import initial_state

    _check_no_quick(args, "a shorter --eta-alpha-max or fewer --n-points make the run cheaper")
    model = _model(args)
    if args.subspace is not None:  # the reduced start R = X, S = 0, Q = Q0, C = 0 (and v = the fixed weight)
        q0 = 0.5 if args.Q0 is None else args.Q0[0]
        if args.Q0 is not None and len(set(args.Q0)) > 1:
            raise ValueError(f"--Q0: a start in the {args.subspace} subspace needs one student norm, got {args.Q0}")
        state0 = model.state_vector([args.X, 0.0, q0, 0.0] + ([1.0] if model.train_second_layer else []))
    else:
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


def _cmd_studies(args: argparse.Namespace) -> int:
    from .study.schema import study_files

    if args.command == "recipes":
        print("(recipes are study files now: this is 'phasekit studies')")
    if not args.folder.is_dir():
        raise ValueError(f"--folder: no such folder {args.folder}")
    if args.quick:
        print("(the cheap variants: grid points of 'phasekit run STUDY --quick')")
    for info in study_files(args.folder, quick=args.quick):
        if "error" in info:
            print(f"{info['name']:22s} (cannot be read: {info['error']})")
            continue
        if args.quick and not info["quick"]:
            print(f"{info['name']:22s} {info['system']:13s} (no cheap variant: no [quick] table)")
            continue
        quick = "--quick" if info["quick"] else "       "
        cost = info["cost"] or "cost not stated"
        print(f"{info['name']:22s} {info['system']:13s} {info['points']:>6d} points  {quick}  {cost}")
        if info["description"]:
            print(f"{'':22s} {info['description']}")
    return 0


_COMMANDS = {"run": _cmd_run, "report": _cmd_report, "fixed-points": _cmd_fixed_points,
             "integrate": _cmd_integrate, "studies": _cmd_studies, "recipes": _cmd_studies}


def _one_line_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                      line: str | None = None) -> None:
    print(f"phasekit: warning: {' '.join(str(message).split())}", file=sys.stderr if file is None else file)


_OWN_PROCESS = False  # set by console(): this process ends with the command


def _freeze_loaded() -> None:
    """In a process of its own (see :func:`console`), move what is loaded so far out of the collector's sight.

    ``gc.freeze`` puts every object into the permanent generation: later
    collections scan only the objects made after it (the modules of NumPy,
    SciPy, xarray and matplotlib are about a million), and forked workers do
    not write to the pages of the inherited ones.
    """
    if _OWN_PROCESS:
        import gc

        gc.freeze()


def console(argv: Sequence[str] | None = None) -> int:
    """The ``phasekit`` command (and ``python -m phasekit``): :func:`main` in a process of its own.

    The heap is frozen once a command's modules are loaded and again when it
    returns, so the interpreter's exit skips a last collection of everything
    loaded (about 0.4 s after a study).  Tests and other callers that stay
    alive call :func:`main`.
    """
    global _OWN_PROCESS
    _OWN_PROCESS = True
    try:
        return main(argv)
    finally:
        _freeze_loaded()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command line (as the ``phasekit`` console script does); returns the exit status."""
    from .core.parallel import ParallelError, Terminated
    from .study.checkpoints import OutdirInUse
    from .study.runner import StudyAborted

    args = build_parser().parse_args(argv)
    show = warnings.showwarning
    warnings.showwarning = _one_line_warning  # remarks on one line, like the errors
    term = _sigterm_interrupts()
    try:
        return _COMMANDS[args.command](args)
    except (StudyAborted, OutdirInUse) as exc:
        # Not bad input: the run could not go on (or not start); finished work is kept.
        print(f"phasekit {args.command}: {_first_line(exc)}", file=sys.stderr)
        return 1
    except ParallelError as exc:
        print(f"phasekit {args.command}: error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, NotImplementedError, OSError) as exc:
        # Bad input or an unavailable piece: one line, no traceback.
        print(f"phasekit {args.command}: error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated) or getattr(exc, "terminated", False)
        print(f"phasekit {args.command}: {_first_line(exc) or ('terminated' if terminated else 'interrupted')}",
              file=sys.stderr)
        return 143 if terminated else 130
    finally:
        warnings.showwarning = show
        if term is not None:
            signal.signal(signal.SIGTERM, term)


def _sigterm_interrupts() -> Any:
    """Let SIGTERM (a batch system's stop) end a command like Ctrl-C: workers stopped, one line.

    Returns the previous handler (``None`` when left alone: not the main thread,
    or the program handles SIGTERM itself).
    """
    from .core.parallel import Terminated

    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        return None
    old = signal.getsignal(signal.SIGTERM)
    if old is not signal.SIG_DFL:
        return None

    def handler(signum: int, frame: Any) -> None:
        raise Terminated("terminated")

    signal.signal(signal.SIGTERM, handler)
    return old


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ("" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
