"""Scatter plots of narrow layers' representations, coloured by class, at a few epochs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from infoflow.plots._common import grid_shape, new_figure

MAX_UNITS = 3


def pick_epochs(epochs: Sequence[int], n: int = 6) -> list[int]:
    """At most ``n`` of ``epochs``, evenly spaced in log(epoch + 1), always the first and last."""
    epochs = sorted(set(int(e) for e in epochs))
    if len(epochs) <= n:
        return epochs
    targets = np.geomspace(epochs[0] + 1, epochs[-1] + 1, n)
    logs = np.log(np.asarray(epochs) + 1.0)
    picked = {epochs[int(np.abs(logs - np.log(t)).argmin())] for t in targets}
    picked |= {epochs[0], epochs[-1]}
    return sorted(picked)


def _limits(arrays: list[np.ndarray]) -> list[tuple[float, float]]:
    """Per-dimension (lo, hi) over all arrays, with a 5% margin."""
    stacked = np.concatenate(arrays, axis=0)
    lo, hi = np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)
    pad = np.maximum((hi - lo) * 0.05, 1e-3)
    return list(zip(lo - pad, hi + pad, strict=True))


def scatter_figure(
    snapshots: Mapping[int, Mapping[str, np.ndarray]],
    layer: int,
    *,
    max_panels: int = 6,
    max_points: int = 5000,
) -> Figure:
    """Representations of hidden layer ``layer`` (≤ 3 units) coloured by class, one panel per
    epoch (≤ ``max_panels``, log-spaced, first and last always; Goldfeld et al.'s SZT figure).

    Args:
        snapshots: ``{epoch: {"labels": (n,), "layer_<k>": (n, d)}}``; epochs lacking the layer
            are ignored.
        layer: the hidden layer (1-based).
        max_points: at most this many points per panel (evenly strided), to keep drawing cheap.

    One unit: value against class (jittered); two: a plane; three: a 3-D scatter. Each panel's
    axes span its own points (early representations are often far smaller than late ones).
    """
    key = f"layer_{layer}"
    have = {e: s for e, s in snapshots.items() if key in s and "labels" in s}
    if not have:
        raise ValueError(f"no snapshot holds {key}")
    epochs = pick_epochs(list(have), max_panels)
    reps = [np.asarray(have[e][key], dtype=float).reshape(len(have[e][key]), -1) for e in epochs]
    d = reps[0].shape[1]
    if d > MAX_UNITS:
        raise ValueError(f"{key} has {d} units; scatter plots need at most {MAX_UNITS}")
    classes = np.unique(np.concatenate([np.asarray(have[e]["labels"]) for e in epochs]))
    cmap = colormaps["tab10"]
    n_rows, n_cols = grid_shape(len(epochs))
    fig = new_figure(3.3 * n_cols + 0.8, 3.2 * n_rows + 0.4)
    for i, (e, rep) in enumerate(zip(epochs, reps, strict=True)):
        ax = fig.add_subplot(n_rows, n_cols, i + 1, projection="3d" if d == 3 else None)
        labels = np.asarray(have[e]["labels"])
        step = max(1, len(rep) // max_points)
        rep, labels = rep[::step], labels[::step]
        size = float(np.clip(3000 / max(len(rep), 1), 3, 40))  # a few points: larger dots
        for j, c in enumerate(classes):
            pts = rep[labels == c]
            coords = _coords(pts, j, d)
            ax.scatter(*coords, s=size, alpha=0.5, color=cmap(j % 10), label=f"y = {c}", lw=0)
        _style(ax, d, _limits([rep]), classes)  # each epoch's own extent: early ones are small
        ax.set_title(f"epoch {e}", fontsize=9)
    handles, labels = fig.axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", markerscale=4, fontsize=8)
    fig.suptitle(
        f"Layer T{layer} representations ({d} unit{'s' if d > 1 else ''}; "
        "axes scaled to each epoch's points)"
    )
    return fig


def _coords(pts: np.ndarray, class_index: int, d: int) -> list[np.ndarray]:
    if d == 1:  # value on x, the class (jittered, deterministic) on y
        jitter = np.linspace(-0.3, 0.3, len(pts)) if len(pts) else np.zeros(0)
        return [pts[:, 0], class_index + np.random.default_rng(0).permutation(jitter)]
    return [pts[:, i] for i in range(d)]


def _style(ax, d: int, lims: list[tuple[float, float]], classes: np.ndarray) -> None:
    ax.set_xlim(*lims[0])
    ax.tick_params(labelsize=7)
    if d == 1:
        ax.set_yticks(range(len(classes)), [str(c) for c in classes])
        ax.set_ylabel("class", fontsize=8)
        ax.set_xlabel("unit 1 activation", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(5))
        return
    ax.set_ylim(*lims[1])
    ax.set_xlabel("unit 1", fontsize=8)
    ax.set_ylabel("unit 2", fontsize=8)
    axes = [ax.xaxis, ax.yaxis]
    if d == 3:
        ax.set_zlim(*lims[2])
        ax.set_zlabel("unit 3", fontsize=8)
        ax.set_box_aspect(None, zoom=0.85)  # room for the z label
        axes.append(ax.zaxis)
    for axis in axes:
        axis.set_major_locator(MaxNLocator(4))
