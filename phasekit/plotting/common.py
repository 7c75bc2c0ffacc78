"""What every figure shares: the figure registry, labels, number formatting, trajectories of a dataset.

Figures are ``matplotlib.figure.Figure`` objects made without pyplot, so
drawing never touches matplotlib's global state (backend, current figure).
"""

from __future__ import annotations

import inspect
import math
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from ..study.committee_measures import REDUCED_TRAJECTORY as _REDUCED_SYMBOLS

__all__ = ["FIGURES", "draw", "figure_problem", "fixed_elsewhere", "fmt", "label", "layout_problems", "new_figure",
           "point_values", "register_figure", "save_figure", "status_names_of", "trajectories"]

#: Every registered figure kind: ``kind -> function(ds, **args)`` returning a Figure or a list of
#: ``(suffix, title, Figure)``.
FIGURES: dict[str, Callable[..., Any]] = {}

# Keys of a [[report.figures]] table that are not arguments of the figure function.
SPEC_KEYS = ("kind", "name", "title", "caption")


def register_figure(kind: str) -> Callable[[Callable], Callable]:
    """Decorator adding a figure function ``func(ds, **args)`` to :data:`FIGURES` under ``kind``."""
    def register(func: Callable) -> Callable:
        FIGURES[kind] = func
        return func

    return register


def figure_problem(spec: Mapping[str, Any]) -> str | None:
    """Why a ``[[report.figures]]`` table cannot be drawn (unknown kind or argument), or None."""
    kind = spec.get("kind")
    if kind not in FIGURES:
        return f"kind: unknown figure {kind!r} (available: {', '.join(sorted(FIGURES))})"
    params = inspect.signature(FIGURES[kind]).parameters
    allowed = [p for p in list(params)[1:] if params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    for key in spec:
        if key not in SPEC_KEYS and key not in allowed:
            return f"{key}: not an argument of figure {kind!r} (arguments: {', '.join(allowed) or 'none'})"
    return None


def draw(ds: xr.Dataset, spec: Mapping[str, Any]) -> list[tuple[str, str, Figure]]:
    """The figures of one spec: ``(name, title, Figure)``; the name defaults to the kind."""
    problem = figure_problem(spec)
    if problem:
        raise ValueError(f"figure {spec.get('name', spec.get('kind'))!r}: {problem}")
    args = {k: v for k, v in spec.items() if k not in SPEC_KEYS}
    if "title" in spec and "title" in inspect.signature(FIGURES[spec["kind"]]).parameters:
        args["title"] = spec["title"]
    result = FIGURES[spec["kind"]](ds, **args)
    name = spec.get("name", spec["kind"])
    if isinstance(result, Figure):
        return [(name, spec.get("title", ""), result)]
    return [(f"{name}_{suffix}" if suffix else name, title, fig) for suffix, title, fig in result]


def label(da: xr.DataArray | xr.Variable, fallback: str = "") -> str:
    """Axis label ``"long_name [units]"`` from a variable's attributes.

    No brackets without units, nor for categories (string values, e.g. the
    activation) and dimensionless counts (integers in units of ``1``, e.g. K),
    whose ``[1]`` says nothing. Labels longer than 44 characters are wrapped
    onto two lines.
    """
    name = da.attrs.get("long_name", getattr(da, "name", None) or fallback)
    units = da.attrs.get("units", "")
    kind = np.dtype(da.dtype).kind
    if kind in "OSU" or (kind in "iub" and str(units) == "1"):
        units = ""
    text = f"{name} [{units}]" if units else str(name)
    # a long name goes on two lines rather than out of the figure
    return "\n".join(textwrap.wrap(text, width=max(36, len(text) // 2 + 12), break_on_hyphens=False)) if len(text) > 44 else text


def coord_value(coord: xr.DataArray, value: Any) -> str:
    """A grid value as a legend or panel title shows it: the meaning of a CF flag code, else the number.

    Switches (stored as 0/1: netCDF has no booleans) carry ``flag_values``
    and ``flag_meanings`` (``False True``), so they read ``True``/``False``.
    """
    if np.dtype(coord.dtype).kind in "iu" and "flag_meanings" in coord.attrs:
        return str(status_names_of(xr.DataArray(np.asarray(value), attrs=coord.attrs)))
    return fmt(value, 3)


def fmt(value: Any, digits: int = 4) -> str:
    """A number as shown in tables and legends: ``-`` for NaN (not computed), ``inf``, else ``digits`` significant."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    return str(value)


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float] = (6.0, 4.2),
               sharey: bool = False) -> tuple[Figure, np.ndarray]:
    """A figure and its axes (2-D array), laid out by matplotlib's constrained layout."""
    fig = Figure(figsize=figsize, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating folders): the pixels of ``fig.savefig(path, dpi=dpi)``, at less cost.

    (With matplotlib's default ``savefig.*`` settings: no tight bounding box,
    the figure's own face colour, not transparent.)  ``savefig`` lays a figure out in a drawing pass of its own before the
    one that renders; here the layout and the render are one pass.  Titles
    of axes with nothing above them (no top ticks or label, no twins) stay
    where matplotlib's automatic placement leaves them when nothing is in
    the way, which spares that placement (a tight bounding box of the y axis
    per title and pass); if a title would collide with the y axis's offset
    text (e.g. ``1e6``) or reach into the axes, the figure is drawn again
    with the automatic placement.  The PNG is compressed at zlib level 1:
    the same pixels as the default level 6, about 10% larger files, and a
    quarter less time per figure (compression was a fifth of a report's cost).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.image import imsave

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old_canvas, old_dpi = fig.canvas, fig.dpi
    canvas = FigureCanvasAgg(fig)  # a canvas of its own, as savefig takes (no window is resized)
    fixed = _fix_titles(fig)
    try:
        fig.dpi = dpi
        canvas.draw()
        if fixed and _titles_in_the_way(fixed, canvas.get_renderer()):
            _free_titles(fixed)
            fixed = []
            canvas.draw()
        imsave(path, canvas.buffer_rgba(), format="png", origin="upper", dpi=dpi,
               pil_kwargs={"compress_level": 1})
    finally:
        _free_titles(fixed)
        fig.dpi = old_dpi
        fig.set_canvas(old_canvas)
    return path


def _fix_titles(fig: Figure) -> list:
    """Turn off the automatic title placement of every axes with a title and nothing above it."""
    fixed = []
    aligned = getattr(fig, "_align_label_groups", {}).get("title")
    for ax in fig.axes:
        twins = getattr(ax, "_twinned_axes", None)
        if getattr(ax, "_autotitlepos", False) is not True or ax.child_axes or twins is None or aligned is None \
                or len(twins.get_siblings(ax)) > 1 or len(aligned.get_siblings(ax)) > 1:
            continue  # placed by hand already, or beside axes whose decorations may reach above it
        if ax.xaxis.get_ticks_position() in ("top", "unknown") or ax.xaxis.get_label_position() == "top":
            continue
        titles = (ax.title, getattr(ax, "_left_title", None), getattr(ax, "_right_title", None))
        if None in titles:  # another matplotlib layout: every title to its automatic placement
            _free_titles(fixed)
            return []
        if any(t.get_text() for t in titles):
            for t in titles:
                t.set_y(1.0)
            ax._autotitlepos = False
            fixed.append(ax)
    return fixed


def _titles_in_the_way(axes: list, renderer) -> bool:
    """Whether a fixed title would have been moved up: it overlaps the y offset text or reaches into its axes."""
    from matplotlib.transforms import Bbox

    for ax in axes:
        top = ax.spines.get("outline", ax).get_window_extent().ymax
        off = ax.yaxis.offsetText
        off_box = off.get_tightbbox(renderer) if off.get_visible() and off.get_text() else None
        for t in (ax.title, ax._left_title, ax._right_title):  # present: _fix_titles checked
            if not t.get_text():
                continue
            box = t.get_window_extent(renderer)
            if box.ymin < top or (off_box is not None and Bbox.intersection(off_box, box) is not None):
                return True
    return False


def _free_titles(axes: list) -> None:
    for ax in axes:
        ax._autotitlepos = True


def layout_problems(fig: Figure) -> list[str]:
    """What a reader would miss in ``fig``, from matplotlib's own extents after drawing it.

    Texts (titles, axis labels with their tick labels, annotations) and
    legends reaching outside the figure, figure legends over a title, and
    legends inside an axes that cover data: a marker (even in part) or a
    stretch of a drawn curve.
    An empty list means nothing is clipped or hidden.  Draws ``fig`` with the
    Agg canvas (no pyplot, no global state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    problems = []

    def outside(extent: Any, what: str) -> None:
        if extent is not None and (extent.x0 < box.x0 - 1 or extent.y0 < box.y0 - 1 or extent.x1 > box.x1 + 1
                                   or extent.y1 > box.y1 + 1):
            problems.append(f"{what} reaches outside the figure ({extent.bounds} vs {box.bounds})")

    titles = [t for t in fig.texts + ([fig._suptitle] if fig._suptitle is not None else [])
              + [ax.title for ax in fig.axes] if t.get_visible() and t.get_text()]
    for text in fig.texts + ([fig._suptitle] if fig._suptitle is not None else []):
        if text.get_visible() and text.get_text():
            outside(text.get_window_extent(renderer), f"text {text.get_text()!r}")
    for leg in fig.legends:
        lb = leg.get_window_extent(renderer)
        outside(lb, "figure legend")
        for text in titles:  # e.g. a legend beside the panels over the end of a long suptitle
            if lb.overlaps(text.get_window_extent(renderer)):
                problems.append(f"figure legend covers the title {text.get_text()!r}")
    for ax in fig.axes:
        name = ax.get_title() or ax.get_ylabel() or "an axes"
        for axis in (ax.xaxis, ax.yaxis):  # the tick labels drawn (inside the view) and the axis label
            outside(axis.get_tightbbox(renderer), f"{axis.axis_name}-axis of {name!r}")
        for text in (ax.title, *ax.texts):
            if text.get_visible() and text.get_text():
                outside(text.get_window_extent(renderer), f"text {text.get_text()!r}")
        leg = ax.get_legend()
        if leg is None:
            continue
        lb = leg.get_window_extent(renderer)
        outside(lb, f"legend of {name!r}")
        for line in ax.lines:
            if not line.get_visible():
                continue
            xy = np.column_stack([np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)])
            xy = line.get_transform().transform(xy[np.all(np.isfinite(xy), axis=1)]) if xy.size else xy
            if line.get_marker() not in (None, "None", "", " "):
                near = lb.padded(line.get_markersize() * fig.dpi / 144)  # a marker partly under the legend counts
                hit = [p for p in xy if near.contains(*p) and ax.bbox.contains(*p)]
                if hit:
                    problems.append(f"legend of {name!r} covers {len(hit)} point(s) of {line.get_label()!r}")
            if line.get_linestyle() not in ("None", "", " ") and len(xy) > 1:
                # the drawn curve, sampled every pixel or so along its segments
                steps = np.maximum(1, np.ceil(np.hypot(*np.diff(xy, axis=0).T)).astype(int))
                pts = np.concatenate([a + np.linspace(0, 1, n, endpoint=False)[:, None] * (b - a)
                                      for a, b, n in zip(xy[:-1], xy[1:], np.minimum(steps, 5000))])
                under = (lb.x0 < pts[:, 0]) & (pts[:, 0] < lb.x1) & (lb.y0 < pts[:, 1]) & (pts[:, 1] < lb.y1)
                inside = ax.bbox.x0 <= pts[:, 0]
                if np.any(under & inside & (pts[:, 0] <= ax.bbox.x1) & (ax.bbox.y0 <= pts[:, 1])
                          & (pts[:, 1] <= ax.bbox.y1)):
                    problems.append(f"legend of {name!r} covers part of the curve {line.get_label()!r}")
    return problems


def fixed_elsewhere(da: xr.DataArray, keep: Sequence[str]) -> tuple[xr.DataArray, str]:
    """Select the first value of every dim not in ``keep``; also return ``"eta = 0.1, ..."``."""
    others = [d for d in da.dims if d not in keep]
    note = ", ".join(f"{d} = {fmt(da[d].values[0]) if d in da.coords else 0}" for d in others)
    return da.isel({d: 0 for d in others}), note


def status_names_of(da: xr.DataArray) -> np.ndarray:
    """Status names of a CF-flag status variable (strings are returned as they are)."""
    vals = np.asarray(da.values)
    if vals.dtype.kind in "iu" and "flag_meanings" in da.attrs:
        names = np.array(str(da.attrs["flag_meanings"]).split(), dtype=object)
        return np.asarray(names[vals], dtype=object)
    return vals.astype(object)


def grid_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """The grid dims of a study dataset (those of its ``status``)."""
    return tuple(ds["status"].dims) if "status" in ds else ()


def point_values(ds: xr.Dataset, index: int) -> dict[str, Any]:
    """Every coordinate and scalar parameter of the grid point with flat ``index``."""
    dims = grid_dims(ds)
    pos = dict(zip(dims, np.unravel_index(int(index), [ds.sizes[d] for d in dims]))) if dims else {}
    out = {}
    for name, c in ds.coords.items():
        if set(c.dims) <= set(dims):
            out[name] = c.isel({d: int(pos[d]) for d in c.dims}).values.item()
    for name in ("eta",):  # a parameter computed at each point
        if name in ds.data_vars and set(ds[name].dims) <= set(dims):
            out[name] = float(ds[name].isel({d: int(pos[d]) for d in ds[name].dims}).values)
    return out


def _trajectory(alpha: np.ndarray, R: np.ndarray, Q: np.ndarray, eg: np.ndarray, attrs: dict) -> xr.Dataset:
    n = int(np.sum(np.isfinite(alpha)))
    K = int(np.sum(np.isfinite(R[0, :, 0]))) if R.size else 0
    M = int(np.sum(np.isfinite(R[0, 0, :]))) if R.size else 0
    eta = float(attrs.get("eta", 1.0))
    a = alpha[:n]
    return xr.Dataset(
        {"R": (("alpha", "i", "n"), R[:n, :K, :M], {"long_name": "student-teacher overlap R_in", "units": "1"}),
         "Q": (("alpha", "i", "k"), Q[:n, :K, :K], {"long_name": "student-student overlap Q_ik", "units": "1"}),
         "eg": ("alpha", eg[:n], {"long_name": "generalisation error eps_g", "units": "1"})},
        coords={"alpha": ("alpha", a, {"long_name": "examples per input dimension alpha", "units": "1"}),
                "eta_alpha": ("alpha", eta * a, {"long_name": "scaled time eta alpha", "units": "1"}),
                "i": np.arange(1, K + 1), "k": np.arange(1, K + 1), "n": np.arange(1, M + 1)},
        attrs={**attrs, "K": K, "M": M})


# The reduced order parameters of a study's trajectories in a subspace, by output name: the symbol
# integrate's reduced datasets use (_REDUCED_SYMBOLS, the study's own table).  Other outputs along
# ``sample`` keep their name as their symbol.


def _order_block(symbol: str) -> str:
    """Which overlaps a reduced order parameter belongs to, from its symbol's first letter.

    ``"R"`` (student-teacher: R, S, ...), ``"Q"`` (student-student: Q, C,
    C1, ...), ``"v"`` (second-layer weights), ``""`` otherwise.
    """
    return {"R": "R", "S": "R", "Q": "Q", "C": "Q", "v": "v"}.get(symbol[:1], "")


def _reduced_trajectory(alpha: np.ndarray, order: Mapping[str, tuple[np.ndarray, Mapping]], eg: np.ndarray,
                        attrs: dict) -> xr.Dataset:
    """A reduced trajectory in the layout of ``integrate``: one variable per order parameter along alpha.

    ``order`` maps a study output name to its values and attributes; each
    variable gets its symbol as name and the attributes ``definition`` (what
    it is in the full overlaps, e.g. ``R_in, i != n``) and ``block``.
    """
    n = int(np.sum(np.isfinite(alpha)))
    eta = float(attrs.get("eta", 1.0))
    data = {}
    for name, (vals, vattrs) in order.items():
        sym = _REDUCED_SYMBOLS.get(name, name)
        long_name = str(vattrs.get("long_name", sym))
        defined = long_name.split(" = ", 1)[1].split(" (")[0] if " = " in long_name else long_name
        data[sym] = ("alpha", np.asarray(vals)[:n], {"long_name": long_name, "units": vattrs.get("units", "1"),
                                                     "definition": defined, "block": _order_block(sym)})
    data["eg"] = ("alpha", eg[:n], {"long_name": "generalisation error eps_g", "units": "1"})
    a = alpha[:n]
    return xr.Dataset(data, coords={
        "alpha": ("alpha", a, {"long_name": "examples per input dimension alpha", "units": "1"}),
        "eta_alpha": ("alpha", eta * a, {"long_name": "scaled time eta alpha", "units": "1"})},
        attrs={"subspace": "reduced", **attrs})


def _reduced_names(ds: xr.Dataset, prefix: str, along: str) -> list[str]:
    """The reduced order parameters a study stores along ``along`` (``sample``): every such output but alpha, eg."""
    return [str(v) for v in ds.data_vars if str(v).startswith(prefix) and along in ds[v].dims
            and str(v)[len(prefix):] not in ("alpha", "eg")]


def trajectories(ds: xr.Dataset) -> list[tuple[str, xr.Dataset]]:
    """The committee trajectories a dataset stores, as ``(label, trajectory)`` in the layout of ``integrate``.

    Either the ``[report] trajectories`` points (``trajectory_*`` variables
    along ``trajectory``) or, with the ``trajectory`` measure, every grid point.
    A study in a subspace (``model.subspace``) stores reduced order
    parameters (``R_ii``, ``R_in``, ...): its trajectories are reduced ones
    (variables ``R``, ``S``, ``Q``, ``C`` [, ``v``] along alpha, attribute
    ``subspace``), as ``integrate`` gives for a reduced model.  A dataset of
    :func:`~phasekit.committee.dynamics.integrate` itself is its one trajectory.
    """
    if "alpha" in ds.dims and "eg" in ds and ds["eg"].dims == ("alpha",):
        lab = ", ".join(f"{key} = {fmt(ds.attrs[key])}" for key in ("activation", "K", "M", "eta") if key in ds.attrs)
        return [(lab, ds)]
    out = []
    dims = grid_dims(ds)

    def build(sub: xr.Dataset, prefix: str, attrs: dict) -> xr.Dataset:
        alpha, eg = sub[f"{prefix}alpha"].values, sub[f"{prefix}eg"].values
        if f"{prefix}R" in sub:
            return _trajectory(alpha, sub[f"{prefix}R"].values, sub[f"{prefix}Q"].values, eg, attrs)
        order = {name[len(prefix):]: (sub[name].values, sub[name].attrs)
                 for name in _reduced_names(sub, prefix, "sample")}
        return _reduced_trajectory(alpha, order, eg, attrs)

    if "trajectory" in ds.dims:
        status = status_names_of(ds["trajectory_status"])
        for t in range(ds.sizes["trajectory"]):
            j = int(ds["trajectory_point"].values[t])
            attrs = {**point_values(ds, j), "status": str(status[t]),
                     "message": str(ds["trajectory_message"].values[t]),
                     "alpha_end": float(ds["trajectory_alpha_end"].values[t])}
            out.append((str(ds["trajectory"].values[t]), build(ds.isel(trajectory=t), "trajectory_", attrs)))
    elif ("R" in ds and "sample" in ds["R"].dims) or ("eg" in ds and "sample" in ds["eg"].dims
                                                      and _reduced_names(ds, "", "sample")):
        status = status_names_of(ds["status"]).ravel()
        shape = [ds.sizes[d] for d in dims]
        for j in range(int(np.prod(shape, dtype=int))):
            pos = dict(zip(dims, np.unravel_index(j, shape)))
            sub = ds.isel({d: int(v) for d, v in pos.items()})
            attrs = {**point_values(ds, j), "status": str(status[j]), "alpha_end": float(sub["alpha_end"])}
            lab = ", ".join(f"{d} = {fmt(sub[d].values.item())}" for d in dims if d in sub.coords)
            out.append((lab, build(sub, "", attrs)))
    return out


def colours(n: int) -> list[str]:
    """``n`` colours of matplotlib's default cycle."""
    import matplotlib

    cycle = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return [cycle[j % len(cycle)] for j in range(n)]


def as_list(value: Any) -> list:
    return [value] if isinstance(value, (str, int, float)) else list(value) if isinstance(value, Iterable) else [value]
