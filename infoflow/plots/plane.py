"""The information plane: I(X;T_ℓ) against I(T_ℓ;Y), one trajectory per hidden layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure

from infoflow.plots._common import (
    EPOCH_CMAP,
    epoch_norm,
    info_label,
    layer_color,
    new_figure,
    unit_factor,
)
from infoflow.plots.data import series


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
        rows: information rows (see :mod:`infoflow.plots.data`), values in nats.
        estimator: e.g. ``"sp"``, ``"bin:tishby:30"``; needs I_XT and I_TY rows.
        units: ``"bits"`` or ``"nats"`` for the axes.
        h_x: H(X) in nats: drawn as a vertical reference line (the ceiling of I(X;T)).
        i_xy: I(X;Y) in nats: drawn as a horizontal reference line (the ceiling of I(T;Y)).
        ib_curve: ``(i_xt, i_ty)`` arrays in nats (e.g. an ``IBCurve``), drawn as the optimal
            IB bound.

    Each layer is a line through its epochs in the layer's colour, labelled ``T<k>`` at its last
    epoch; the markers are coloured by epoch on a logarithmic scale (symlog, so epoch 0 fits).
    Negative estimates are drawn as they are.
    """
    f = unit_factor(units)
    xs, ys = series(rows, estimator, "I_XT"), series(rows, estimator, "I_TY")
    layers = sorted(set(xs) & set(ys))
    fig = new_figure(6.6, 5.2)
    ax = fig.add_subplot()
    epochs = [int(e) for k in layers for e in xs[k].epoch]
    norm = epoch_norm(epochs)
    for k in layers:
        common, ix, iy = np.intersect1d(xs[k].epoch, ys[k].epoch, return_indices=True)
        x, y = xs[k].value[ix] * f, ys[k].value[iy] * f
        color = layer_color(k)
        ax.plot(x, y, "-", color=color, lw=1.6, alpha=0.8, zorder=2, label=f"T{k}")
        ax.scatter(
            x, y, c=common, cmap=EPOCH_CMAP, norm=norm, s=16, zorder=3,
            edgecolors=[color], linewidths=0.5,
        )  # fmt: skip
        if len(x):
            ax.annotate(
                f"T{k}", (x[-1], y[-1]), xytext=(4, 4), textcoords="offset points",
                color=color, fontsize=9, fontweight="bold", zorder=4,
            )  # fmt: skip
    _references(ax, f, h_x, i_xy, ib_curve)
    fig.colorbar(ScalarMappable(norm=norm, cmap=EPOCH_CMAP), ax=ax, label="epoch")
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # outside the axes: trajectories may lie anywhere in the plane
        fig.legend(
            handles, labels, loc="outside lower center", ncol=min(len(labels), 8), fontsize=8
        )
    ax.set_xlabel(info_label("I(X;T)", units))
    ax.set_ylabel(info_label("I(T;Y)", units))
    ax.set_title(f"Information plane — {estimator}")
    ax.grid(alpha=0.3)
    return fig


def _references(ax, f: float, h_x, i_xy, ib_curve) -> None:
    """H(X), I(X;Y) lines and the IB curve (nats, scaled by ``f``)."""
    if ib_curve is not None:
        ix, iy = np.asarray(ib_curve[0]) * f, np.asarray(ib_curve[1]) * f
        ax.plot(ix, iy, "k-", lw=1.5, zorder=1, label="optimal IB curve")
    if h_x is not None:
        ax.axvline(h_x * f, color="grey", ls="--", lw=1, zorder=1, label="H(X)")
    if i_xy is not None:
        ax.axhline(i_xy * f, color="grey", ls=":", lw=1.2, zorder=1, label="I(X;Y)")
