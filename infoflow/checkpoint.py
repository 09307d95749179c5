"""Checkpoints written whole: a stop signal that arrives during a save waits until the file is.

A checkpoint cut in half by SIGTERM would make ``ckpt_path=`` fail exactly when a pre-empted run
needs it; :func:`infoflow.signals.deferred` holds the signal back for the few hundred
milliseconds a save takes.
"""

from __future__ import annotations

import pytorch_lightning as pl

from infoflow.signals import deferred


class ModelCheckpoint(pl.callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments), whose saves a stop signal cannot cut, and
    which saves at the end of a training epoch unless ``save_on_train_epoch_end=False``."""

    def _should_save_on_train_epoch_end(self, trainer: pl.Trainer) -> bool:
        # The epoch's end comes after its validation loop (run inside the epoch) and after every
        # other callback's epoch end: the checkpoint holds the whole epoch, records included.
        # Lightning instead waits for the validation loop when check_val_every_n_epoch > 1, a
        # loop that a module evaluating itself (ClassifierModule on whole epochs) never runs.
        return self._save_on_train_epoch_end is not False

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        with deferred():
            super()._save_checkpoint(trainer, filepath)
