"""The report's tables, each written whole and atomically."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from infoflow.records import RECORD_COLUMNS, write_csv_atomic
from infoflow.report._consistency import group_of
from infoflow.report._reading import SEED, Run


def id_columns(swept: Sequence[str]) -> list[str]:
    """``run``, the swept keys, and ``seed`` (also when it is not swept)."""
    return ["run", *swept, *([] if SEED in swept else [SEED])]


def _ids(run: Run, swept: Sequence[str]) -> list[str]:
    return [run.name, *group_of(run, swept), *([] if SEED in swept else [run.seed])]


def write_sweep_csv(path: Path, runs: Sequence[Run], swept: Sequence[str]) -> Path:
    """Every run's information rows (:data:`~infoflow.records.RECORD_COLUMNS`, the row's own
    seed) with ``run`` and the swept keys but the seed prepended."""
    keys = [k for k in swept if k != SEED]
    rows = (
        [run.name, *group_of(run, keys), *(r[c] for c in RECORD_COLUMNS)]
        for run in runs
        for r in run.rows
    )
    return write_csv_atomic(path, ["run", *keys, *RECORD_COLUMNS], rows)


FINAL_METRICS = ("train/loss", "train/acc", "val/loss", "val/acc")


def _final(training: Sequence[Mapping], name: str) -> float | None:
    """The value of ``<split>/<quantity>`` at the last epoch that has one (training.csv)."""
    split, quantity = name.split("/", 1)
    values = [
        (r["epoch"], r["value"])
        for r in training
        if r["estimator"] == split and r["quantity"] == quantity and math.isfinite(r["value"])
    ]
    return max(values)[1] if values else None


def write_runs_csv(path: Path, runs: Sequence[Run], swept: Sequence[str]) -> Path:
    columns = [*id_columns(swept), "status", "last_epoch", "max_epochs", *FINAL_METRICS, "error"]
    rows = [
        [*_ids(run, swept), run.status, run.last_epoch,
         (run.config.get("trainer") or {}).get("max_epochs"),
         *(_final(run.training, c) for c in FINAL_METRICS), run.error]
        for run in runs
    ]  # fmt: skip
    return write_csv_atomic(path, columns, rows)


def write_curves_csv(path: Path, curves: Mapping[tuple, Mapping], keys: Sequence[str]) -> Path:
    columns = [*keys, "estimator", "quantity", "layer", "epoch", "n", "mean", "std", "median"]
    rows = []
    for g, by_key in curves.items():
        for (est, q, layer), c in sorted(by_key.items()):
            for i, epoch in enumerate(c.epoch):
                rows.append(
                    [*g, est, q, layer, int(epoch), int(c.n[i]), c.mean[i], c.std[i], c.median[i]]
                )
    return write_csv_atomic(path, columns, rows)
