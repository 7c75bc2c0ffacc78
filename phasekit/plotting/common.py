"""Helpers shared by all plotting modules."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import xarray as xr

__all__ = ["label", "save_figure"]


def label(da: xr.DataArray | xr.Variable, fallback: str = "") -> str:
    """Axis label ``"long_name [units]"`` from a variable's attributes."""
    name = da.attrs.get("long_name", getattr(da, "name", None) or fallback)
    units = da.attrs.get("units", "")
    return f"{name} [{units}]" if units else str(name)


def save_figure(fig: plt.Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG (creating folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path
