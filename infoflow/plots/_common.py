"""Helpers shared by the figure modules: units, the epoch axis, saving.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no
global figure registry, nothing to close, no backend switch in the host process (a notebook keeps
its backend), and PNG output always goes through Agg.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import Normalize, SymLogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, Locator

from infoflow.io import write_atomic

UNITS = ("bits", "nats")
DPI = 110
LAYOUT = "constrained"
#: Colour map of the epoch (information plane markers).
EPOCH_CMAP = "viridis"
#: Colour map of layers (layer k gets colour k-1).
LAYER_CMAP = "tab10"


def check_units(units: str) -> str:
    """``units`` if it is ``bits`` or ``nats``, else ValueError."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    return units


def unit_factor(units: str) -> float:
    """Multiply nats by this to get ``units`` (1/ln 2 for bits)."""
    return 1.0 / math.log(2.0) if check_units(units) == "bits" else 1.0


def info_label(symbol: str, units: str) -> str:
    """Axis label such as ``I(X;T) [bits]``."""
    return f"{symbol} [{check_units(units)}]"


def layer_color(layer: int) -> tuple[float, float, float, float]:
    """Colour of hidden layer ``layer`` (1-based), the same in every figure."""
    from matplotlib import colormaps

    return colormaps[LAYER_CMAP]((layer - 1) % 10)


class _EpochLocator(Locator):
    """Ticks 0, 1, 2, 5, 10, 20, 50, ... on a short run; 0, 1, 10, 100, ... beyond 300 epochs."""

    def __call__(self) -> list[float]:
        return self.tick_values(*self.axis.get_view_interval())

    def tick_values(self, vmin: float, vmax: float) -> list[float]:
        top = max(vmax, 1.0)
        subs = (1, 2, 5) if top <= 300 else (1,)
        ticks = [0.0] + [s * 10.0**e for e in range(int(math.log10(top)) + 1) for s in subs]
        return [t for t in ticks if vmin <= t <= vmax]


def epoch_axis(ax: Axes, *, label: bool = True) -> None:
    """Put epochs on a symlog x axis: linear on [0, 1], logarithmic beyond.

    Epoch 0 (often the untrained network) thus keeps its place at the left edge instead of being
    dropped by a log axis or shifted by an offset.
    """
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.4)
    ax.set_xlim(left=0)
    ax.xaxis.set_major_locator(_EpochLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    if label:
        ax.set_xlabel("epoch")


def epoch_norm(epochs: Iterable[int]) -> Normalize:
    """Logarithmic colour scale over epochs that also accepts epoch 0 (symlog, threshold 1)."""
    top = max([1, *epochs])
    return SymLogNorm(linthresh=1.0, linscale=0.4, vmin=0.0, vmax=float(top), base=10)


def new_figure(width: float, height: float) -> Figure:
    """A figure in inches with constrained layout (no pyplot)."""
    return Figure(figsize=(width, height), dpi=DPI, layout=LAYOUT)


def grid_shape(n: int, max_cols: int = 3) -> tuple[int, int]:
    """(rows, cols) for ``n`` panels, at most ``max_cols`` per row."""
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG atomically (:func:`infoflow.io.write_atomic`): a viewer never sees a
    half-written file. Returns ``path``."""
    return write_atomic(path, lambda fh: fig.savefig(fh, format="png", dpi=DPI))


def finite(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the finite entries."""
    return np.isfinite(np.asarray(values, dtype=float))
