"""Checkpoints written whole: a stop signal that arrives during a save waits until the file is.

A checkpoint cut in half by SIGTERM would make ``ckpt_path=`` fail exactly when a pre-empted run
needs it; :func:`infoflow.signals.deferred` holds the signal back for the few hundred
milliseconds a save takes.
"""

from __future__ import annotations

import pytorch_lightning as pl

from infoflow.signals import deferred


class ModelCheckpoint(pl.callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments), whose saves a stop signal cannot cut."""

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        with deferred():
            super()._save_checkpoint(trainer, filepath)
