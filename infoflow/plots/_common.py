"""Helpers shared by the figure modules: units, the epoch axis, saving.

Figures are built on :class:`matplotlib.figure.Figure` directly, never through ``pyplot``: no
global figure registry, nothing to close, no backend switch in the host process (a notebook keeps
its backend), and PNG output always goes through Agg.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
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
#: Reference lines (ceilings, H(Y), SNR = 1) are drawn above the curves and markers: a layer that
#: sits at its ceiling must not hide the ceiling.
REFERENCE_Z = 4.5
#: Each bound in its own style, the same in every figure.
REFERENCE_STYLES: dict[str, dict[str, Any]] = {
    "measured_x": dict(color="0.15", ls="--", lw=1.1),  # H(X) of the inputs SP measured
    "measured_y": dict(color="0.15", ls="-.", lw=1.1),  # H(Y) of the inputs SP measured
    "task_x": dict(color="0.45", ls=(0, (6, 2, 1, 2)), lw=1.2),  # H(X) of the task / all inputs
    "task_y": dict(color="0.45", ls=":", lw=1.5),  # I(X;Y) of the task
    "label_y": dict(color="tab:brown", ls=":", lw=1.2),  # H(Y): I(X;T) of the label alone
    "snr_one": dict(color="tab:red", ls="--", lw=1.0),  # SNR = 1: drift above, diffusion below
}


def reference_style(kind: str) -> dict[str, Any]:
    """Line keywords of a reference line of ``kind`` (:data:`REFERENCE_STYLES`), above the
    curves."""
    return {**REFERENCE_STYLES[kind], "zorder": REFERENCE_Z}


#: Style of a ceiling (an upper bound of what an estimate can show): SP's measured H(X).
CEILING_STYLE = reference_style("measured_x")

#: The smallest y span of an information panel, so that noise never fills it: SPAN_STDERR
#: standard errors of the values drawn (SP records them) but at least MIN_SPAN_NATS; where no
#: standard error is recorded (binned estimators), MIN_SPAN_UNKNOWN_NATS.
SPAN_STDERR, MIN_SPAN_NATS, MIN_SPAN_UNKNOWN_NATS = 6.0, 0.02, 0.1
#: Layers whose values differ by less than max(this, 3·√2 standard errors) nats coincide.
COINCIDE_NATS = 0.01


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


def draw_ceiling_vs_epoch(
    ax: Axes,
    epoch: np.ndarray,
    value: np.ndarray,
    f: float,
    label: str,
    style: Mapping[str, Any] = CEILING_STYLE,
):
    """A ceiling against epoch (nats, scaled by ``f``), above the curves: a horizontal line across
    the axes where it is the same at every epoch, else a line through its epochs."""
    value = np.asarray(value, dtype=float)
    ok = finite(value)
    if not ok.any():
        return
    v = value[ok]
    if np.ptp(v) <= 1e-9 * max(1.0, abs(v[0])):
        ax.axhline(v[0] * f, label=label, **style)
    else:
        ax.plot(np.asarray(epoch)[ok], v * f, label=label, **style)


def noise_span(stderr: float) -> float:
    """The smallest y span (nats) of a panel whose values have the typical standard error
    ``stderr`` (NaN: not recorded): ``max(SPAN_STDERR · stderr, MIN_SPAN_NATS)``, else
    ``MIN_SPAN_UNKNOWN_NATS``.

    >>> noise_span(0.01), noise_span(float("nan"))
    (0.06, 0.1)
    """
    if not math.isfinite(stderr):
        return MIN_SPAN_UNKNOWN_NATS
    return max(SPAN_STDERR * stderr, MIN_SPAN_NATS)


def coincide_tolerance(stderr: float) -> float:
    """Two layers' values (nats) closer than this are the same value: ``max(COINCIDE_NATS,
    3·√2·stderr)``."""
    return max(COINCIDE_NATS, 3 * math.sqrt(2) * stderr) if math.isfinite(stderr) else COINCIDE_NATS


def ensure_span(ax: Axes, span: float, axis: str = "y") -> None:
    """Widen ``ax``'s limits on ``axis`` about their centre to at least ``span`` (data units,
    after autoscaling); a range that starts at or above 0 is kept off negative values."""
    get, put = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    lo, hi = get()
    if not (math.isfinite(span) and hi - lo < span):
        return
    mid = (lo + hi) / 2
    new = (mid - span / 2, mid + span / 2)
    if lo >= 0 > new[0]:
        new = (0.0, span)
    put(*new)


def coinciding(points: Mapping[int, Sequence[float]], tol: Sequence[float]) -> list[list[int]]:
    """Layers whose points lie within ``tol`` (per coordinate) of their group's first layer's
    point, groups in order of their first layer.

    >>> coinciding({1: (8.3, 0.6), 2: (8.3001, 0.6), 3: (5.0, 0.6)}, (0.01, 0.01))
    [[1, 2], [3]]
    """
    groups: list[list[int]] = []
    for k, p in points.items():
        for g in groups:
            if all(abs(a - b) <= t for a, b, t in zip(points[g[0]], p, tol, strict=True)):
                g.append(k)
                break
        else:
            groups.append([k])
    return groups


def nearest_epoch(epochs: np.ndarray, target: float) -> int | None:
    """Index of the epoch nearest ``target`` on the figures' log scale (log(1 + epoch)); None for
    no epochs or a target that is not finite."""
    epochs = np.asarray(epochs, dtype=float)
    if not len(epochs) or not math.isfinite(target):
        return None
    return int(np.argmin(np.abs(np.log1p(epochs) - math.log1p(max(target, 0.0)))))


#: The mark of the drift → diffusion transition on an information plane (the papers' green
#: points): a green ring around the trajectory's point at that epoch.
TRANSITION_MARK = dict(marker="o", s=150, facecolors="none", edgecolors="tab:green",
                       linewidths=2.0, zorder=5)  # fmt: skip
TRANSITION_LABEL = "gradient SNR < 1 from here on (median over seeds)"
