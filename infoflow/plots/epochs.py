"""Information and loss against epoch; binned entropy beside the SP estimate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infoflow.plots._common import (
    epoch_axis,
    finite,
    grid_shape,
    info_label,
    layer_color,
    new_figure,
    unit_factor,
)
from infoflow.plots.data import Series, bin_size, estimators_with, series

LOSS_COLUMNS = (
    ("train/loss", "train (noise off)", "-"),
    ("train/loss_noisy", "train (noise on)", ":"),
    ("val/loss", "validation", "--"),
)


def main_estimator(rows: Sequence[Mapping]) -> str | None:
    """The estimator of the information-vs-epoch figure: ``sp`` if it has I_XT rows, else the
    first noiseless binned one, else the first noisy binned one, else the first with I_XT rows
    (e.g. ``kde_upper``), else None."""
    have = estimators_with(rows, "I_XT")
    for pick in (
        [e for e in have if e == "sp"],
        [e for e in have if e.startswith("bin:")],
        [e for e in have if e.startswith("bin")],
        have,
    ):
        if pick:
            return pick[0]
    return None


def _band(ax: Axes, s: Series, f: float, color, label: str) -> None:
    """Line of ``s`` (scaled by ``f``) with a ± stderr band where stderr is finite."""
    ax.plot(s.epoch, s.value * f, "-", color=color, lw=1.4, label=label)
    ok = finite(s.stderr) & finite(s.value)
    if ok.any():
        lo, hi = (s.value - s.stderr) * f, (s.value + s.stderr) * f
        ax.fill_between(s.epoch, lo, hi, where=ok, color=color, alpha=0.25, lw=0)


def _info_panel(ax: Axes, data: dict[int, Series], f: float, ref: float | None, ref_label: str):
    for k, s in data.items():
        _band(ax, s, f, layer_color(k), f"T{k}")
    if ref is not None:
        ax.axhline(ref * f, color="grey", ls="--", lw=1, label=ref_label)
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.grid(alpha=0.3)


def _loss_panel(ax: Axes, metrics: Mapping[str, np.ndarray]) -> None:
    epoch = metrics["epoch"]
    for col, label, ls in LOSS_COLUMNS:
        if col in metrics and finite(metrics[col]).any():
            ok = finite(metrics[col])
            ax.plot(epoch[ok], metrics[col][ok], ls, lw=1.4, label=label)
    ax.set_ylabel("cross-entropy loss [nats]")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def has_loss(metrics: Mapping[str, np.ndarray] | None) -> bool:
    """Whether ``metrics`` holds any loss column with a value."""
    return bool(metrics) and any(
        c in metrics and finite(metrics[c]).any() for c, _, _ in LOSS_COLUMNS
    )


def information_vs_epoch_figure(
    rows: Sequence[Mapping] | None,
    metrics: Mapping[str, np.ndarray] | None = None,
    *,
    units: str = "bits",
    estimator: str | None = None,
    h_x: float | None = None,
    i_xy: float | None = None,
) -> Figure:
    """I(X;T_ℓ), I(T_ℓ;Y) and the loss against epoch (panels for what exists).

    ``estimator`` defaults to :func:`main_estimator` (SP, with ± stderr bands, else binned).
    Epochs are on a symlog axis (linear on [0, 1], log beyond) so epoch 0 is shown.
    ``h_x`` / ``i_xy`` (nats) add reference lines to the I(X;T) / I(T;Y) panels.
    The loss panel (train, train with noise, validation) comes from merged ``metrics``.
    """
    f = unit_factor(units)
    rows = rows or []
    estimator = estimator or main_estimator(rows)
    panels = []
    if estimator is not None:
        for q, sym, ref, ref_label in (
            ("I_XT", "I(X;T)", h_x, "H(X)"),
            ("I_TY", "I(T;Y)", i_xy, "I(X;Y)"),
        ):
            data = series(rows, estimator, q)
            if data:
                panels.append(("info", data, sym, ref, ref_label))
    if has_loss(metrics):
        panels.append(("loss", None, None, None, None))
    if not panels:
        raise ValueError("nothing to draw: no information rows and no loss in metrics")
    fig = new_figure(7.0, 2.6 * len(panels) + 0.4)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (kind, data, sym, ref, ref_label) in zip(axes, panels, strict=True):
        if kind == "info":
            _info_panel(ax, data, f, ref, ref_label)
            ax.set_ylabel(info_label(sym, units))
        else:
            _loss_panel(ax, metrics)
        epoch_axis(ax, label=ax is axes[-1])
    if estimator is not None and panels[0][0] == "info":
        axes[0].set_title(f"Information against epoch — {estimator}")
    return fig


def binned_estimators(rows: Sequence[Mapping]) -> list[str]:
    """Binned estimators with H_T rows: noiseless first, each group sorted by bin size."""
    have = [e for e in estimators_with(rows, "H_T") if e.startswith("bin")]
    return sorted(have, key=lambda e: (e.startswith("bin_noisy:"), e.split(":")[1:2], bin_size(e)))


def binned_vs_epoch_figure(
    rows: Sequence[Mapping], *, units: str = "bits", reference: str = "sp"
) -> Figure:
    """H(Bin T_ℓ) for every bin size against epoch, one panel per layer, beside ``reference``'s
    I(X;T_ℓ) (SP, with ± stderr band) when present.

    Goldfeld et al. (2019) show that the binned entropy with a bin size about 10β tracks the
    clustering of the noisy representations. Noiseless binnings are solid, noisy ones dashed.
    """
    f = unit_factor(units)
    ests = binned_estimators(rows)
    if not ests:
        raise ValueError("no binned H_T rows to draw")
    data = {e: series(rows, e, "H_T") for e in ests}
    ref = series(rows, reference, "I_XT")
    layers = sorted(set().union(*data.values()) | set(ref))
    n_rows, n_cols = grid_shape(len(layers))
    fig = new_figure(4.2 * n_cols, 3.2 * n_rows + 0.5)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    cmap = colormaps["plasma"]
    for ax, k in zip(axes, layers, strict=False):
        if k in ref:
            _band(ax, ref[k], f, "black", f"I(X;T) {reference}")
        for i, e in enumerate(ests):
            if k in data[e]:
                s = data[e][k]
                ls = "--" if e.startswith("bin_noisy:") else "-"
                color = cmap(0.85 * i / max(1, len(ests) - 1))
                ax.plot(s.epoch, s.value * f, ls, color=color, lw=1.2, label=f"H(Bin T) {e}")
        ax.set_title(f"layer T{k}")
        ax.set_ylabel(info_label("H(Bin T), I(X;T)", units))
        ax.grid(alpha=0.3)
        epoch_axis(ax)
    for ax in axes[len(layers) :]:
        ax.set_visible(False)
    legend: dict = {}
    for ax in axes[: len(layers)]:
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    labels = list(legend)
    fig.legend(
        list(legend.values()),
        labels,
        loc="outside lower center",
        ncol=min(4, len(labels)),
        fontsize=7,
    )
    return fig
