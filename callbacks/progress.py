"""A progress bar over epochs: the SZT runs have thousands of 13-step epochs, where Lightning's
per-step bar (and its validation sub-bars) would redraw more often than it trains.

While the bar is up, console log lines and Python warnings go through ``tqdm.write`` (the bar is
cleared, the line printed, the bar redrawn below it), so nothing is glued to the bar."""

from __future__ import annotations

import contextlib
import logging
import sys

import pytorch_lightning as pl
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm


class EpochProgressBar(pl.callbacks.ProgressBar):
    """One bar for the whole run, advanced once per epoch, showing the latest metrics."""

    def __init__(self, metrics: tuple[str, ...] = ("train/loss", "val/loss", "val/acc")) -> None:
        super().__init__()
        self.metrics = tuple(metrics)
        self._enabled = True
        self._bar: tqdm | None = None
        self._redirect: contextlib.ExitStack | None = None

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
            self._redirect_output()

    def _redirect_output(self) -> None:
        """Route the root logger's console handler through ``tqdm.write``, and warnings through
        logging (``py.warnings``: the same console line, and the run's log file), until the bar
        closes."""
        stack = contextlib.ExitStack()
        stack.enter_context(logging_redirect_tqdm(tqdm_class=tqdm))
        if getattr(logging, "_warnings_showwarning", None) is None:  # not captured yet
            logging.captureWarnings(True)
            stack.callback(logging.captureWarnings, False)
        self._redirect = stack

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is None:
            return
        shown = {
            k: f"{float(v):.4g}" for k, v in trainer.callback_metrics.items() if k in self.metrics
        }
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(1)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._redirect is not None:
            self._redirect.close()
            self._redirect = None

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._close()
