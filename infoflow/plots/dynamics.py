"""Training dynamics: gradient phases and clustering measures against epoch, from the ``gradients``
and ``clustering`` record rows (one seed or several: mean ± sd across seeds, members faint)."""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infoflow.analysis import epoch_stats, median_epoch, snr_transitions
from infoflow.plots._common import (
    REFERENCE_Z,
    draw_seeds,
    epoch_axis,
    grid_shape,
    layer_color,
    new_figure,
    reference_style,
    spread_note,
)
from infoflow.plots.data import members

GRADIENT_QUANTITIES = ("mean_norm", "std_norm", "snr")
#: Clustering measures in the order drawn: (title, y label). Others follow, named as recorded.
CLUSTER_MEASURES = {
    "distance_ratio": (
        "distance ratio: mean within-class / between-class distance (0: classes collapsed, "
        "1: class ignored)",
        "distance ratio [unitless]",
    ),
    "silhouette": ("silhouette score (1: tight, separated classes)", "silhouette [−1, 1]"),
    "cos_within_mean": ("cosine similarity within a class: mean", "cosine similarity [−1, 1]"),
    "cos_between_mean": ("cosine similarity between classes: mean", "cosine similarity [−1, 1]"),
    "cos_within_std": ("cosine similarity within a class: sd", "sd of cosine similarity"),
    "cos_between_std": ("cosine similarity between classes: sd", "sd of cosine similarity"),
    "kmeans_nmi": ("k-means clusters vs labels: normalised mutual information", "NMI [0, 1]"),
    "kmeans_ari": ("k-means clusters vs labels: adjusted Rand index", "ARI [−0.5, 1]"),
    "davies_bouldin": ("Davies–Bouldin index (lower: tighter classes)", "DB index [unitless]"),
    "calinski_harabasz": (
        "Calinski–Harabasz index (higher: tighter classes)",
        "CH index [unitless]",
    ),
}


def _quantities(rows: Sequence[Mapping], estimator: str) -> list[str]:
    seen: dict[str, None] = {}
    for r in rows:
        if r["estimator"] == estimator and r["value"] == r["value"]:  # a finite or inf value
            seen.setdefault(r["quantity"], None)
    return list(seen)


def gradient_layers(rows: Sequence[Mapping]) -> list[int]:
    """The weight layers with gradient rows (the read-out is the last)."""
    return sorted({int(r["layer"]) for r in rows if r["estimator"] == "gradients" and r["layer"]})


def cluster_measures(rows: Sequence[Mapping]) -> list[str]:
    """The clustering measures with rows, in the order :data:`CLUSTER_MEASURES` gives."""
    have = _quantities(rows, "clustering")
    return [m for m in CLUSTER_MEASURES if m in have] + [
        m for m in have if m not in CLUSTER_MEASURES
    ]


def _any_positive(by_layer: Mapping) -> bool:
    """Whether any member of any layer has a finite value > 0 (something to draw on a log axis)."""
    return any(
        bool(np.any(np.isfinite(s.value) & (s.value > 0)))
        for by_seed in by_layer.values()
        for s in by_seed.values()
    )


def _layer_name(k: int, readout: int | None) -> str:
    return "read-out" if k == readout else f"T{k}"


def transition_note(rows: Sequence[Mapping], readout: int | None) -> str:
    """One line naming, per weight layer, the median epoch (over seeds) from which the gradient
    SNR stays below 1, and how many seeds cross: ``T1 350 (48/50), read-out — (0/50)``; ``—``
    where half the seeds or fewer cross (:func:`infoflow.analysis.median_epoch`)."""
    events = snr_transitions(rows)
    medians = median_epoch(events)
    parts = []
    for st in epoch_stats(events):
        at = medians[st.layer]
        text = f"{_layer_name(st.layer, readout)} " + (f"{at:.0f}" if math.isfinite(at) else "—")
        parts.append(text + (f" ({st.n}/{st.n_seeds})" if st.n_seeds > 1 else ""))
    return ", ".join(parts)


def _draw_transitions(ax: Axes, rows: Sequence[Mapping], readout: int | None) -> None:
    """On the SNR panel: the SNR = 1 line; per layer, each seed's transition epoch as a tick on
    it and the median over seeds as a dotted vertical line in the layer's colour."""
    ax.axhline(1.0, label="SNR = 1", **reference_style("snr_one"))
    events = snr_transitions(rows)
    medians = median_epoch(events)
    n_seeds = 1
    for k, at in medians.items():
        color = "black" if k == readout else layer_color(k)
        epochs = [ev.epoch for ev in events if ev.layer == k and ev.epoch is not None]
        n_seeds = max(n_seeds, sum(ev.layer == k for ev in events))
        ax.plot(epochs, np.ones(len(epochs)), "|", color=color, ms=12, mew=1.3,
                zorder=REFERENCE_Z, label="_nolegend_")  # fmt: skip
        if math.isfinite(at):
            ax.axvline(at, color=color, ls=":", lw=1.4, zorder=REFERENCE_Z, label="_nolegend_")
    which = "dotted: median over seeds (seeds that cross); ticks: each seed" if n_seeds > 1 else ""
    head = "Drift → diffusion: epoch from which the SNR stays below 1" + (
        f" ({which})" if which else ""
    )
    body = textwrap.fill(transition_note(rows, readout), width=95)
    ax.set_title(f"{head}\n{body}", fontsize=8)


def gradients_figure(rows: Sequence[Mapping]) -> Figure:
    """Shwartz-Ziv & Tishby's gradient phases: per weight layer (the weights into T_k, and the
    read-out: the output layer, last), the norm of the mean mini-batch gradient over an epoch
    (solid) and of its standard deviation (dashed) on log-log axes, and their ratio (SNR) below.

    The SNR panel marks the drift → diffusion transition: the SNR = 1 line, each seed's epoch from
    which the SNR stays below 1 (:func:`infoflow.analysis.snr_transitions`) as a tick on it, and
    the median over seeds as a dotted vertical line per layer, named in the panel's title (with
    how many seeds cross; ``—``: half the seeds or fewer).

    Epochs use the symlog axis of the other figures, starting at the first epoch measured (epoch
    0 has no gradients); values ≤ 0 are not drawn on the log y axes. With several seeds: mean ±
    sd across seeds, members faint.
    """
    layers = gradient_layers(rows)
    if not layers:
        raise ValueError("no gradients rows")
    data = {q: members(rows, "gradients", q) for q in GRADIENT_QUANTITIES}
    readout = layers[-1] if len(layers) > 1 else None
    with_snr = _any_positive(data["snr"])
    one_batch = not _any_positive(data["std_norm"])  # sd 0 at every epoch: one step per epoch
    fig = new_figure(7.0, 6.6 if with_snr else 3.8)
    axes = fig.subplots(2 if with_snr else 1, 1, sharex=True, squeeze=False)[:, 0]
    n_seeds, first = 1, None
    for k in layers:
        color = "black" if k == readout else layer_color(k)
        name = _layer_name(k, readout)
        for q, ax, ls in (("mean_norm", axes[0], "-"), ("std_norm", axes[0], "--"),
                          ("snr", axes[-1], "-")):  # fmt: skip
            by_seed = data[q].get(k)
            if not by_seed or (q == "snr" and not with_snr):
                continue
            label = None if q == "std_norm" and k in data["mean_norm"] else name
            draw_seeds(ax, by_seed, 1.0, color, label, ls=ls, lw=1.3, positive=True)
            n_seeds = max(n_seeds, len(by_seed))
            lo = min(int(s.epoch.min()) for s in by_seed.values() if len(s.epoch))
            first = lo if first is None else min(first, lo)
    axes[0].set_ylabel("gradient norm [nats per unit weight]")
    note = spread_note(n_seeds)
    what = "T_k: the weights into hidden layer k" + (
        "; read-out: the output layer" if readout is not None else ""
    )
    if one_batch:
        what += "\nsd = 0 and SNR infinite at every epoch: one mini-batch per epoch"
    axes[0].set_title(
        "Mini-batch gradients per weight layer: norm of the mean (solid), of the sd (dashed)\n"
        + what
        + (f"\n({note})" if note else ""),
        fontsize=9,
    )
    if with_snr:
        axes[1].set_ylabel("SNR = ‖mean‖ / ‖sd‖ [ratio]")
        _draw_transitions(axes[1], rows, readout)
    for ax in axes:
        ax.set_yscale("log")
        epoch_axis(ax, label=ax is axes[-1])
        if first is not None and first > 0:
            ax.set_xlim(left=first)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=3)
    return fig


def clustering_figure(rows: Sequence[Mapping]) -> Figure:
    """One panel per clustering measure against epoch, one line per layer (black: a measure of
    the whole network), titled and labelled with what it measures. With several seeds: mean ± sd
    across seeds, members faint."""
    measures = cluster_measures(rows)
    if not measures:
        raise ValueError("no clustering rows")
    n_rows, n_cols = grid_shape(len(measures), 2)
    fig = new_figure(5.2 * n_cols, 3.2 * n_rows + 0.4)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    n_seeds = 1
    for ax, measure in zip(axes, measures, strict=False):
        by_layer = members(rows, "clustering", measure)
        for k, by_seed in sorted(by_layer.items(), key=lambda kv: -1 if kv[0] is None else kv[0]):
            color = "black" if k is None else layer_color(k)
            draw_seeds(ax, by_seed, 1.0, color, "all" if k is None else f"T{k}", lw=1.3)
            n_seeds = max(n_seeds, len(by_seed))
        title, ylabel = CLUSTER_MEASURES.get(measure, (measure.replace("_", " "), measure))
        ax.set_title(title, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    for ax in axes[len(measures) :]:
        ax.set_visible(False)
    note = spread_note(n_seeds)
    fig.suptitle("Clustering of the representations by class" + (f" ({note})" if note else ""))
    return fig
