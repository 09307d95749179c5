"""Training dynamics: gradient phases and clustering measures against epoch, from the ``gradients``
and ``clustering`` records as columns by epoch (:func:`infoflow.plots.data.wide`)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from infoflow.plots._common import epoch_axis, finite, grid_shape, layer_color, new_figure

_GRAD = re.compile(r"^grad/layer(\d+)/(mean_norm|std_norm|snr)$")
_CLUSTER = re.compile(r"^cluster/(?:layer(\d+)/)?(.+)$")


def gradient_columns(metrics: Mapping[str, np.ndarray]) -> dict[int, dict[str, str]]:
    """``{layer: {"mean_norm" | "std_norm" | "snr": column}}`` of the gradient columns present."""
    out: dict[int, dict[str, str]] = defaultdict(dict)
    for col in metrics:
        m = _GRAD.match(col)
        if m and finite(metrics[col]).any():
            out[int(m.group(1))][m.group(2)] = col
    return dict(sorted(out.items()))


def cluster_columns(metrics: Mapping[str, np.ndarray]) -> dict[str, dict[int | None, str]]:
    """``{measure: {layer or None: column}}`` of the ``cluster/...`` columns present."""
    out: dict[str, dict[int | None, str]] = defaultdict(dict)
    for col in metrics:
        m = _CLUSTER.match(col)
        if m and finite(metrics[col]).any():
            out[m.group(2)][int(m.group(1)) if m.group(1) else None] = col
    return dict(sorted(out.items()))


def _line(ax, metrics, col: str, style: str, color, label: str | None, positive: bool) -> None:
    y = np.asarray(metrics[col], dtype=float)
    ok = finite(y) & (y > 0) if positive else finite(y)
    ax.plot(metrics["epoch"][ok], y[ok], style, color=color, lw=1.3, label=label or "_nolegend_")


def gradients_figure(metrics: Mapping[str, np.ndarray]) -> Figure:
    """Shwartz-Ziv & Tishby's gradient phases: per layer, the norm of the mean gradient (solid)
    and of its standard deviation (dashed) on log-log axes, and their ratio (SNR) below.

    Epochs use the symlog axis of the other figures (log beyond epoch 1); values ≤ 0 are not
    drawn on the log y axes.
    """
    cols = gradient_columns(metrics)
    if not cols:
        raise ValueError("no grad/layer<k>/... columns in metrics")
    with_snr = any("snr" in c for c in cols.values())
    fig = new_figure(7.0, 6.0 if with_snr else 3.6)
    axes = fig.subplots(2 if with_snr else 1, 1, sharex=True, squeeze=False)[:, 0]
    for k, c in cols.items():
        color = layer_color(k)
        if "mean_norm" in c:
            _line(axes[0], metrics, c["mean_norm"], "-", color, f"T{k}", True)
        if "std_norm" in c:
            label = None if "mean_norm" in c else f"T{k}"
            _line(axes[0], metrics, c["std_norm"], "--", color, label, True)
        if with_snr and "snr" in c:
            _line(axes[1], metrics, c["snr"], "-", color, f"T{k}", True)
    axes[0].set_ylabel("gradient norm")
    axes[0].set_title("Gradient mean (solid) and std (dashed) per layer")
    if with_snr:
        axes[1].set_ylabel("SNR = mean / std")
    for ax in axes:
        ax.set_yscale("log")
        epoch_axis(ax, label=ax is axes[-1])
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2)
    return fig


def clustering_figure(metrics: Mapping[str, np.ndarray]) -> Figure:
    """One panel per ``cluster/...`` measure against epoch, one line per layer."""
    cols = cluster_columns(metrics)
    if not cols:
        raise ValueError("no cluster/... columns in metrics")
    n_rows, n_cols = grid_shape(len(cols), 2)
    fig = new_figure(4.8 * n_cols, 3.2 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, (measure, by_layer) in zip(axes, cols.items(), strict=False):
        for k, col in sorted(by_layer.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
            color = "black" if k is None else layer_color(k)
            _line(ax, metrics, col, "-", color, "all" if k is None else f"T{k}", False)
        ax.set_title(measure)
        epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(cols) :]:
        ax.set_visible(False)
    return fig
