"""Redraws the run's PNG figures (``plots/``) from its records as the run goes, and at the end;
writes the reference IB curve they draw (``ib_curve.csv``) when training starts."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Annotated

import pytorch_lightning as pl

from infoflow.callbacks.measurement import measurement
from infoflow.callbacks.schedule import resolve_output_dir
from infoflow.estimators.ib_curve import ib_curve, joint_from_samples
from infoflow.records import IB_CURVE_COLUMNS, IB_CURVE_FILE, INFORMATION_FILE, write_csv_atomic
from infoflow.specs import PROBABILITY, checked, choice, number

log = logging.getLogger(__name__)


class PlotsCallback(pl.Callback):
    """Calls :func:`infoflow.plots.draw_all` on the run directory after a scheduled measurement and
    always when training ends. Place it after the measuring callbacks so it sees their rows.

    Drawing every figure takes seconds (~15 s for a default SZT run on 2 CPU cores), more than many
    SZT epochs, so redraws during training are spaced by at least ``min_interval_s`` seconds and
    by at least ``duration / max_fraction``: drawing takes at most about ``max_fraction`` of the
    run's wall time.
    """

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        units: Annotated[str, choice("bits", "nats")] = "bits",
        min_interval_s: Annotated[float, number(0)] = 60.0,
        max_fraction: Annotated[float, PROBABILITY] = 0.1,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.units = units
        self.min_interval_s = min_interval_s
        self.max_fraction = max_fraction
        self._last = -float("inf")
        self._interval = min_interval_s
        self._rows_seen = 0

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.output_dir = resolve_output_dir(self.output_dir, trainer)

    def _draw(self) -> None:
        from infoflow.plots import draw_all

        start = time.monotonic()
        try:
            draw_all(self.output_dir, units=self.units)
        except Exception as exc:  # a figure must never stop a training run
            log.warning("drawing figures failed: %s", exc)
        self._last = time.monotonic()
        self._interval = max(self.min_interval_s, (self._last - start) / self.max_fraction)

    def _write_ib_curve(self, module: pl.LightningModule) -> None:
        """The optimal IB curve of the evaluation set's empirical p(x, y) (exact for SZT, whose
        evaluation set is all 4096 inputs): the frontier of the information-plane figures. A few
        hundredths of a second; a failure costs only the overlay."""
        x, y = measurement(module, 0).inputs[0], measurement(module, 0).labels[0]
        try:  # the first member's evaluation set (SZT: all 4096 inputs, every member's)
            curve = ib_curve(*joint_from_samples(x.cpu(), y.cpu()))
        except Exception as exc:  # an optional overlay must never stop a run
            log.warning("no IB curve for the figures: %s: %s", type(exc).__name__, exc)
            return
        rows = zip(curve.i_xt, curve.i_ty, curve.beta, strict=True)
        write_csv_atomic(self.output_dir / IB_CURVE_FILE, IB_CURVE_COLUMNS, rows)

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.is_global_zero and not (self.output_dir / IB_CURVE_FILE).exists():
            self._write_ib_curve(module)

    def _has_new_rows(self) -> bool:
        path = self.output_dir / INFORMATION_FILE
        size = path.stat().st_size if path.exists() else 0
        new, self._rows_seen = size != self._rows_seen, size
        return new

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        due = time.monotonic() - self._last >= self._interval
        if trainer.is_global_zero and due and self._has_new_rows():
            self._draw()

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self._draw()

    def on_exception(
        self, trainer: pl.Trainer, module: pl.LightningModule, exc: BaseException
    ) -> None:
        if not trainer.is_global_zero:
            return
        if isinstance(exc, Exception):  # a failed run still leaves figures of what it measured
            self._draw()
        else:  # a stop signal: end within seconds; drawing every figure can take ~15 s
            log.info(
                "figures not redrawn on the way out: python -m infoflow.plot %s", self.output_dir
            )
