"""A stand-in for a long estimate: a callback that computes in a Python loop of torch chunks with a
safe point between chunks, as the estimators do, for a long time at one epoch. Used by the signal
and fault tests in a subprocess."""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from infoflow.stopping import safe_point


class LongEstimate(pl.Callback):
    """At the end of epoch ``at_epoch`` (counted from 1), write ``started`` and loop for
    ``seconds``, with a safe point between chunks unless ``safe_points`` is false (then it is
    one long uninterruptible stretch, as a compiled call)."""

    def __init__(
        self, started: str, seconds: float = 300.0, at_epoch: int = 1, safe_points: bool = True
    ) -> None:
        super().__init__()
        self.started, self.seconds, self.at_epoch = Path(started), seconds, at_epoch
        self.safe_points = safe_points

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.current_epoch + 1 != self.at_epoch:
            return
        self.started.write_text(f"{time.time()}\n")
        end = time.monotonic() + self.seconds
        x = torch.randn(128, 128)
        while time.monotonic() < end:  # chunks of torch work, a safe point between them
            x = torch.tanh(x @ x.T / 128)
            if self.safe_points:
                safe_point()
