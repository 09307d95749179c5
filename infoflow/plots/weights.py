"""The final weights of an ensemble: equally accurate members, different weights.

Shwartz-Ziv & Tishby (2017) write of "the randomised nature of the final weights" of their 50
networks without a figure; IDNNs' nearest code is ``plot_pearson``. :func:`final_weights_figure`
shows it from ``weights.npz`` (:func:`infoflow.plots.data.load_weights`) and the members' final
accuracies (``training.csv``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infoflow.analysis import align_members, member_correlations, pairs, unit_correlation
from infoflow.plots._common import layer_color, new_figure, reference_style

#: Weights drawn in a layer's scatter at most (an even subsample beyond; all enter the numbers).
MAX_POINTS = 20_000
#: Accuracy splits drawn, in order, when the training records have them.
SPLITS = ("train", "val")


def final_accuracy(training: Sequence[Mapping[str, Any]]) -> dict[str, dict[Any, float]]:
    """``{split: {seed: accuracy}}`` at each seed's last epoch with a finite ``acc`` (record rows
    of training.csv; splits of :data:`SPLITS` that have any)."""
    last: dict[str, dict[Any, tuple[int, float]]] = {s: {} for s in SPLITS}
    for r in training:
        split, value = r["estimator"], r["value"]
        if split in last and r["quantity"] == "acc" and r["layer"] is None and math.isfinite(value):
            seed = r.get("seed")
            if seed not in last[split] or r["epoch"] >= last[split][seed][0]:
                last[split][seed] = (r["epoch"], float(value))
    return {s: {seed: v for seed, (_, v) in d.items()} for s, d in last.items() if d}


def _layer_name(k: int, n_layers: int) -> str:
    return "read-out" if k == n_layers and n_layers > 1 else f"into T{k}"


def _spread_panel(ax: Axes, w: np.ndarray, color, name: str) -> None:
    """Across-member sd of each weight against its mean, with the line sd = |mean|."""
    mean, sd = w.mean(axis=0).ravel(), w.std(axis=0, ddof=1).ravel()
    pick = np.arange(len(mean))
    if len(pick) > MAX_POINTS:
        pick = np.linspace(0, len(mean) - 1, MAX_POINTS).round().astype(int)
    ax.scatter(mean[pick], sd[pick], s=6, color=color, alpha=0.5, lw=0, zorder=2)
    top = max(float(np.abs(mean).max()), float(sd.max()), 1e-12)
    edge = np.array([-top, 0.0, top])
    ax.plot(edge, np.abs(edge), label="sd = |mean|", **reference_style("task_y"))
    wider = float(np.mean(sd > np.abs(mean))) * 100
    out, n_in = w.shape[1:]
    ax.set_title(f"{name} ({out}×{n_in}): sd > |mean| for {wider:.0f} % of weights", fontsize=8)
    ax.set_xlabel("mean over members", fontsize=8)
    ax.grid(alpha=0.3)


def _median(r: np.ndarray) -> str:
    """The median of the correlations that exist (a one-unit layer's have none: its weights do
    not vary within a member)."""
    r = r[np.isfinite(r)]
    return f"{np.median(r):.2f}" if r.size else "undefined"


def _correlation_panel(ax: Axes, raw: np.ndarray, matched: np.ndarray | None, color) -> None:
    """Histogram of the pairwise correlations of the members' weight vectors, as stored (grey
    outline) and with units matched to member 0's (filled)."""
    bins = np.linspace(-1, 1, 41)
    ax.hist(raw, bins=bins, histtype="step", color="0.35", lw=1.2, label="as trained")
    title = f"median r {_median(raw)} as trained"
    if matched is not None:
        ax.hist(matched, bins=bins, color=color, alpha=0.55, label="units matched")
        title += f", {_median(matched)} units matched"
    ax.axvline(0.0, **reference_style("snr_one"))
    ax.set_xlim(-1.02, 1.02)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel("Pearson r between two members' weights", fontsize=8)
    ax.grid(alpha=0.3)


def _accuracy_panel(ax: Axes, accuracy: Mapping[str, Mapping[Any, float]], k: int) -> None:
    """Each member's final accuracy per split, jittered, with mean [min–max] in the title."""
    if not accuracy:
        ax.text(0.5, 0.5, "no accuracies in training.csv", ha="center", va="center",
                transform=ax.transAxes, fontsize=8)  # fmt: skip
        ax.set_axis_off()
        return
    jitter = np.random.default_rng(0)
    words = []
    for i, (split, by_seed) in enumerate(accuracy.items()):
        v = np.array(list(by_seed.values()))
        ax.scatter(i + jitter.uniform(-0.15, 0.15, len(v)), v, s=10, color=f"C{i}", alpha=0.7)
        words.append(f"{split} {v.mean():.3f} [{v.min():.3f}–{v.max():.3f}]")
    ax.set_xticks(range(len(accuracy)), list(accuracy))
    ax.set_xlim(-0.6, len(accuracy) - 0.4)
    ax.set_ylabel("final accuracy", fontsize=8)
    ax.set_title(f"accuracy of the {k} members\n" + "\n".join(words), fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def _pearson_panel(ax: Axes, layers: Sequence[np.ndarray]) -> None:
    """IDNNs' ``plot_pearson``: per layer, |mean over members of the mean correlation between
    its units' incoming weights| × sqrt(units); error bars: sd over members (× sqrt(units))."""
    n = len(layers)
    for k, w in enumerate(layers, start=1):
        c = unit_correlation(w) * math.sqrt(w.shape[1])
        if not np.isfinite(c).any():
            continue
        color = "black" if k == n and n > 1 else layer_color(k)
        sd = float(np.nanstd(c, ddof=1)) if np.isfinite(c).sum() > 1 else 0.0
        ax.bar(k, abs(float(np.nanmean(c))), yerr=sd, color=color, alpha=0.8, capsize=3)
    names = [_layer_name(k, n).replace("into ", "") for k in range(1, n + 1)]
    ax.set_xticks(range(1, n + 1), names, rotation=45, fontsize=7)
    ax.set_ylabel("|mean r between units| × √units", fontsize=8)
    ax.set_title("IDNNs' plot_pearson\n(error bars: sd over members)", fontsize=8)
    ax.grid(alpha=0.3, axis="y")


def final_weights_figure(
    seeds: Sequence[Any],
    layers: Sequence[np.ndarray],
    *,
    accuracy: Mapping[str, Mapping[Any, float]] | None = None,
    odd: bool = False,
) -> Figure:
    """One column per weight layer (into T1, …, the read-out) and a summary column.

    Top: each weight's standard deviation across members against its mean, after matching every
    member's hidden units to member 0's (:func:`infoflow.analysis.align_members`: units are
    interchangeable, so unmatched weights would differ by their numbering alone), with the line
    sd = |mean|: points above it are weights whose sign the members do not agree on. Bottom: the
    histogram of the Pearson correlations between two members' flattened weights, over all pairs
    (:func:`infoflow.analysis.member_correlations`), as stored and with units matched. Summary:
    each member's final accuracy (``accuracy``: ``{split: {seed: value}}``, from
    :func:`final_accuracy`) and IDNNs' ``plot_pearson`` quantity per layer.

    Args:
        seeds: the members' seeds, ``(K,)``.
        layers: per weight layer, ``(K, out, in)`` (hidden layers, then the read-out).
        accuracy: the members' final accuracies per split; None or empty: not drawn.
        odd: the activation is odd (tanh, linear): unit matching may flip a unit's sign.

    Raises:
        ValueError: fewer than 2 members, no layers, or layers whose member counts differ.
    """
    k = len(seeds)
    if k < 2 or not layers:
        raise ValueError(f"need >= 2 members and >= 1 layer, got {k} members, {len(layers)} layers")
    if any(np.shape(w)[0] != k for w in layers):
        shapes = [np.shape(w) for w in layers]
        raise ValueError(f"every layer must hold {k} members (the seeds), got shapes {shapes}")
    matched = align_members(layers, odd=odd)
    n = len(layers)
    fig = new_figure(2.9 * (n + 1) + 0.4, 6.4)
    axes = fig.subplots(2, n + 1, squeeze=False)
    for i, (w, m) in enumerate(zip(layers, matched, strict=True)):
        color = "black" if i == n - 1 and n > 1 else layer_color(i + 1)
        _spread_panel(axes[0, i], m, color, _layer_name(i + 1, n))
        raw, aligned = pairs(member_correlations(w)), pairs(member_correlations(m))
        same = np.allclose(raw, aligned, equal_nan=True)  # nothing to match (a lone layer)
        _correlation_panel(axes[1, i], raw, None if same else aligned, color)
    axes[0, 0].set_ylabel("sd over members", fontsize=8)
    axes[1, 0].set_ylabel("pairs of members", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    axes[1, 0].legend(fontsize=7)
    _accuracy_panel(axes[0, n], accuracy or {}, k)
    _pearson_panel(axes[1, n], layers)
    fig.suptitle(
        f"Final weights of {k} ensemble members: similar accuracy, different weights "
        "(units matched to member 0's where said)",
        fontsize=10,
    )
    return fig
