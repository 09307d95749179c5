"""Figures of a sweep (``python -m infoflow.report SWEEP_DIR``): statistics across seeds.

Each function takes the aggregates that :mod:`infoflow.report` computes (values in nats) and
returns a :class:`matplotlib.figure.Figure`; :func:`infoflow.plots.save_figure` writes it.

* :func:`sweep_information_figure`: I(X;T_ℓ) against epoch, mean ± std band and median, one panel
  per group of runs (the swept values other than the seed).
* :func:`sweep_plane_figure`: the mean trajectory in the information plane, ± std bars, per group.
* :func:`dependence_figure`: peak and final I(X;T_ℓ) and the compression (peak − final) against a
  swept number (e.g. β), mean ± std across seeds.
* :func:`sweep_binned_figure`: binned entropy H(Bin T_ℓ) for each bin size beside SP's I(X;T_ℓ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from infoflow.plots._common import (
    EPOCH_CMAP,
    TRANSITION_LABEL,
    TRANSITION_MARK,
    coincide_tolerance,
    draw_ceiling_vs_epoch,
    ensure_span,
    epoch_axis,
    epoch_norm,
    finite,
    grid_shape,
    info_label,
    layer_color,
    nearest_epoch,
    new_figure,
    noise_span,
    reference_style,
    unit_factor,
)
from infoflow.plots.data import bin_size
from infoflow.plots.plane import label_ends


class Curve(NamedTuple):
    """Statistics across seeds of one (estimator, quantity, layer) against epoch; nats."""

    epoch: np.ndarray
    n: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    median: np.ndarray


#: (estimator, quantity, layer) -> Curve, for one group of runs.
Curves = Mapping[tuple[str, str, int], Curve]


def _layers(curves: Curves, estimator: str, quantity: str) -> list[int]:
    return sorted(k for e, q, k in curves if e == estimator and q == quantity)


def _band(ax: Axes, x: np.ndarray, c: Curve, f: float, color, label: str | None) -> None:
    """Mean line, ± std band where std is finite, and the median as a thin dashed line."""
    ax.plot(x, c.mean * f, "-", color=color, lw=1.5, label=label)
    ok = finite(c.std)
    if ok.any():
        lo, hi = (c.mean - c.std) * f, (c.mean + c.std) * f
        ax.fill_between(x, lo, hi, where=ok, color=color, alpha=0.2, lw=0)
    if (c.n > 2).any():  # with two seeds the median is the mean
        ax.plot(x, c.median * f, "--", color=color, lw=0.8, alpha=0.8)


def _panels(
    n: int, width: float = 4.6, height: float = 3.4, *, share: bool | str = False
) -> tuple[Figure, np.ndarray]:
    rows, cols = grid_shape(n)
    fig = new_figure(width * cols, height * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=share, sharey=share).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _ceiling(curves: Curves, quantity: str) -> float | None:
    """The largest mean ``ceiling`` value of ``quantity`` over epochs (nats), if recorded."""
    c = curves.get(("ceiling", quantity, None))
    if c is None or not finite(c.mean).any():
        return None
    return float(np.nanmax(c.mean))


def _plane_references(ax: Axes, curves: Curves, estimator: str, f: float, refs) -> float | None:
    """Ceilings of the group's ``ceiling`` rows (SP), else the task's H(X), I(X;Y) (``refs``);
    returns the I(X;T) ceiling drawn (scaled), if any."""
    from infoflow.plots.plane import CEILING_LABELS

    x_ceiling = None
    for q, line in (("I_XT", ax.axvline), ("I_TY", ax.axhline)):
        at = _ceiling(curves, q) if estimator == "sp" else None
        if at is not None:
            kind, label = ("measured_x" if q == "I_XT" else "measured_y"), CEILING_LABELS[q]
        elif refs.get(q) is not None:
            at, label = refs[q], "H(X)" if q == "I_XT" else "I(X;Y)"
            kind = "task_x" if q == "I_XT" else "task_y"
        else:
            continue
        line(at * f, label=label, **reference_style(kind))
        x_ceiling = at * f if q == "I_XT" else x_ceiling
    return x_ceiling


def _title(label: str, curves: Curves, estimator: str, quantity: str) -> str:
    ns = [int(c.n.max()) for (e, q, _), c in curves.items() if e == estimator and q == quantity]
    return f"{label} (n = {max(ns, default=0)})"


def _shared_legend(fig: Figure, axes: Sequence[Axes], ncol: int = 6) -> None:
    legend: dict = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    if legend:
        fig.legend(
            list(legend.values()),
            list(legend),
            loc="outside lower center",
            ncol=min(ncol, len(legend)),
            fontsize=7,
        )


def sweep_information_figure(
    groups: Mapping[str, Curves],
    estimator: str,
    *,
    quantity: str = "I_XT",
    units: str = "bits",
    stderr: float = math.nan,
) -> Figure:
    """``quantity`` against epoch per layer: mean ± std across seeds, median dashed (n > 2).

    Args:
        groups: ``{panel title: curves}``, one panel per group of runs.
        estimator: e.g. ``"sp"`` or ``"bin:tishby:30"``.
        stderr: the typical standard error of one estimate (nats; NaN: not recorded): the
            panels span at least :func:`~infoflow.plots._common.noise_span` of it.
    """
    f = unit_factor(units)
    fig, axes = _panels(len(groups), share=True)
    symbol = {"I_XT": "I(X;T)", "I_TY": "I(T;Y)"}.get(quantity, quantity)
    for ax, (label, curves) in zip(axes, groups.items(), strict=True):
        for k in _layers(curves, estimator, quantity):
            c = curves[(estimator, quantity, k)]
            _band(ax, c.epoch, c, f, layer_color(k), f"T{k}")
        ceiling = curves.get(("ceiling", quantity, None)) if estimator == "sp" else None
        if ceiling is not None:
            from infoflow.plots.plane import CEILING_LABELS

            kind = "measured_x" if quantity == "I_XT" else "measured_y"
            draw_ceiling_vs_epoch(ax, ceiling.epoch, ceiling.mean, f, CEILING_LABELS[quantity],
                                  reference_style(kind))  # fmt: skip
        ax.set_title(_title(label, curves, estimator, quantity), fontsize=9)
        ax.set_ylabel(info_label(symbol, units))
        ax.grid(alpha=0.3)
        epoch_axis(ax)
    if len(axes):
        ensure_span(axes[0], noise_span(stderr) * f)  # the panels share their y axis
    _shared_legend(fig, axes)
    fig.suptitle(f"{symbol} across seeds — {estimator} (mean ± std, median dashed)", fontsize=10)
    return fig


def sweep_plane_figure(
    groups: Mapping[str, Curves],
    estimator: str,
    *,
    units: str = "bits",
    h_x: float | None = None,
    i_xy: float | None = None,
    ib_curve: tuple[np.ndarray, np.ndarray] | None = None,
    stderr: tuple[float, float] = (math.nan, math.nan),
    transitions: Mapping[str, Mapping[int, float]] | None = None,
    errorbars: bool = True,
    title: str | None = None,
) -> Figure:
    """Mean information-plane trajectory per layer, with ± std bars on both axes (``errorbars``),
    per group; the markers coloured by epoch (one colour bar for all panels), the panels sharing
    both axes.

    Reference lines (nats), above the trajectories: for SP the ceilings of the ``ceiling`` rows
    (the entropy and H(Y) of the inputs measured) where recorded, else ``h_x`` and ``i_xy``;
    ``ib_curve`` the optimal IB curve of the task. ``transitions``: ``{panel title: {layer:
    epoch}}``, the drift → diffusion transition of each layer (the median over seeds:
    :func:`infoflow.analysis.median_epoch`), ringed in green on the trajectory at the nearest
    measured epoch. Each layer is labelled at its last point; layers that end at the same point
    share one label (``T1 = T2 at the ceiling``: :func:`infoflow.plots.plane.end_labels`). The
    axes span at least :func:`~infoflow.plots._common.noise_span` of
    ``stderr`` (the typical standard errors of I(X;T) and I(T;Y), nats; NaN: not recorded).
    """
    f = unit_factor(units)
    fig, axes = _panels(len(groups), width=4.8, height=4.0, share=True)
    epochs = [int(e) for curves in groups.values() for c in curves.values() for e in c.epoch]
    norm = epoch_norm(epochs)
    marked = False
    ends: list[list[tuple]] = []  # per panel: (layer, x, y, colour) at the last epoch
    x_ceilings: list[float | None] = []
    for ax, (label, curves) in zip(axes, groups.items(), strict=True):
        if ib_curve is not None:
            ax.plot(np.asarray(ib_curve[0]) * f, np.asarray(ib_curve[1]) * f, "k-", lw=1.2,
                    zorder=1, label="optimal IB curve")  # fmt: skip
        x_ceilings.append(_plane_references(ax, curves, estimator, f, {"I_XT": h_x, "I_TY": i_xy}))
        marks = (transitions or {}).get(label, {})
        ends.append([])
        for k in _layers(curves, estimator, "I_XT"):
            cx, cy = curves[(estimator, "I_XT", k)], curves.get((estimator, "I_TY", k))
            if cy is None:
                continue
            common, ix, iy = np.intersect1d(cx.epoch, cy.epoch, return_indices=True)
            color = layer_color(k)
            x, y = cx.mean[ix] * f, cy.mean[iy] * f
            if errorbars:
                ax.errorbar(
                    x, y, xerr=np.nan_to_num(cx.std[ix]) * f, yerr=np.nan_to_num(cy.std[iy]) * f,
                    fmt="-", lw=1.2, elinewidth=0.6, alpha=0.85, color=color, label=f"T{k}",
                    zorder=2,
                )  # fmt: skip
            else:
                ax.plot(x, y, "-", lw=1.2, alpha=0.85, color=color, label=f"T{k}", zorder=2)
            ax.scatter(x, y, c=common, cmap=EPOCH_CMAP, norm=norm, s=14, zorder=3,
                       edgecolors=[color], linewidths=0.5)  # fmt: skip
            i = nearest_epoch(common, marks.get(k, math.inf))
            if i is not None:
                ax.scatter([x[i]], [y[i]], label="_nolegend_" if marked else TRANSITION_LABEL,
                           **TRANSITION_MARK)  # fmt: skip
                marked = True
            if len(x):
                ends[-1].append((k, x[-1], y[-1], color))
        ax.set_title(_title(label, curves, estimator, "I_XT"), fontsize=9)
        ax.set_xlabel(info_label("I(X;T)", units))
        ax.set_ylabel(info_label("I(T;Y)", units))
        ax.grid(alpha=0.3)
    if len(axes):  # the panels share both axes
        ensure_span(axes[0], noise_span(stderr[0]) * f, "x")
        ensure_span(axes[0], noise_span(stderr[1]) * f, "y")
    tol = (coincide_tolerance(stderr[0]) * f, coincide_tolerance(stderr[1]) * f)
    for ax, at_end, x_ceiling in zip(axes, ends, x_ceilings, strict=True):
        label_ends(ax, at_end, tol, x_ceiling)
    fig.colorbar(ScalarMappable(norm=norm, cmap=EPOCH_CMAP), ax=list(axes), label="epoch")
    _shared_legend(fig, axes)
    what = "mean ± std" if errorbars else "mean over seeds"
    fig.suptitle(title or f"Information plane across seeds — {estimator} ({what})", fontsize=10)
    return fig


class Dependence(NamedTuple):
    """Peak, final and compression of I(X;T_ℓ) across seeds at one value of the swept key; nats."""

    x: float
    layer: int
    measure: str  # peak | final | compression
    n: int
    mean: float
    std: float


MEASURES = (
    ("peak", "peak I(X;T)"),
    ("final", "final I(X;T)"),
    ("compression", "compression: peak − final"),
)


def dependence_figure(
    points: Mapping[str, Sequence[Dependence]],
    key: str,
    estimator: str,
    *,
    units: str = "bits",
    stderr: float = math.nan,
) -> Figure:
    """Peak, final and compression of I(X;T_ℓ) against ``key`` (error bars: std across seeds).

    Args:
        points: ``{line label suffix: points}``; one set of lines per value of the other swept
            keys ("" when ``key`` is the only one besides the seed).
        key: the swept key on the x axis, e.g. ``noise.beta``; log scale when its values are
            positive and span more than a factor 10.
        stderr: the typical standard error of one I(X;T) estimate (nats; NaN: not recorded). The
            peak and final panels span at least :func:`~infoflow.plots._common.noise_span` of
            it, the compression panel (a difference of two estimates) of √2 times it, so that a
            difference below the noise does not fill a panel.
    """
    f = unit_factor(units)
    fig = new_figure(13.5, 3.9)
    axes = fig.subplots(1, 3, squeeze=False)[0]
    styles = ["-", "--", ":", "-."]
    xs = [p.x for pts in points.values() for p in pts]
    for ax, (measure, title) in zip(axes, MEASURES, strict=True):
        for i, (suffix, pts) in enumerate(points.items()):
            for k in sorted({p.layer for p in pts}):
                sel = sorted(p for p in pts if p.layer == k and p.measure == measure)
                label = f"T{k}" + (f" {suffix}" if suffix else "")
                ax.errorbar(
                    [p.x for p in sel], [p.mean * f for p in sel],
                    yerr=[np.nan_to_num(p.std) * f for p in sel], fmt="o", ls=styles[i % 4],
                    ms=4, capsize=3, lw=1.2, color=layer_color(k), label=label,
                )  # fmt: skip
        if xs and min(xs) > 0 and max(xs) > 10 * min(xs):
            ax.set_xscale("log")
        ax.set_xlabel(key)
        ax.set_ylabel(info_label("I(X;T)", units))
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        noise = stderr * (math.sqrt(2) if measure == "compression" else 1.0)
        ensure_span(ax, noise_span(noise) * f)
    _shared_legend(fig, axes, ncol=8)
    fig.suptitle(f"Dependence on {key} — {estimator} (mean ± std across seeds)", fontsize=10)
    return fig


def sweep_binned_figure(
    groups: Mapping[str, Curves], *, reference: str = "sp", units: str = "bits"
) -> Figure:
    """H(Bin T_ℓ) for every bin size (mean across seeds) beside ``reference``'s I(X;T_ℓ)
    (mean ± std): one row per group, one column per layer. Noisy binnings are dashed."""
    f = unit_factor(units)
    ests = sorted(
        {e for curves in groups.values() for e, q, _ in curves if q == "H_T" and "bin" in e},
        key=lambda e: (e.startswith("bin_noisy"), bin_size(e)),
    )
    if not ests:
        raise ValueError("no binned H_T rows to draw")
    layers = sorted({k for curves in groups.values() for e, q, k in curves if e in ests})
    n_rows, n_cols = len(groups), len(layers)
    fig = new_figure(3.4 * n_cols, 2.8 * n_rows + 0.8)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    cmap = colormaps["plasma"]
    for row, (label, curves) in zip(axes, groups.items(), strict=True):
        for ax, k in zip(row, layers, strict=True):
            ref = curves.get((reference, "I_XT", k))
            if ref is not None:
                _band(ax, ref.epoch, ref, f, "black", f"I(X;T) {reference}")
            for i, e in enumerate(ests):
                c = curves.get((e, "H_T", k))
                if c is not None:
                    ls = "--" if e.startswith("bin_noisy") else "-"
                    color = cmap(0.85 * i / max(1, len(ests) - 1))
                    ax.plot(c.epoch, c.mean * f, ls, color=color, lw=1.1, label=f"H(Bin T) {e}")
            ax.set_title(f"{label}: T{k}", fontsize=8)
            ax.grid(alpha=0.3)
            epoch_axis(ax)
            ensure_span(ax, noise_span(math.nan) * f)  # binned entropies: no standard error
        row[0].set_ylabel(info_label("H, I", units))
    _shared_legend(fig, axes.ravel(), ncol=max(2, n_cols))  # a wide legend would be cut off
    fig.suptitle("Binned entropy per bin size beside SP (mean across seeds)", fontsize=10)
    return fig
