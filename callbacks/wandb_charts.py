"""What W&B gets beyond the metrics Lightning logs: the figures as they are redrawn, and at the end
the information tables and charts and the run summary (final accuracy, final and peak I(X;T_ℓ)).

The payloads are built by pure functions of the tidy records (:func:`plane_rows`,
:func:`information_charts`, :func:`infoflow.summary.wandb_summary`), so they are tested without a
W&B run; the callback only hands them to each W&B logger's run.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from infoflow.callbacks.schedule import resolve_output_dir
from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, RecordError, read_records
from infoflow.summary import pick_estimator, read_summary, wandb_summary

log = logging.getLogger(__name__)


def _wandb_loggers(trainer: pl.Trainer) -> list:
    return [lg for lg in trainer.loggers if isinstance(lg, pl.loggers.WandbLogger)]


PLANE_COLUMNS = ("layer", "epoch", "I_XT", "I_TY")
#: W&B truncates a table beyond this many rows (an ensemble of 50 over 8000 epochs writes 300,000).
TABLE_MAX_ROWS = 200_000


def plane_rows(rows: Sequence[Mapping[str, Any]], estimator: str) -> list[list]:
    """The information plane of ``estimator`` as table rows ``[layer, epoch, I_XT, I_TY]`` (nats),
    one per layer and epoch where both are finite, in layer then epoch order; ``layer`` is the
    label ``T1``, ``T2``, … (a name, so W&B colours layers as categories, not on a scale). With
    several seeds, the mean over the seeds that have both values.

    >>> r = [{"seed": s, "epoch": 3, "layer": 1, "estimator": "sp", "quantity": q, "value": v}
    ...      for s, q, v in [(0, "I_XT", 1.0), (0, "I_TY", 0.5), (1, "I_XT", 2.0), (1, "I_TY", 0.7)]]
    >>> plane_rows(r, "sp")
    [['T1', 3, 1.5, 0.6]]
    """
    cells: dict[tuple[int, int], dict[Any, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in rows:
        finite = isinstance(r["value"], int | float) and math.isfinite(r["value"])
        if r["estimator"] == estimator and r["quantity"] in ("I_XT", "I_TY") and finite:
            cells[(r["layer"], r["epoch"])][r.get("seed")][r["quantity"]] = r["value"]
    out = []
    for (layer, epoch), by_seed in sorted(cells.items()):
        both = [q for q in by_seed.values() if "I_XT" in q and "I_TY" in q]
        if both:
            xs, ys = [q["I_XT"] for q in both], [q["I_TY"] for q in both]
            out.append([f"T{layer}", epoch, sum(xs) / len(xs), sum(ys) / len(ys)])
    return out


def _series(plane: Sequence[Sequence], column: int) -> tuple[list[int], list[list[float]], list]:
    layers = sorted({p[0] for p in plane}, key=lambda name: int(name[1:]))
    epochs = sorted({p[1] for p in plane})
    lookup = {(p[0], p[1]): p[column] for p in plane}
    ys = [[lookup.get((layer, e), math.nan) for e in epochs] for layer in layers]
    return epochs, ys, layers


def information_charts(wandb: Any, rows: Sequence[Mapping[str, Any]], estimator: str) -> dict:
    """W&B charts of ``estimator``'s records (nats): the information plane and I(X;T_ℓ), I(T_ℓ;Y)
    against epoch.

    The plane is ``wandb.plot.line`` over the table of :func:`plane_rows` with ``stroke="layer"``:
    one line per layer, its points in epoch order, and the table (with its ``epoch`` column) kept
    in the run, where the panel's fields or the table view show each point's epoch. We chose it
    over ``wandb.plot.line_series`` (whose table holds only step, lineKey and lineVal: the epoch
    would be lost once I(X;T) is the x axis) and over the former ``wandb.plot.scatter`` (which has
    no field to tell layers apart). The curves against epoch are ``line_series``: there the epoch
    is the x axis.
    """
    plane = plane_rows(rows, estimator)
    if not plane:
        return {}
    table = wandb.Table(columns=list(PLANE_COLUMNS), data=plane)
    out = {
        f"information/plane_{estimator}": wandb.plot.line(
            table, "I_XT", "I_TY", stroke="layer",
            title=f"Information plane, {estimator}: I(T;Y) against I(X;T) per layer (nats)",
        ),
    }  # fmt: skip
    for column, quantity in ((2, "I(X;T)"), (3, "I(T;Y)")):
        epochs, ys, layers = _series(plane, column)
        key = f"information/{PLANE_COLUMNS[column]}_vs_epoch_{estimator}"
        out[key] = wandb.plot.line_series(
            xs=epochs, ys=ys, keys=layers, xname="epoch",
            title=f"{quantity} against epoch ({estimator}, nats)",
        )  # fmt: skip
    return out


class WandbChartsCallback(pl.Callback):
    """For each W&B logger: every PNG in ``plots/`` each time it is (re)drawn (as
    ``figures/<name>``, checked after every epoch and at the end; place this callback after the
    plots callback), and at the end of training the table of ``information.csv``, the charts of
    :func:`information_charts` for ``estimator`` (default: :func:`infoflow.summary.pick_estimator`,
    ``sp`` if present) and the run summary keys of :func:`infoflow.summary.wandb_summary`."""

    def __init__(
        self, output_dir: str | os.PathLike | None = None, *, estimator: str | None = None
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.estimator = estimator
        self._logged: dict[str, int] = {}  # figure name -> mtime_ns last logged

    def _pick_estimator(self, rows: list[dict]) -> str | None:
        names = {r["estimator"] for r in rows if r["quantity"] == "I_TY"}
        if self.estimator in names:
            return self.estimator
        return pick_estimator([r for r in rows if r["estimator"] in names])

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.output_dir = resolve_output_dir(self.output_dir, trainer)

    def changed_figures(self) -> list[Path]:
        """The PNGs in ``plots/`` new or redrawn since they were last logged (marks them logged)."""
        changed = []
        for png in sorted((self.output_dir / "plots").glob("*.png")):
            try:
                mtime = png.stat().st_mtime_ns
            except OSError:  # replaced while we look
                continue
            if self._logged.get(png.name) != mtime:
                self._logged[png.name] = mtime
                changed.append(png)
        return changed

    def _log_figures(self, trainer: pl.Trainer, loggers: list) -> None:
        import wandb

        figures = {f"figures/{p.stem}": wandb.Image(str(p)) for p in self.changed_figures()}
        if figures:
            for lg in loggers:
                lg.experiment.log({**figures, "trainer/global_step": trainer.global_step})

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loggers = _wandb_loggers(trainer)
        if loggers and trainer.is_global_zero:
            self._log_figures(trainer, loggers)

    def on_exception(
        self, trainer: pl.Trainer, module: pl.LightningModule, exc: BaseException
    ) -> None:
        loggers = _wandb_loggers(trainer)
        if loggers and trainer.is_global_zero:  # the figures of what an interrupted run measured
            self._log_figures(trainer, loggers)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loggers = _wandb_loggers(trainer)
        if not loggers or not trainer.is_global_zero:
            return
        import wandb

        self._log_figures(trainer, loggers)
        csv = self.output_dir / INFORMATION_FILE
        payload: dict[str, Any] = {}
        if csv.exists():
            rows = read_records(csv)
            if len(rows) <= TABLE_MAX_ROWS:
                payload["information/table"] = wandb.Table(
                    columns=list(RECORD_COLUMNS),
                    data=[[r[c] for c in RECORD_COLUMNS] for r in rows],
                )
            else:  # W&B would keep a truncated table: a partial record that looks whole
                log.info(
                    "information.csv has %d rows, more than a W&B table keeps (%d): not logged "
                    "as a table; the charts and the run directory have it",
                    len(rows), TABLE_MAX_ROWS,
                )  # fmt: skip
            name = self._pick_estimator(rows)
            if name is not None:
                payload.update(information_charts(wandb, rows, name))
        try:
            summary = wandb_summary(read_summary(self.output_dir))
        except RecordError:
            summary = {}
        for lg in loggers:
            if payload:
                lg.experiment.log(payload)
            for key, value in summary.items():
                lg.experiment.summary[key] = value
