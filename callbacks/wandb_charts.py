"""W&B tables and charts of the information records: the information plane and I(X;T_ℓ) over
epochs, as interactive charts, plus the PNG figures as images."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytorch_lightning as pl

from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, read_records


def _wandb_loggers(trainer: pl.Trainer) -> list:
    return [lg for lg in trainer.loggers if isinstance(lg, pl.loggers.WandbLogger)]


class WandbChartsCallback(pl.Callback):
    """At the end of training, logs to each W&B logger: the table of ``information.csv``, for the
    estimator ``estimator`` (default ``sp``, else the first binned one) a scatter of the information
    plane (I_XT, I_TY; one point per layer and epoch, the table carries epoch and layer to colour
    by) and a line series of I(X;T_ℓ) against epoch, and every PNG in ``plots/``."""

    def __init__(self, output_dir: str, estimator: str | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir)
        self.estimator = estimator

    def _pick_estimator(self, rows: list[dict]) -> str | None:
        names = {r["estimator"] for r in rows if r["quantity"] == "I_TY"}
        if self.estimator in names:
            return self.estimator
        return "sp" if "sp" in names else min(names, default=None)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        loggers = _wandb_loggers(trainer)
        csv = self.output_dir / INFORMATION_FILE
        if not loggers or not trainer.is_global_zero or not csv.exists():
            return
        import wandb

        rows = read_records(csv)
        name = self._pick_estimator(rows)
        payload = {"information/table": _table(wandb, rows)}
        if name is not None:
            payload.update(_charts(wandb, rows, name))
        for png in sorted((self.output_dir / "plots").glob("*.png")):
            payload[f"figures/{png.stem}"] = wandb.Image(str(png))
        for lg in loggers:
            lg.experiment.log(payload)


def _table(wandb, rows: list[dict]):  # noqa: ANN001, ANN202
    return wandb.Table(
        columns=list(RECORD_COLUMNS), data=[[r[c] for c in RECORD_COLUMNS] for r in rows]
    )


def _charts(wandb, rows: list[dict], estimator: str) -> dict:  # noqa: ANN001
    by_point: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["estimator"] == estimator and r["quantity"] in ("I_XT", "I_TY"):
            by_point[(r["layer"], r["epoch"])][r["quantity"]] = r["value"]
    plane = [
        [layer, epoch, q["I_XT"], q["I_TY"]]
        for (layer, epoch), q in sorted(by_point.items())
        if "I_XT" in q and "I_TY" in q
    ]
    table = wandb.Table(columns=["layer", "epoch", "I_XT", "I_TY"], data=plane)
    layers = sorted({p[0] for p in plane})
    epochs = sorted({p[1] for p in plane})
    lookup = {(p[0], p[1]): p[2] for p in plane}
    ys = [[lookup.get((layer, e), float("nan")) for e in epochs] for layer in layers]
    return {
        f"information/plane_{estimator}": wandb.plot.scatter(
            table, "I_XT", "I_TY", title=f"Information plane ({estimator}, nats)"
        ),
        f"information/I_XT_vs_epoch_{estimator}": wandb.plot.line_series(
            xs=epochs,
            ys=ys,
            keys=[f"layer {layer}" for layer in layers],
            title=f"I(X;T) against epoch ({estimator}, nats)",
            xname="epoch",
        ),
    }
