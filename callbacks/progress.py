"""A progress bar over epochs: the SZT runs have thousands of 13-step epochs, where Lightning's
per-step bar (and its validation sub-bars) would redraw more often than it trains."""

from __future__ import annotations

import sys

import pytorch_lightning as pl
from tqdm.auto import tqdm


class EpochProgressBar(pl.callbacks.ProgressBar):
    """One bar for the whole run, advanced once per epoch, showing the latest metrics."""

    def __init__(self, metrics: tuple[str, ...] = ("train/loss", "val/loss", "val/acc")) -> None:
        super().__init__()
        self.metrics = tuple(metrics)
        self._enabled = True
        self._bar: tqdm | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled and trainer.is_global_zero:
            self._bar = tqdm(
                total=trainer.max_epochs,
                initial=trainer.current_epoch,
                desc="Epochs",
                unit="epoch",
                file=sys.stdout,
                dynamic_ncols=True,
                mininterval=0.5,
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is None:
            return
        shown = {
            k: f"{float(v):.4g}" for k, v in trainer.callback_metrics.items() if k in self.metrics
        }
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(1)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
