"""The per-epoch training record: losses and accuracies as rows of ``training.csv``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import pytorch_lightning as pl
import torch

from infoflow.callbacks.schedule import log_rows, resolve_output_dir
from infoflow.records import RECORD_COLUMNS, TRAINING_FILE, append_rows
from infoflow.specs import checked, integer


class TrainingRecordCallback(pl.Callback):
    """After every training epoch e (counted from 1: completed epochs, as everywhere), takes the
    module's :meth:`~infoflow.models.module.ClassifierModule.epoch_record` and emits it as rows
    ``(seed, e, , <split>, <quantity>, value, )`` of ``training.csv``, one per ensemble member
    (its seed), to the loggers, and to ``trainer.callback_metrics`` (the progress bar, the run's
    returned metrics: the mean over members). With ``every_n_epochs`` = N > 1, the rows of every
    N-th epoch and the last are written (an ensemble of 50 nets over 8000 epochs would otherwise
    write 2.4 million rows, 90 MB that every figure re-reads); pair it with
    ``trainer.check_val_every_n_epoch`` = N so that the validation pass runs only where it is
    recorded. The progress bar still advances every epoch and shows the latest recorded values.

    Rows reach ``training.csv`` in appends (each synced to disk) at most :attr:`flush_seconds`
    apart, and always when a checkpoint is saved (the file then holds every row the checkpoint
    holds), when training ends and when it fails or is stopped (a stop signal raises an
    exception: its rows are written on the way out). An fsync per epoch cost as much as an SZT
    epoch's training. Only a process killed outright (SIGKILL, power loss) loses rows: those of
    its last :attr:`flush_seconds` seconds at most; the file stays whole (a cut last line is
    dropped at the next append or read).

    Epoch 0 (before any training) has the noiseless ``train``/``val`` rows of the untrained
    networks. The rows written so far are kept in ``state_dict``: a run resumed in a new directory
    starts its ``training.csv`` with the full history. Needs infoflow's
    :class:`~infoflow.models.module.ClassifierModule` (its ``epoch_record``).

    Args:
        output_dir: where ``training.csv`` goes; None: the trainer's ``default_root_dir``.
        every_n_epochs: write the rows of every N-th epoch (and the last).
    """

    #: The longest time rows wait in memory before they are appended to ``training.csv``.
    flush_seconds: float = 10.0

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        every_n_epochs: Annotated[int, integer(1)] = 1,
    ) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.every_n_epochs = every_n_epochs
        self.history: list[tuple] = []
        self._restored = False
        self._pending: list[tuple] = []
        self._flushed_at = time.monotonic()

    @property
    def csv_path(self) -> Path:
        return self.output_dir / TRAINING_FILE

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.output_dir = resolve_output_dir(self.output_dir, trainer)

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._restored and self.history and trainer.is_global_zero:
            append_rows(self.csv_path, RECORD_COLUMNS, self.history)
        self._restored = False
        self._flushed_at = time.monotonic()
        if trainer.current_epoch == 0:
            self._write(trainer, module, module.initial_record(), 0)

    def _write(
        self, trainer: pl.Trainer, module: pl.LightningModule, record: dict, epoch: int
    ) -> None:
        if not trainer.is_global_zero or not record:
            return
        rows = []
        for seed_index, seed in enumerate(module.seeds):
            for name, values in sorted(record.items()):
                split, quantity = name.split("/", 1)
                rows.append((seed, epoch, None, split, quantity, values[seed_index], None))
        self.history.extend(rows)
        self._pending.extend(rows)
        if time.monotonic() - self._flushed_at >= self.flush_seconds:
            self.flush()
        log_rows(trainer, rows, epoch)

    def flush(self) -> None:
        """Append the rows not yet in ``training.csv`` (one synced append)."""
        if self._pending:
            append_rows(self.csv_path, RECORD_COLUMNS, self._pending)
            self._pending = []
        self._flushed_at = time.monotonic()

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        record = module.epoch_record()
        epoch = trainer.current_epoch + 1
        if not record or (epoch % self.every_n_epochs and epoch != trainer.max_epochs):
            return
        # What log_dict(means, logger=False) would leave there, without its bookkeeping (2-4 ms
        # an epoch, as much as an SZT epoch's training).
        trainer.callback_metrics.update(
            {name: torch.tensor(sum(values) / len(values)) for name, values in record.items()}
        )
        self._write(trainer, module, record, epoch)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict
    ) -> None:
        if trainer.is_global_zero:
            self.flush()

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            self.flush()

    def on_exception(
        self, trainer: pl.Trainer, module: pl.LightningModule, exception: BaseException
    ) -> None:
        if trainer.is_global_zero:
            self.flush()

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = [tuple(r) for r in state_dict["history"]]
        self._restored = True
