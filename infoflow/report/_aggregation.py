"""Across seeds: curves per group, and peak, final and compression of I(X;T_ℓ)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from infoflow.report._consistency import group_of
from infoflow.report._reading import Run


def _stats(values: Sequence[float]) -> tuple[int, float, float, float]:
    """(n, mean, std with ddof=1 (NaN for n < 2), median) of the finite values."""
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if not len(arr):
        return 0, math.nan, math.nan, math.nan
    std = float(arr.std(ddof=1)) if len(arr) > 1 else math.nan
    return len(arr), float(arr.mean()), std, float(np.median(arr))


def aggregate(runs: Sequence[Run], keys: Sequence[str]) -> dict[tuple, dict]:
    """``{group values: {(estimator, quantity, layer): Curve}}`` across seeds.

    The seed is each row's (an ensemble run holds several: each member counts as a replicate,
    as in a sweep over seeds). Runs of one group with the same seed (e.g. separate runs per bin
    size, merged for the binned figure) count once: their values are averaged first.
    """
    from infoflow.plots.sweep import Curve

    acc: dict[tuple, dict] = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for run in runs:
        g = group_of(run, keys)
        for r in run.rows:
            seed = run.seed if r.get("seed") is None else str(r["seed"])  # an ensemble's member
            acc[g][(r["estimator"], r["quantity"], r["layer"], r["epoch"])][seed].append(r["value"])
    out: dict[tuple, dict] = {}
    for g, cells in acc.items():
        series: dict[tuple, list] = defaultdict(list)
        for (est, q, layer, epoch), by_seed in cells.items():
            seeds = [float(np.mean(v)) for v in by_seed.values()]
            series[(est, q, layer)].append((epoch, *_stats(seeds)))
        out[g] = {
            key: Curve(*(np.array(col) for col in zip(*sorted(pts), strict=True)))
            for key, pts in series.items()
        }
    return dict(sorted(out.items(), key=lambda kv: _sort_key(kv[0])))


def _number(value: str) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def list_value(value: str | None) -> tuple[float, ...] | None:
    """A list of numbers as an override writes it (``[10,7,5]``, Hydra's form) as a tuple; None
    for anything else.

    >>> list_value("[10,7,5]"), list_value("[]"), list_value("0.1"), list_value("[a]")
    ((10.0, 7.0, 5.0), (), None, None)
    """
    text = str(value or "").strip()
    if not (text.startswith("[") and text.endswith("]")):
        return None
    items = [t.strip() for t in text[1:-1].split(",") if t.strip()]
    numbers = [_number(t) for t in items]
    return None if any(n is None for n in numbers) else tuple(float(n) for n in numbers)


def _sort_key(values: Sequence[str]) -> tuple:
    """Numbers in numeric order, then lists of numbers by length (a depth), then element-wise,
    then anything else as text."""
    key = []
    for v in values:
        if (n := _number(v)) is not None:
            key.append((0, n, (), ""))
        elif (items := list_value(v)) is not None:
            key.append((1, float(len(items)), items, ""))
        else:
            key.append((2, 0.0, (), v))
    return tuple(key)


def main_estimator(runs: Sequence[Run]) -> str | None:
    """``sp`` if any run has its I_XT, else the first noiseless binned estimator, else any."""
    from infoflow.plots.epochs import main_estimator as pick

    return pick([r for run in runs for r in run.rows])


def _seeds(run: Run) -> list:
    """The seeds of a run's rows (several in an ensemble run)."""
    return sorted({r.get("seed") for r in run.rows}, key=str)


def peak_final(run: Run, estimator: str, seed: Any = None) -> dict[int, dict[str, float]]:
    """Per layer: peak and final I(X;T_ℓ) and compression = peak − final (nats), of the rows of
    ``seed`` (None: every row, for a run of one seed)."""
    by_layer: dict[int, dict[int, float]] = defaultdict(dict)
    for r in run.rows:
        if seed is not None and r.get("seed") != seed:
            continue
        if r["estimator"] == estimator and r["quantity"] == "I_XT" and math.isfinite(r["value"]):
            by_layer[r["layer"]][r["epoch"]] = r["value"]
    out = {}
    for layer, points in by_layer.items():
        peak, final = max(points.values()), points[max(points)]
        out[layer] = {"peak": peak, "final": final, "compression": peak - final}
    return out


def compression_table(
    runs: Sequence[Run], keys: Sequence[str], estimator: str
) -> list[dict[str, Any]]:
    """Rows (group values, layer, measure, n, mean, std, median) from the finished runs."""
    acc: dict[tuple, list[float]] = defaultdict(list)
    for run in runs:
        if run.finished:
            seeds = _seeds(run)
            for seed in seeds if len(seeds) > 1 else [None]:
                for layer, measures in peak_final(run, estimator, seed).items():
                    for measure, value in measures.items():
                        acc[(group_of(run, keys), layer, measure)].append(value)
    rows = []
    for (g, layer, measure), values in sorted(acc.items(), key=lambda kv: _sort_key(kv[0][0])):
        n, mean, std, median = _stats(values)
        rows.append(
            {**dict(zip(keys, g, strict=True)), "estimator": estimator, "layer": layer,
             "measure": measure, "n": n, "mean": mean, "std": std, "median": median}
        )  # fmt: skip
    return rows
