"""The information plane: I(X;T_ℓ) against I(T_ℓ;Y), one trajectory per hidden layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from infoflow.plots._common import (
    CEILING_STYLE,
    EPOCH_CMAP,
    MEMBER_ALPHA,
    MEMBER_LW,
    epoch_norm,
    info_label,
    layer_color,
    new_figure,
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

    Where the rows hold ``ceiling`` rows and the estimator is measured on those inputs (SP), the
    ceilings drawn are theirs — the entropy and H(Y) of the inputs measured — instead of ``h_x``
    and ``i_xy``.

    Each layer is a line through its epochs in the layer's colour, labelled ``T<k>`` at its last
    epoch (labels that would overlap are stacked); the markers are coloured by epoch on a
    logarithmic scale (symlog, so epoch 0 fits). Earlier layers are drawn wider and with larger
    markers, so a layer whose trajectory another covers stays visible. With several seeds the line
    is the mean trajectory (mean I(X;T), mean I(T;Y) at each epoch) and each member is a faint thin
    line behind it. Negative estimates are drawn as they are.
    """
    f = unit_factor(units)
    xs, ys = members(rows, estimator, "I_XT"), members(rows, estimator, "I_TY")
    layers = sorted(k for k in set(xs) & set(ys) if k is not None)
    n_seeds = max((len(xs[k]) for k in layers), default=1)
    fig = new_figure(6.6, 5.2)
    ax = fig.add_subplot()
    epochs = [int(e) for k in layers for s in xs[k].values() for e in s.epoch]
    norm = epoch_norm(epochs)
    ends = []
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
        if len(x):
            ends.append((k, x[-1], y[-1], color))
    _references(ax, rows, estimator, f, h_x, i_xy, ib_curve)
    _label_ends(ax, ends)
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


def _label_ends(ax: Axes, ends: list[tuple[int, float, float, tuple]]) -> None:
    """``T<k>`` at each layer's last point; labels that would overlap are stacked, away from the
    nearer of the top and bottom edges."""
    if not ends:
        return
    ax.autoscale_view()
    px = ax.transData.transform([(x, y) for _, x, y, _ in ends])
    (_, y_bottom), (_, y_top) = ax.transAxes.transform([(0, 0), (1, 1)])
    to_points = 72.0 / ax.figure.dpi
    step, width = 11.0, 24.0  # label height and width, pixels
    placed: list[tuple[float, float]] = []
    for (k, x, y, color), (u, v) in zip(ends, px, strict=True):
        down = v > (y_bottom + y_top) / 2
        dv = -step - 4 if down else 4.0
        while any(abs(u - pu) < width and abs(v + dv - pv) < step for pu, pv in placed):
            dv += -step if down else step
        placed.append((u, v + dv))
        ax.annotate(
            f"T{k}", (x, y), xytext=(4, dv * to_points), textcoords="offset points",
            color=color, fontsize=9, fontweight="bold", zorder=4,
        )  # fmt: skip


def _references(ax, rows, estimator, f: float, h_x, i_xy, ib_curve) -> None:
    """The ceilings (from the ``ceiling`` rows for SP, else H(X), I(X;Y)) and the IB curve."""
    if ib_curve is not None:
        ix, iy = np.asarray(ib_curve[0]) * f, np.asarray(ib_curve[1]) * f
        ax.plot(ix, iy, "k-", lw=1.5, zorder=1, label="optimal IB curve")
    measured = ceilings(rows) if estimator in CEILED else {}
    for q, line in (("I_XT", ax.axvline), ("I_TY", ax.axhline)):
        if q in measured:
            v = measured[q].value[np.isfinite(measured[q].value)]
            if len(v):
                line(float(np.max(v)) * f, label=CEILING_LABELS[q], **CEILING_STYLE)
                if np.ptp(v) > 1e-3:  # it moved between epochs or seeds: show its range
                    span = ax.axvspan if q == "I_XT" else ax.axhspan
                    span(v.min() * f, v.max() * f, color="0.5", alpha=0.12, lw=0, zorder=0)
                continue
        ref = h_x if q == "I_XT" else i_xy
        if ref is not None:
            label = "H(X)" if q == "I_XT" else "I(X;Y)"
            line(ref * f, color="grey", ls="--" if q == "I_XT" else ":", lw=1.1, zorder=1,
                 label=label)  # fmt: skip
