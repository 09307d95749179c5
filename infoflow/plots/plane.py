"""The information plane: I(X;T_ℓ) against I(T_ℓ;Y), one trajectory per hidden layer."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from infoflow.analysis import median_epoch, snr_transitions, typical_stderr
from infoflow.plots._common import (
    EPOCH_CMAP,
    MEMBER_ALPHA,
    MEMBER_LW,
    TRANSITION_LABEL,
    TRANSITION_MARK,
    coincide_tolerance,
    coinciding,
    ensure_span,
    epoch_norm,
    info_label,
    layer_color,
    nearest_epoch,
    new_figure,
    noise_span,
    reference_style,
    spread_note,
    unit_factor,
)
from infoflow.plots.data import CEILED, ceilings, members, spread

#: Labels of the ceilings the information callback records (``ceiling`` rows).
CEILING_LABELS = {"I_XT": "H(X) of the inputs measured", "I_TY": "H(Y) of the inputs measured"}


def _pair(x: np.ndarray, y: np.ndarray, ex: np.ndarray, ey: np.ndarray):
    """Points where both coordinates exist: (epochs, x values, y values)."""
    common, ix, iy = np.intersect1d(ex, ey, return_indices=True)
    return common, np.asarray(x)[ix], np.asarray(y)[iy]


def information_plane_figure(
    rows: Sequence[Mapping],
    estimator: str,
    *,
    units: str = "bits",
    h_x: float | None = None,
    i_xy: float | None = None,
    ib_curve: tuple[np.ndarray, np.ndarray] | None = None,
    transitions: bool = True,
) -> Figure:
    """Information plane of one estimator.

    Args:
        rows: information rows (see :mod:`infoflow.plots.data`), values in nats, one seed or
            several (an ensemble: every row carries its member's seed).
        estimator: e.g. ``"sp"``, ``"bin:tishby:30"``; needs I_XT and I_TY rows.
        units: ``"bits"`` or ``"nats"`` for the axes.
        h_x: H(X) in nats: drawn as a vertical reference line (the ceiling of I(X;T)).
        i_xy: I(X;Y) in nats: drawn as a horizontal reference line (the ceiling of I(T;Y)).
        ib_curve: ``(i_xt, i_ty)`` arrays in nats (e.g. an ``IBCurve``), drawn as the optimal
            IB bound.
        transitions: mark each layer's drift → diffusion transition (from the ``gradients`` rows:
            :func:`infoflow.analysis.snr_transitions`) with a green ring on its trajectory, at the
            measured epoch nearest the median transition epoch over seeds.

    Where the rows hold ``ceiling`` rows and the estimator is measured on those inputs (SP), the
    ceilings drawn are theirs — the entropy and H(Y) of the inputs measured — instead of ``h_x``
    and ``i_xy``. Ceilings are drawn above the trajectories, each in its own style.

    Each layer is a line through its epochs in the layer's colour, labelled ``T<k>`` at its last
    epoch; layers that end at the same point (within noise: :func:`coincide_tolerance`) share one
    label, ``T1 = T2`` (``at the ceiling`` when that point is on the I(X;T) ceiling); other labels
    that would overlap are stacked. The markers are coloured by epoch on a logarithmic scale
    (symlog, so epoch 0 fits). Earlier layers are drawn wider and with larger markers, so a layer
    whose trajectory another covers stays visible. With several seeds the line is the mean
    trajectory (mean I(X;T), mean I(T;Y) at each epoch) and each member is a faint thin line
    behind it. Each axis spans at least a few standard errors (:func:`noise_span`), so noise
    never fills a panel. Negative estimates are drawn as they are.
    """
    f = unit_factor(units)
    xs, ys = members(rows, estimator, "I_XT"), members(rows, estimator, "I_TY")
    layers = sorted(k for k in set(xs) & set(ys) if k is not None)
    n_seeds = max((len(xs[k]) for k in layers), default=1)
    fig = new_figure(6.6, 5.2)
    ax = fig.add_subplot()
    epochs = [int(e) for k in layers for s in xs[k].values() for e in s.epoch]
    norm = epoch_norm(epochs)
    marks = median_epoch(snr_transitions(rows)) if transitions else {}
    ends, marked = [], False
    for rank, k in enumerate(layers):
        color = layer_color(k)
        wide = (len(layers) - 1 - rank) / max(1, len(layers) - 1)  # 1 for T1, 0 for the last
        if n_seeds > 1:
            for seed, sx in xs[k].items():
                sy = ys[k].get(seed)
                if sy is not None:
                    _, x, y = _pair(sx.value, sy.value, sx.epoch, sy.epoch)
                    ax.plot(x * f, y * f, "-", color=color, lw=MEMBER_LW, alpha=MEMBER_ALPHA,
                            zorder=1.5)  # fmt: skip
        mx, my = spread(xs[k]), spread(ys[k])
        common, x, y = _pair(mx.mean, my.mean, mx.epoch, my.epoch)
        x, y = x * f, y * f
        ax.plot(x, y, "-", color=color, lw=1.2 + 1.6 * wide, alpha=0.8, zorder=2, label=f"T{k}")
        ax.scatter(
            x, y, c=common, cmap=EPOCH_CMAP, norm=norm, s=12 + 26 * wide, zorder=3,
            edgecolors=[color], linewidths=0.6,
        )  # fmt: skip
        i = nearest_epoch(common, marks.get(k, math.inf))
        if i is not None:
            label = "_nolegend_" if marked else TRANSITION_LABEL
            ax.scatter([x[i]], [y[i]], label=label, **TRANSITION_MARK)
            marked = True
        if len(x):
            ends.append((k, x[-1], y[-1], color))
    x_ceiling = _references(ax, rows, estimator, f, h_x, i_xy, ib_curve)
    se_x = typical_stderr(rows, estimator, "I_XT")
    se_y = typical_stderr(rows, estimator, "I_TY")
    ensure_span(ax, noise_span(se_x) * f, "x")
    ensure_span(ax, noise_span(se_y) * f, "y")
    tol = (coincide_tolerance(se_x) * f, coincide_tolerance(se_y) * f)
    label_ends(ax, ends, tol, x_ceiling)
    fig.colorbar(ScalarMappable(norm=norm, cmap=EPOCH_CMAP), ax=ax, label="epoch")
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # outside the axes: trajectories may lie anywhere in the plane
        fig.legend(
            handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8
        )
    ax.set_xlabel(info_label("I(X;T)", units))
    ax.set_ylabel(info_label("I(T;Y)", units))
    note = spread_note(n_seeds).replace("mean ± sd", "mean trajectory")
    ax.set_title(f"Information plane — {estimator}" + (f"\n({note})" if note else ""))
    ax.grid(alpha=0.3)
    return fig


def end_labels(
    ends: Sequence[tuple[int, float, float, Any]],
    tol: tuple[float, float],
    x_ceiling: float | None = None,
) -> list[tuple[str, float, float, Any]]:
    """``(text, x, y, colour)`` of the labels at the layers' last points ``(k, x, y, colour)``:
    one per group of layers that end at the same point within ``tol`` — ``T1 = T2``, with ``at
    the ceiling`` where that point lies within ``tol`` of ``x_ceiling``.

    >>> end_labels([(1, 8.3, 0.6, "r"), (2, 8.3, 0.6, "b"), (3, 5.0, 0.6, "g")], (0.01, 0.01), 8.3)
    [('T1 = T2 at the ceiling', 8.3, 0.6, 'r'), ('T3', 5.0, 0.6, 'g')]
    """
    by_layer = {k: (k, x, y, c) for k, x, y, c in ends}
    out = []
    for group in coinciding({k: (x, y) for k, x, y, _ in ends}, tol):
        _, x, y, color = by_layer[group[0]]
        text = " = ".join(f"T{k}" for k in group)
        if len(group) > 1 and x_ceiling is not None and abs(x - x_ceiling) <= tol[0]:
            text += " at the ceiling"
        out.append((text, x, y, color))
    return out


def label_ends(
    ax: Axes,
    ends: list[tuple[int, float, float, Any]],
    tol: tuple[float, float],
    x_ceiling: float | None,
) -> None:
    """The labels of :func:`end_labels` at the layers' last points; labels that would overlap
    are stacked, away from the nearer of the top and bottom edges."""
    labels = end_labels(ends, tol, x_ceiling)
    if not labels:
        return
    ax.autoscale_view()
    px = ax.transData.transform([(x, y) for _, x, y, _ in labels])
    (x_left, y_bottom), (x_right, y_top) = ax.transAxes.transform([(0, 0), (1, 1)])
    to_points = 72.0 / ax.figure.dpi
    step = 11.0  # label height, pixels
    placed: list[tuple[float, float, float]] = []
    for (text, x, y, color), (u, v) in zip(labels, px, strict=True):
        width = 6.5 * len(text) + 6  # pixels, about
        left = u + width > x_right  # it would run past the right edge: write it leftwards
        start = u - width if left else u  # the label's left end
        down = v > (y_bottom + y_top) / 2
        dv = -step - 4 if down else 4.0
        while any(
            start < pu + pw and pu < start + width and abs(v + dv - pv) < step
            for pu, pv, pw in placed
        ):
            dv += -step if down else step
        placed.append((start, v + dv, width))
        ax.annotate(
            text, (x, y), xytext=(-4 if left else 4, dv * to_points), textcoords="offset points",
            ha="right" if left else "left", color=color, fontsize=9, fontweight="bold", zorder=6,
            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.75),
        )  # fmt: skip


def _references(ax, rows, estimator, f: float, h_x, i_xy, ib_curve) -> float | None:
    """The ceilings (from the ``ceiling`` rows for SP, else H(X), I(X;Y)) and the IB curve, above
    the trajectories; returns the I(X;T) ceiling drawn (scaled), if any."""
    if ib_curve is not None:
        ix, iy = np.asarray(ib_curve[0]) * f, np.asarray(ib_curve[1]) * f
        ax.plot(ix, iy, "k-", lw=1.5, zorder=1, label="optimal IB curve")
    measured = ceilings(rows) if estimator in CEILED else {}
    x_ceiling = None
    for q, line in (("I_XT", ax.axvline), ("I_TY", ax.axhline)):
        if q in measured:
            v = measured[q].value[np.isfinite(measured[q].value)]
            if len(v):
                at = float(np.max(v)) * f
                kind = "measured_x" if q == "I_XT" else "measured_y"
                line(at, label=CEILING_LABELS[q], **reference_style(kind))
                if np.ptp(v) > 1e-3:  # it moved between epochs or seeds: show its range
                    span = ax.axvspan if q == "I_XT" else ax.axhspan
                    span(v.min() * f, v.max() * f, color="0.5", alpha=0.12, lw=0, zorder=0)
                x_ceiling = at if q == "I_XT" else x_ceiling
                continue
        ref = h_x if q == "I_XT" else i_xy
        if ref is not None:
            label = "H(X)" if q == "I_XT" else "I(X;Y)"
            line(ref * f, label=label, **reference_style("task_x" if q == "I_XT" else "task_y"))
            x_ceiling = ref * f if q == "I_XT" else x_ceiling
    return x_ceiling
