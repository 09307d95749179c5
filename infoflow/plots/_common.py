"""Helpers shared by the figure modules: units, the epoch axis, saving.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no
global figure registry, nothing to close, no backend switch in the host process (a notebook keeps
its backend), and PNG output always goes through Agg.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

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
#: Ensemble members drawn behind their mean: thin and faint.
MEMBER_ALPHA, MEMBER_LW = 0.3, 0.6
#: Opacity of a ± stderr or ± sd band.
BAND_ALPHA = 0.22
#: Style of a ceiling (an upper bound of what an estimate can show).
CEILING_STYLE = dict(color="0.35", ls="--", lw=1.0, zorder=1)


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


def spread_note(n_seeds: int) -> str:
    """What a line and its band show: ``""`` for one seed, else ``"mean ± sd of K seeds"``."""
    return "" if n_seeds <= 1 else f"mean ± sd of {n_seeds} seeds, members faint"


def draw_seeds(
    ax: Axes,
    by_seed: Mapping[Any, Any],
    f: float,
    color,
    label: str | None,
    *,
    ls: str = "-",
    lw: float = 1.4,
    band: bool = True,
    positive: bool = False,
) -> None:
    """Draw one quantity of one layer against epoch from ``{seed: Series}`` (values in nats,
    scaled by ``f``; :func:`infoflow.plots.data.members`).

    One seed: its line, with a ± stderr band where the record has one. Several: every member as a
    thin faint line, their mean as the line, ± sd across seeds as the band. ``positive``: leave out
    values ≤ 0 (for log axes).
    """
    from infoflow.plots.data import spread

    label = label or "_nolegend_"
    if len(by_seed) == 1:
        s = next(iter(by_seed.values()))
        epoch, mid, half = s.epoch, s.value, s.stderr
    else:
        for s in by_seed.values():
            ok = finite(s.value) & ((s.value > 0) if positive else True)
            ax.plot(s.epoch[ok], s.value[ok] * f, ls, color=color, lw=MEMBER_LW,
                    alpha=MEMBER_ALPHA, label="_nolegend_")  # fmt: skip
        sp = spread(by_seed)
        epoch, mid, half = sp.epoch, sp.mean, sp.sd
    ok = finite(mid) & ((mid > 0) if positive else True)
    ax.plot(epoch[ok], mid[ok] * f, ls, color=color, lw=lw, label=label)
    with_band = ok & finite(half) & ((mid - half > 0) if positive else True)
    if band and with_band.any():
        lo, hi = (mid - half) * f, (mid + half) * f
        ax.fill_between(epoch, lo, hi, where=with_band, color=color, alpha=BAND_ALPHA, lw=0)


def draw_ceiling_vs_epoch(ax: Axes, epoch: np.ndarray, value: np.ndarray, f: float, label: str):
    """A ceiling against epoch (nats, scaled by ``f``): a dashed horizontal line across the axes
    where it is the same at every epoch, else a dashed line through its epochs."""
    value = np.asarray(value, dtype=float)
    ok = finite(value)
    if not ok.any():
        return
    v = value[ok]
    if np.ptp(v) <= 1e-9 * max(1.0, abs(v[0])):
        ax.axhline(v[0] * f, label=label, **CEILING_STYLE)
    else:
        ax.plot(np.asarray(epoch)[ok], v * f, label=label, **CEILING_STYLE)
