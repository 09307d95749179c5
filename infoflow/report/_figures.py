"""The sweep's figures (:mod:`infoflow.plots.sweep`) from the aggregated records."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infoflow.report._aggregation import _number, aggregate
from infoflow.report._consistency import group_keys, group_label
from infoflow.report._phases import depth_groups, depth_key, transition_marks
from infoflow.report._reading import Run

log = logging.getLogger(__name__)


def _labelled(curves: Mapping[tuple, Mapping], keys: Sequence[str]) -> dict[str, Mapping]:
    return {group_label(keys, g): c for g, c in curves.items()}


def _dependence_points(table: Sequence[Mapping], keys: Sequence[str]) -> tuple[str, dict] | None:
    """(x key, {label of the other keys: points}): x is the first swept key that is a number."""
    from infoflow.plots.sweep import Dependence

    numeric = [k for k in keys if table and all(_number(r[k]) is not None for r in table)]
    if not numeric:
        return None
    x_key, others = numeric[0], [k for k in keys if k != numeric[0]]
    points: dict[str, list] = defaultdict(list)
    for r in table:
        label = group_label(others, [r[k] for k in others]) if others else ""
        points[label].append(
            Dependence(float(r[x_key]), r["layer"], r["measure"], r["n"], r["mean"], r["std"])
        )
    return x_key, dict(points)


def _references(runs: Sequence[Run]) -> dict[str, Any]:
    """The task's H(X), I(X;Y) (SZT: exact) and the first run's optimal IB curve, for the plane:
    what the runs' own figures draw where the records hold no ceiling rows."""
    from infoflow.plots.data import PlotInputError, is_szt, load_ib_curve, szt_references
    from infoflow.records import IB_CURVE_FILE

    refs: dict[str, Any] = {}
    if runs and is_szt(runs[0].config):
        refs["h_x"], refs["i_xy"] = szt_references()
    for run in runs:
        path = Path(run.path) / IB_CURVE_FILE
        if path.exists():
            try:
                refs["ib_curve"] = load_ib_curve(path)
            except PlotInputError as exc:  # an overlay: its absence costs only the line
                log.warning("no IB curve on the sweep's plane: %s", exc)
            break
    return refs


def draw_figures(
    out: Path,
    runs: Sequence[Run],
    swept: Sequence[str],
    estimator: str | None,
    table: Sequence[Mapping],
    units: str,
) -> list[Path]:
    """Every sweep figure there is data for, into ``out``; a figure that fails is logged.

    Figures: ``information_vs_epoch_<estimator>.png``, ``information_plane_<estimator>.png`` (its
    layers' drift → diffusion transitions ringed), ``dependence_<key>.png``, ``binned_vs_epoch.png``
    and, where a list of widths (``model.hidden``) is swept, ``depth_planes.png``: the paper's
    figure of one information plane per depth, the mean over seeds per layer.
    """
    from infoflow.analysis import typical_stderr
    from infoflow.plots import plane_filename, save_figure
    from infoflow.plots import sweep as figs

    keys = group_keys(swept)
    by_group = aggregate(runs, keys)
    curves = _labelled(by_group, keys)
    bin_keys = [k for k in keys if not k.startswith("callbacks.binned.")]  # bin sizes side by side
    rows = [r for run in runs for r in run.rows]
    jobs: list[tuple[str, Any]] = []
    if estimator is not None:
        se = (typical_stderr(rows, estimator, "I_XT"), typical_stderr(rows, estimator, "I_TY"))
        marks = transition_marks(runs, keys)
        stem = plane_filename(estimator).removeprefix("information_plane_")
        jobs.append(
            (f"information_vs_epoch_{stem}",
             lambda: figs.sweep_information_figure(curves, estimator, units=units, stderr=se[0]))
        )  # fmt: skip
        refs = _references(runs)
        jobs.append(
            (plane_filename(estimator),
             lambda: figs.sweep_plane_figure(curves, estimator, units=units, stderr=se,
                                             transitions=marks, **refs))
        )  # fmt: skip
        key = depth_key(runs, keys)
        if key is not None:
            titled, rename = depth_groups(by_group, keys, key)
            depth_marks = {rename[label]: m for label, m in marks.items() if label in rename}
            title = (f"Mean trajectories by depth — {estimator} (mean over seeds per layer; "
                     "green: gradient SNR < 1 from there on)")  # fmt: skip
            jobs.append(
                ("depth_planes.png",
                 lambda: figs.sweep_plane_figure(titled, estimator, units=units, stderr=se,
                                                 transitions=depth_marks, errorbars=False,
                                                 title=title, **refs))
            )  # fmt: skip
    dep = _dependence_points(table, keys)
    if dep is not None and estimator is not None:
        se_xt = typical_stderr(rows, estimator, "I_XT")
        jobs.append(
            (f"dependence_{dep[0]}.png",
             lambda: figs.dependence_figure(dep[1], dep[0], estimator, units=units, stderr=se_xt))
        )  # fmt: skip
    if any(r["estimator"].startswith("bin") and r["quantity"] == "H_T" for r in rows):
        binned = _labelled(aggregate(runs, bin_keys), bin_keys)
        jobs.append(("binned_vs_epoch.png", lambda: figs.sweep_binned_figure(binned, units=units)))
    written = []
    for name, build in jobs:
        try:
            written.append(save_figure(build(), out / name))
        except Exception as exc:  # one figure's problem must not cost the others
            log.warning("could not draw %s: %s: %s", name, type(exc).__name__, exc)
    return written
