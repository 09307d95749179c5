"""Per group of runs: the drift → diffusion transition beside the compression onset and the end of
fitting (:mod:`infoflow.analysis`), and the depth study's table when a list (``model.hidden``) is
swept."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from infoflow.analysis import (
    compression_onsets,
    epoch_stats,
    fitting_epochs,
    median_epoch,
    phase_table,
    snr_transitions,
)
from infoflow.report._aggregation import _sort_key, list_value
from infoflow.report._consistency import group_label, group_of
from infoflow.report._reading import Run

STATS = ("n", "n_seeds", "mean", "median", "min", "max")
PHASE_COLUMNS = ("measure", "layer", *STATS)


def group_rows(runs: Sequence[Run], keys: Sequence[str]) -> dict[tuple, list[dict]]:
    """The information rows of the finished runs, per group (sorted as the report's groups);
    rows keep their seed, so an ensemble's members and separate seed runs both count per seed."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for run in runs:
        if run.finished:
            out[group_of(run, keys)].extend(run.rows)
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def phases_table(
    runs: Sequence[Run], keys: Sequence[str], estimator: str | None
) -> list[dict[str, Any]]:
    """Rows (group values, then :data:`PHASE_COLUMNS`) of :func:`infoflow.analysis.phase_table`
    per group of finished runs."""
    return [
        {**dict(zip(keys, g, strict=True)), **row}
        for g, rows in group_rows(runs, keys).items()
        for row in phase_table(rows, estimator)
    ]


def transition_marks(runs: Sequence[Run], keys: Sequence[str]) -> dict[str, dict[int, float]]:
    """``{group label: {layer: median transition epoch}}`` (finite ones) for the planes."""
    out = {}
    for g, rows in group_rows(runs, keys).items():
        marks = median_epoch(snr_transitions(rows))
        out[group_label(keys, g)] = {k: e for k, e in marks.items() if e != float("inf")}
    return out


def depth_key(runs: Sequence[Run], keys: Sequence[str]) -> str | None:
    """The first swept key whose every run's value is a list of numbers (``model.hidden``)."""
    for key in keys:
        values = [run.overrides.get(key) for run in runs]
        if values and all(list_value(v) is not None for v in values):
            return key
    return None


def depth_label(widths: Sequence[float]) -> str:
    """``1 hidden layer: [10]``, ``3 hidden layers: [10, 7, 5]``."""
    n = len(widths)
    plural = "" if n == 1 else "s"
    return f"{n} hidden layer{plural}: [{', '.join(f'{w:g}' for w in widths)}]"


DEPTH_COLUMNS = ("depth", "layer", "name", "units", "measure", *STATS)


def depth_table(
    runs: Sequence[Run], keys: Sequence[str], key: str, estimator: str | None
) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the depth study: per group (one depth, the other swept keys) and layer,
    across seeds (:class:`infoflow.analysis.EpochStats`):

    * ``fitting``: the epoch from which the **last** hidden layer's I(T;Y) stays at or above 95 %
      of its final value (one row per depth);
    * ``compression_onset``: per hidden layer (:func:`infoflow.analysis.compression_onsets`);
    * ``snr_transition``: per weight layer, the read-out last (``name`` ``read-out``).

    ``units``: the layer's width from the swept list (empty for the read-out).
    """
    columns = [*keys, *DEPTH_COLUMNS]
    out = []
    for g, rows in group_rows(runs, keys).items():
        widths = list_value(dict(zip(keys, g, strict=True))[key]) or ()
        depth = len(widths)
        parts = [("snr_transition", snr_transitions(rows))]
        if estimator is not None:
            fits = [f for f in fitting_epochs(rows, estimator) if f.layer == depth]
            parts = [("fitting", fits), ("compression_onset", compression_onsets(rows, estimator)),
                     *parts]  # fmt: skip
        for measure, events in parts:
            for st in epoch_stats(events):
                hidden = st.layer <= depth
                name = f"T{st.layer}" if hidden else "read-out"
                units = f"{widths[st.layer - 1]:g}" if hidden else ""
                stats = [getattr(st, c) for c in STATS]
                out.append([*g, depth, st.layer, name, units, measure, *stats])
    return columns, out


def depth_groups(
    curves: Mapping[tuple, Mapping], keys: Sequence[str], key: str
) -> tuple[dict[str, Mapping], dict[str, str]]:
    """The groups' curves titled by depth (:func:`depth_label`, other swept keys after it), in
    the report's order (by depth), and ``{report label: depth title}``."""
    titled, rename = {}, {}
    for g, c in curves.items():
        values = dict(zip(keys, g, strict=True))
        others = [k for k in keys if k != key]
        title = depth_label(list_value(values[key]) or ())
        if others:
            title += f" ({group_label(others, [values[k] for k in others])})"
        titled[title] = c
        rename[group_label(keys, g)] = title
    return titled, rename
