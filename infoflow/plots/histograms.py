"""Per-layer activation histograms across epochs, as heatmaps."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from infoflow.plots._common import new_figure

HIST_CMAP = "magma"


def _by_layer(
    rows: Sequence[Mapping], representation: str
) -> tuple[dict[int, dict[int, tuple[np.ndarray, np.ndarray]]], list]:
    """``{layer: {epoch: (edges (m+1,), counts (m,))}}`` for one representation, and the seeds
    drawn: the counts of every seed summed where all seeds share the bins of a layer and epoch,
    else only the first seed's histograms (both said in the title)."""
    raw: dict[int, dict[int, dict]] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for r in rows:
        if r["representation"] == representation:
            cell = raw[int(r["layer"])][int(r["epoch"])][r.get("seed")]
            cell.append((r["bin_lo"], r["bin_hi"], r["count"]))
    seeds = sorted({s for h in raw.values() for e in h.values() for s in e}, key=str)
    hists: dict[int, dict[int, dict]] = {}
    shared = True
    for layer in sorted(raw):
        hists[layer] = {}
        for epoch in sorted(raw[layer]):
            per_seed = {}
            for seed, bins in raw[layer][epoch].items():
                b = np.array(sorted(bins), dtype=float)
                per_seed[seed] = (np.r_[b[:, 0], b[-1, 1]], b[:, 2])
            edges = [e for e, _ in per_seed.values()]
            shared &= all(len(e) == len(edges[0]) and np.allclose(e, edges[0]) for e in edges)
            hists[layer][epoch] = per_seed
    if not shared:  # bins differ between seeds: one seed, not a sum of unlike bins
        seeds = seeds[:1]
    out = {
        layer: {
            epoch: (
                next(e for s, (e, _) in per_seed.items() if s in seeds),
                np.sum([c for s, (_, c) in per_seed.items() if s in seeds], axis=0),
            )
            for epoch, per_seed in by_epoch.items()
            if any(s in per_seed for s in seeds)
        }
        for layer, by_epoch in hists.items()
    }
    return out, seeds


def _column_mesh(hists: dict[int, tuple[np.ndarray, np.ndarray]]):
    """One (x edges, y edges, counts) mesh if every epoch has the same bins, else None."""
    edges = [e for e, _ in hists.values()]
    if all(len(e) == len(edges[0]) and np.allclose(e, edges[0]) for e in edges):
        counts = np.stack([c for _, c in hists.values()], axis=1)  # (bins, epochs)
        return np.arange(len(hists) + 1) - 0.5, edges[0], counts
    return None


def _epoch_ticks(ax, epochs: list[int], max_ticks: int = 40) -> None:
    """Every scheduled epoch labelled (up to ``max_ticks``; then evenly chosen ones), turned
    upright when there are many."""
    idx = np.unique(
        np.linspace(0, len(epochs) - 1, min(max_ticks, len(epochs))).round().astype(int)
    )
    many = len(idx) > 14
    ax.set_xticks(idx, [str(epochs[i]) for i in idx], rotation=90 if many else 0,
                  fontsize=7 if many else 8)  # fmt: skip


def histograms_figure(rows: Sequence[Mapping], *, representation: str = "noiseless") -> Figure:
    """One heatmap per hidden layer: x = scheduled epoch (by index, labelled with the epoch),
    y = activation value, colour = count on a log scale (empty bins left blank).

    Rows follow ``records.HISTOGRAM_COLUMNS`` (typed: see :mod:`infoflow.plots.data`); the bins
    may differ between epochs (each epoch's column is then drawn with its own edges).
    """
    data, seeds = _by_layer(rows, representation)
    if not data:
        raise ValueError(f"no {representation} histogram rows")
    top = max(float(c.max()) for h in data.values() for _, c in h.values())
    norm = LogNorm(vmin=1.0, vmax=max(top, 2.0))
    fig = new_figure(7.5, 1.9 * len(data) + 0.8)
    axes = fig.subplots(len(data), 1, squeeze=False)[:, 0]
    for ax, (layer, hists) in zip(axes, data.items(), strict=True):
        mesh = _column_mesh(hists)
        if mesh is not None:
            x, y, c = mesh
            ax.pcolormesh(x, y, np.ma.masked_less(c, 1), cmap=HIST_CMAP, norm=norm)
        else:
            for i, (edges, counts) in enumerate(hists.values()):
                c = np.ma.masked_less(counts[:, None], 1)
                ax.pcolormesh([i - 0.5, i + 0.5], edges, c, cmap=HIST_CMAP, norm=norm)
        ax.set_xlim(-0.5, len(hists) - 0.5)
        _epoch_ticks(ax, list(hists))
        ax.set_ylabel(f"T{layer} activation")
        ax.set_facecolor("white")
    axes[-1].set_xlabel("epoch (scheduled epochs, evenly spaced)")
    which = f"{len(seeds)} seeds, counts summed" if len(seeds) > 1 else ""
    n_all = len({r.get("seed") for r in rows})
    if len(seeds) == 1 and n_all > 1:
        which = f"seed {seeds[0]} of {n_all}: their bins differ"
    axes[0].set_title(
        f"Activation histograms ({representation}" + (f"; {which})" if which else ")")
    )
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=HIST_CMAP),
        ax=list(axes),
        label="count [activation values per bin]",
    )
    return fig
