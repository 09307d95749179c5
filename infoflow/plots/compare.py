"""Figures comparing several runs' representations (``python -m infoflow.plot --compare``).

* :func:`cosine_histograms_figure`: one panel per (layer, run), the histograms of within-class and
  between-class cosine similarities on the same pairs of inputs (Goldfeld et al.'s MNIST figure);
* :func:`similarity_over_training_figure`: per layer, the mean within- and between-class cosine
  similarity against epoch, one colour per run (each run's ``clustering`` records
  ``cos_within_mean``, ``cos_between_mean`` in its information.csv).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from matplotlib.figure import Figure

from infoflow.plots._common import epoch_axis, finite, new_figure, save_figure
from infoflow.plots.data import load_information, wide
from infoflow.records import INFORMATION_FILE

log = logging.getLogger(__name__)

WITHIN_COLOR, BETWEEN_COLOR = "tab:blue", "tab:red"
RUN_CMAP = "Dark2"


class Similarities(Protocol):
    within: np.ndarray
    between: np.ndarray


def _bins(sims: Sequence[Sequence[Similarities]], n: int = 60) -> np.ndarray:
    """Common bin edges for every panel: [min(0, smallest value), 1]."""
    lows = [min(s.within.min(initial=0.0), s.between.min(initial=0.0)) for r in sims for s in r]
    lo = np.floor(min(lows, default=0.0) * 10) / 10
    return np.linspace(lo, 1.0, n + 1)


def cosine_histograms_figure(
    labels: Sequence[str], sims: Sequence[Sequence[Similarities]]
) -> Figure:
    """Rows: hidden layers T1, T2, ...; columns: runs. Each panel: the density of within-class
    (blue) and between-class (red) pairwise cosine similarities, their means as dashed lines."""
    n_layers = max(len(r) for r in sims)
    fig = new_figure(3.0 * len(labels) + 0.6, 2.0 * n_layers + 0.6)
    axes = fig.subplots(n_layers, len(labels), squeeze=False, sharex=True)
    bins = _bins(sims)
    for j, (label, layers) in enumerate(zip(labels, sims, strict=True)):
        for k in range(n_layers):
            ax = axes[k, j]
            if k >= len(layers):
                ax.set_visible(False)
                continue
            for values, color, name in (
                (layers[k].within, WITHIN_COLOR, "within class"),
                (layers[k].between, BETWEEN_COLOR, "between classes"),
            ):
                if len(values):
                    ax.hist(values, bins=bins, density=True, color=color, alpha=0.45, label=name)
                    ax.axvline(float(values.mean()), color=color, ls="--", lw=1)
            ax.set_yticks([])
            if k == 0:
                ax.set_title(label, fontsize=9)
            if j == 0:
                ax.set_ylabel(f"T{k + 1}")
            if k == n_layers - 1:
                ax.set_xlabel("cosine similarity")
    axes[0, 0].legend(fontsize=7, loc="upper left")
    fig.suptitle("Pairwise cosine similarity of hidden representations (same inputs)", fontsize=10)
    return fig


def _cos_column(layer: int, pairs: str) -> str:
    return f"cluster/layer{layer}/cos_{pairs}_mean"


def similarity_over_training_figure(
    labels: Sequence[str], metrics: Sequence[Mapping[str, np.ndarray] | None]
) -> Figure:
    """Per layer, the mean cosine similarity within classes (solid) and between classes (dashed)
    against epoch, one colour per run. Runs without these columns are left out."""
    from matplotlib import colormaps

    layers = sorted(
        {k for m in metrics if m for k in range(1, 64) if _cos_column(k, "within") in m}
    )
    if not layers:
        raise ValueError("no run has clustering records of cos_within_mean in its information.csv")
    fig = new_figure(3.2 * len(layers) + 0.4, 3.4)
    axes = fig.subplots(1, len(layers), squeeze=False, sharey=True)[0]
    colors = colormaps[RUN_CMAP]
    for ax, k in zip(axes, layers, strict=True):
        for i, (label, m) in enumerate(zip(labels, metrics, strict=True)):
            for pairs, style in (("within", "-o"), ("between", "--s")):
                col = _cos_column(k, pairs)
                if not m or col not in m:
                    continue
                y = np.asarray(m[col], dtype=float)
                ok = finite(y)
                name = label if pairs == "within" else "_nolegend_"
                ax.plot(m["epoch"][ok], y[ok], style, color=colors(i % 8), ms=3, lw=1.3, label=name)
        ax.set_title(f"T{k}")
        epoch_axis(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean cosine similarity")
    axes[0].legend(fontsize=7, title="within (solid), between (dashed)", title_fontsize=7)
    return fig


def _clustering_or_none(run: Path) -> Mapping[str, np.ndarray] | None:
    """The run's clustering records by epoch; None (logged) when it has no information.csv."""
    path = run / INFORMATION_FILE
    if not path.exists():
        log.info("%s: no %s: no similarity over training", run, INFORMATION_FILE)
        return None
    return wide(load_information(path), ("clustering",))


def compare_figures(
    out_dir: Path,
    labels: Sequence[str],
    sims: Sequence[Sequence[Similarities]],
    runs: Sequence[Path],
) -> list[Path]:
    """Write ``cosine_histograms.png`` and, where the runs logged them, ``cosine_over_training.png``."""
    written = [
        save_figure(cosine_histograms_figure(labels, sims), out_dir / "cosine_histograms.png")
    ]
    metrics = [_clustering_or_none(r) for r in runs]
    try:
        fig = similarity_over_training_figure(labels, metrics)
    except ValueError as exc:
        log.warning("no cosine_over_training.png: %s (was the clustering callback on?)", exc)
        return written
    written.append(save_figure(fig, out_dir / "cosine_over_training.png"))
    return written
