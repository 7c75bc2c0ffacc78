"""Figures drawn from phasekit datasets (never from live computations).

One module per system; every function takes an ``xarray.Dataset`` (and
optionally a matplotlib ``Axes``) and returns the ``Figure``.  Labels carry
units from the datasets' ``long_name``/``units`` attributes.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # phasekit writes files; it never needs a screen

from .common import label, save_figure  # noqa: E402

__all__ = ["label", "save_figure"]
