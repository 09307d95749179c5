"""Information and loss against epoch; binned entropy beside the SP estimate."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from infoflow.analysis import typical_stderr
from infoflow.plots._common import (
    coincide_tolerance,
    coinciding,
    draw_ceiling_vs_epoch,
    draw_seeds,
    ensure_span,
    epoch_axis,
    finite,
    info_label,
    layer_color,
    new_figure,
    noise_span,
    reference_style,
    spread_note,
    unit_factor,
)
from infoflow.plots.data import CEILED, bin_size, ceilings, estimators_with, members, spread
from infoflow.records import preferred_estimator

LOSS_COLUMNS = (
    ("train", "loss", "train (noise off)", "-"),
    ("train", "loss_noisy", "train (noise on)", ":"),
    ("val", "loss", "validation", "--"),
)
#: Ceiling labels on the I-vs-epoch panels (``ceiling`` rows; :mod:`infoflow.plots.plane`).
CEILING_LABELS = {"I_XT": "H(X) of the inputs measured", "I_TY": "H(Y) of the inputs measured"}


def main_estimator(rows: Sequence[Mapping]) -> str | None:
    """The estimator of the information-vs-epoch figure: ``sp`` if it has I_XT rows, else the
    first noiseless binned one, else the first noisy binned one, else the first with I_XT rows
    (e.g. ``kde_upper``), else None."""
    return preferred_estimator(estimators_with(rows, "I_XT"))


def _n_seeds(*groups: Mapping) -> int:
    return max((len(by_seed) for g in groups for by_seed in g.values()), default=1)


def _info_panel(
    ax: Axes, data: Mapping, f: float, refs: Sequence[tuple], stderr: float = math.nan
) -> None:
    """One line (± band) per layer and the reference lines ``(epochs or None, values, label,
    always, style)``: a reference with epochs is a ceiling recorded per epoch; one without is a
    constant drawn only where it lies within the data's range (a floor such as H(Y) on the
    I(X;T) panel) unless ``always``. References are drawn above the curves; earlier layers wider,
    so a layer under another stays visible, and layers that coincide throughout are said to
    (``T1 = T2``, ``at the ceiling`` where they end on it). The y span is at least
    :func:`noise_span` of ``stderr`` (the values' typical standard error, nats)."""
    layers = list(data)
    for rank, k in enumerate(layers):
        wide = (len(layers) - 1 - rank) / max(1, len(layers) - 1)
        draw_seeds(ax, data[k], f, layer_color(k), f"T{k}", lw=1.2 + 1.4 * wide)
    lo, hi = ax.get_ylim()  # the data's range
    ceiling = None
    for epochs, value, label, always, style in refs:
        if epochs is not None:
            draw_ceiling_vs_epoch(ax, epochs, value, f, label, reference_style(style))
            ceiling = float(np.nanmax(value)) * f
        elif always or lo <= value * f <= hi:
            ax.axhline(value * f, label=label, **reference_style(style))
            ceiling = value * f if always else ceiling
    ensure_span(ax, noise_span(stderr) * f)
    _say_coinciding(ax, data, f, coincide_tolerance(stderr) * f, ceiling)
    ax.legend(fontsize=7, ncol=2, loc="best")
    ax.grid(alpha=0.3)


def _say_coinciding(ax: Axes, data: Mapping, f: float, tol: float, ceiling: float | None) -> None:
    """``T1 = T2`` (``at the ceiling``) at the last point of layers whose mean curves agree within
    ``tol`` at every epoch: the later layer's line hides the earlier one's."""
    curves = {k: spread(by_seed) for k, by_seed in data.items()}
    if len(curves) < 2:
        return
    epochs = sorted(set.intersection(*(set(c.epoch.tolist()) for c in curves.values())))
    if not epochs:
        return
    points = {k: tuple(c.mean[np.searchsorted(c.epoch, epochs)] * f) for k, c in curves.items()}
    for group in coinciding(points, (tol,) * len(epochs)):
        if len(group) < 2:
            continue
        y = points[group[0]][-1]
        text = " = ".join(f"T{k}" for k in group)
        if ceiling is not None and abs(y - ceiling) <= tol:
            text += " at the ceiling"
        ax.annotate(text, (epochs[-1], y), xytext=(-4, -12), textcoords="offset points",
                    ha="right", fontsize=8, fontweight="bold", color=layer_color(group[0]),
                    zorder=6)  # fmt: skip


def _loss_panel(ax: Axes, training: Sequence[Mapping]) -> None:
    for i, (split, q, label, ls) in enumerate(LOSS_COLUMNS):
        by_seed = members(training, split, q).get(None)
        if by_seed and any(finite(s.value).any() for s in by_seed.values()):
            color = f"C{i}"
            draw_seeds(ax, by_seed, 1.0, color, label, ls=ls, band=len(by_seed) > 1)
    ax.set_ylabel("cross-entropy loss [nats]")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def has_loss(training: Sequence[Mapping] | None) -> bool:
    """Whether ``training`` (record rows of training.csv) holds any loss with a value."""
    wanted = {(split, q) for split, q, _, _ in LOSS_COLUMNS}
    return any(
        (r["estimator"], r["quantity"]) in wanted and math.isfinite(r["value"])
        for r in training or ()
    )


def information_vs_epoch_figure(
    rows: Sequence[Mapping] | None,
    training: Sequence[Mapping] | None = None,
    *,
    units: str = "bits",
    estimator: str | None = None,
    h_x: float | None = None,
    i_xy: float | None = None,
) -> Figure:
    """I(X;T_ℓ), I(T_ℓ;Y) and the loss against epoch (panels for what exists).

    ``estimator`` defaults to :func:`main_estimator` (SP, with ± stderr bands, else binned).
    Epochs are on a symlog axis (linear on [0, 1], log beyond) so epoch 0 is shown.
    Reference lines: the ceilings of the ``ceiling`` rows (SP: the entropy and H(Y) of the inputs
    measured, per epoch) where there are such rows, else ``h_x`` / ``i_xy`` (nats); and, on the
    I(X;T) panel, H(Y) where the data come near it (the I(X;T) of a representation that keeps only
    the label: Goldfeld et al.'s single neuron falls from ln 4 toward it).
    The loss panel (train, train with noise, validation) comes from ``training``, the record rows
    of training.csv. With several seeds every line is the mean across seeds, ± sd, members faint.
    """
    f = unit_factor(units)
    rows = rows or []
    estimator = estimator or main_estimator(rows)
    measured = ceilings(rows) if estimator in CEILED else {}
    y_ceiling = measured["I_TY"].value if "I_TY" in measured else None
    h_y = float(np.nanmax(y_ceiling)) if y_ceiling is not None and finite(y_ceiling).any() else i_xy
    panels = []
    if estimator is not None:
        for q, sym, ref, ref_label in (
            ("I_XT", "I(X;T)", h_x, "H(X)"),
            ("I_TY", "I(T;Y)", i_xy, "I(X;Y)"),
        ):
            data = {k: v for k, v in members(rows, estimator, q).items() if k is not None}
            if not data:
                continue
            if q in measured:
                kind = "measured_x" if q == "I_XT" else "measured_y"
                refs = [(measured[q].epoch, measured[q].value, CEILING_LABELS[q], True, kind)]
            else:
                kind = "task_x" if q == "I_XT" else "task_y"
                refs = [] if ref is None else [(None, ref, ref_label, True, kind)]
            if q == "I_XT" and h_y is not None:
                refs.append((None, h_y, "H(Y): I(X;T) of the label alone", False, "label_y"))
            panels.append(("info", data, sym, (refs, typical_stderr(rows, estimator, q))))
    if has_loss(training):
        panels.append(("loss", None, None, None))
    if not panels:
        raise ValueError("nothing to draw: no information rows and no loss in training")
    n_seeds = _n_seeds(*(p[1] for p in panels if p[0] == "info"))
    fig = new_figure(7.0, 2.6 * len(panels) + 0.4)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (kind, data, sym, extra) in zip(axes, panels, strict=True):
        if kind == "info":
            _info_panel(ax, data, f, *extra)
            ax.set_ylabel(info_label(sym, units))
        else:
            _loss_panel(ax, training)
        epoch_axis(ax, label=ax is axes[-1])
    if estimator is not None and panels[0][0] == "info":
        note = spread_note(n_seeds)
        axes[0].set_title(
            f"Information against epoch — {estimator}" + (f"\n({note})" if note else "")
        )
    return fig


def binned_estimators(rows: Sequence[Mapping]) -> list[str]:
    """Binned estimators with H_T rows: noiseless first, each group sorted by bin size."""
    have = [e for e in estimators_with(rows, "H_T") if e.startswith("bin")]
    return sorted(have, key=lambda e: (e.startswith("bin_noisy:"), e.split(":")[1:2], bin_size(e)))


def binned_vs_epoch_figure(
    rows: Sequence[Mapping],
    *,
    units: str = "bits",
    reference: str = "sp",
    h_x: float | None = None,
) -> Figure:
    """One column per layer: ``reference``'s I(X;T_ℓ) (SP, ± stderr band) on top when present,
    H(Bin T_ℓ) for every bin size below, against epoch.

    Each row shares its y axis, so layers compare at a glance.
    Goldfeld et al. (2019) show that the binned entropy with a bin size about 10β tracks the
    clustering of the noisy representations. The two are on separate axes because they are
    measured on different inputs with different ceilings: SP on the inputs it draws (its ceiling
    from the ``ceiling`` rows, e.g. ln 512), the binning on every evaluation input (its ceiling
    ``h_x``, e.g. ln 4096 for SZT). Noiseless binnings are solid, noisy ones dashed. With several
    seeds every line is the mean across seeds (± sd band for SP), members faint.
    """
    f = unit_factor(units)
    ests = binned_estimators(rows)
    if not ests:
        raise ValueError("no binned H_T rows to draw")
    data = {e: members(rows, e, "H_T") for e in ests}
    ref = {k: v for k, v in members(rows, reference, "I_XT").items() if k is not None}
    layers = sorted({k for d in data.values() for k in d if k is not None} | set(ref))
    measured = ceilings(rows) if reference in CEILED else {}
    n_rows = 2 if ref else 1
    fig = new_figure(max(8.0, 2.9 * len(layers) + 0.6), 2.8 * n_rows + 1.1)
    axes = fig.subplots(n_rows, len(layers), squeeze=False, sharex=True, sharey="row")
    cmap = colormaps["plasma"]
    n_seeds = _n_seeds(ref, *data.values())
    for col, k in enumerate(layers):
        top, bottom = axes[0, col], axes[-1, col]
        if ref:
            if k in ref:
                draw_seeds(top, ref[k], f, "black", f"I(X;T), {reference}")
            if "I_XT" in measured:
                draw_ceiling_vs_epoch(top, measured["I_XT"].epoch, measured["I_XT"].value, f,
                                      f"H(X) of the inputs {reference} measured")  # fmt: skip
            top.set_title(f"layer T{k}")
            epoch_axis(top, label=False)
            top.grid(alpha=0.3)
        for i, e in enumerate(ests):
            if k in data[e]:
                ls = "--" if e.startswith("bin_noisy:") else "-"
                color = cmap(0.85 * i / max(1, len(ests) - 1))
                draw_seeds(
                    bottom, data[e][k], f, color, f"H(Bin T), {e}", ls=ls, lw=1.2, band=False
                )
        if h_x is not None:
            bottom.axhline(h_x * f, label="H(X) of the evaluation inputs",
                           **reference_style("task_x"))  # fmt: skip
        if not ref:
            bottom.set_title(f"layer T{k}")
        epoch_axis(bottom)
        bottom.grid(alpha=0.3)
    if ref:
        ensure_span(axes[0, 0], noise_span(typical_stderr(rows, reference, "I_XT")) * f)
        axes[0, 0].set_ylabel(info_label(f"I(X;T), {reference}", units))
    ensure_span(axes[-1, 0], noise_span(math.nan) * f)  # binned: no standard error
    axes[-1, 0].set_ylabel(info_label("H(Bin T), evaluation inputs", units))
    legend: dict = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(lab, h)
    labels = list(legend)
    fig.legend(
        list(legend.values()),
        labels,
        loc="outside lower center",
        ncol=min(3, len(labels)),
        fontsize=7,
    )
    note = spread_note(n_seeds)
    title = "Binned entropy per layer"
    if ref:
        title = (
            f"{reference.upper()} I(X;T) on the inputs it measured (top) and binned entropy of "
            "every evaluation input (bottom)"
        )
    fig.suptitle(title + (f"\n({note})" if note else ""), fontsize=10)
    return fig
