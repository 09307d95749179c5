"""When to measure, the base class every measuring callback shares, and the one sink of records.

Epoch numbers count completed training epochs: epoch 0 is before any training (measured at
``on_train_start``), epoch e is after the e-th epoch (measured at its ``on_train_epoch_end``, after
that epoch's validation), and the last is ``trainer.max_epochs``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import pytorch_lightning as pl
import torch

from infoflow.callbacks.measurement import Measurement, measurement
from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, append_rows, as_dicts, metric_name
from infoflow.specs import integer
from infoflow.stopping import safe_point
from infoflow.threads import using_threads

log = logging.getLogger(__name__)

#: A measured value of one member: (seed, layer, estimator, quantity, value, stderr); the base
#: class adds the epoch.
MemberValue = tuple[int, int | None, str, str, float, float | None]
#: Log-spaced epochs a callback measures at when no schedule is given.
DEFAULT_N_POINTS = 30
#: The schedule arguments every measuring callback takes (see :class:`ScheduledCallback`).
NPoints = Annotated[int | None, integer(2).or_null("(every_n_epochs only; both null: 30)")]
EveryNEpochs = Annotated[int | None, integer(1).or_null()]


def scheduled_epochs(
    max_epochs: int, *, every_n_epochs: int | None = None, n_points: int | None = None
) -> list[int]:
    """Epochs to measure at: 0, ``max_epochs``, and every N epochs and/or ``n_points`` log-spaced.

    Log-spacing follows the papers' code: unique(round(logspace(0, log10(max_epochs), n_points))).
    """
    if every_n_epochs is None and n_points is None:
        raise ValueError("a schedule needs every_n_epochs or n_points")
    if every_n_epochs is not None and every_n_epochs < 1:
        raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
    if n_points is not None and n_points < 2:
        raise ValueError(f"n_points must be >= 2, got {n_points}")
    epochs = {0, max_epochs}
    if every_n_epochs:
        epochs.update(range(0, max_epochs + 1, every_n_epochs))
    if n_points:
        epochs.update(
            np.unique(np.round(np.logspace(0, np.log10(max_epochs), n_points))).astype(int)
        )
    return sorted(e for e in epochs if 0 <= e <= max_epochs)


@contextmanager
def measuring(module: pl.LightningModule) -> Iterator[None]:
    """No gradients, eval mode, and the global RNG left as it was: measuring never changes training.

    Estimation uses the CPUs the process may really use (:func:`infoflow.threads.compute_threads`:
    affinity, cgroup quota, the launcher's share, other load), even when training is kept to one
    thread (the tiny SZT steps are fastest single-threaded; the estimators' products are not).
    """
    was_training = module.training
    devices = [module.device] if module.device.type == "cuda" else []
    with torch.no_grad(), torch.random.fork_rng(devices=devices), using_threads():
        module.eval()
        try:
            yield
        finally:
            module.train(was_training)


def emit(trainer: pl.Trainer, path: Path, rows: Sequence[tuple], epoch: int) -> None:
    """The one way a record leaves a callback: appended to ``path`` (:data:`RECORD_COLUMNS`), then
    logged to every Lightning logger (W&B, metrics.csv) under :func:`metric_name`, with ``epoch``
    = completed epochs. Loggers are sinks: the figures read only the files.

    An ensemble's rows are logged as the mean over its members under the plain name, and their
    standard deviation under ``<name>/sd``: one W&B run per ensemble with a few series per
    quantity, not K; every member's values are in the records."""
    if not rows:
        return
    append_rows(path, RECORD_COLUMNS, rows)
    log_rows(trainer, rows, epoch)


def log_rows(trainer: pl.Trainer, rows: Sequence[tuple], epoch: int) -> None:
    """The loggers' half of :func:`emit`: ``rows`` logged to every Lightning logger."""
    values: dict[str, list[float]] = {}
    for r in as_dicts(rows):
        values.setdefault(metric_name(r), []).append(r["value"])
    with np.errstate(invalid="ignore"):  # an infinite SNR of every member: mean inf, sd NaN
        metrics = {name: float(np.mean(v)) for name, v in values.items()}
        metrics |= {f"{name}/sd": float(np.std(v)) for name, v in values.items() if len(v) > 1}
    for logger in trainer.loggers:
        logger.log_metrics({**metrics, "epoch": epoch}, step=trainer.global_step)


def resolve_output_dir(output_dir: str | os.PathLike | None, trainer: pl.Trainer) -> Path:
    """The folder a callback writes to: its own, or the trainer's ``default_root_dir``."""
    return Path(output_dir) if output_dir is not None else Path(trainer.default_root_dir)


class ScheduledCallback(pl.Callback):
    """Measures at the scheduled epochs, on rank 0, on the epoch's shared
    :class:`~infoflow.callbacks.measurement.Measurement` of the module (any
    :class:`~infoflow.callbacks.protocol.Measurable`), and emits the values (:func:`emit`) as rows
    of ``information.csv``, each with its member's seed and the epoch.

    Subclasses implement ``measure(m: Measurement) -> list[MemberValue]`` over every member at
    once. The rows written so far are kept in ``state_dict``, so a run resumed from a checkpoint
    (in a new directory) starts its ``information.csv`` with the full history.

    Args:
        output_dir: where ``information.csv`` goes; None: the trainer's ``default_root_dir``.
        n_points: measure at these many log-spaced epochs (the papers' rule, see
            :func:`scheduled_epochs`) besides 0 and the last.
        every_n_epochs: and/or every N epochs. Both None: ``n_points`` = 30.
    """

    name = "scheduled"

    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__()
        if n_points is None and every_n_epochs is None:
            n_points = DEFAULT_N_POINTS
        scheduled_epochs(10, every_n_epochs=every_n_epochs, n_points=n_points)  # validate now
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.every_n_epochs = every_n_epochs
        self.n_points = n_points
        self.measured: list[int] = []
        self.history: list[tuple] = []
        self.seconds = 0.0
        self._epochs: set[int] = set()
        self._restored = False

    @property
    def csv_path(self) -> Path:
        return self.output_dir / INFORMATION_FILE

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.output_dir = resolve_output_dir(self.output_dir, trainer)

    def measure(self, m: Measurement) -> list[MemberValue]:
        raise NotImplementedError

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._epochs = set(
            scheduled_epochs(
                trainer.max_epochs, every_n_epochs=self.every_n_epochs, n_points=self.n_points
            )
        )
        if self._restored and self.history and trainer.is_global_zero:
            # A resumed run starts in a fresh directory (claim_run_dir): carry the history over.
            append_rows(self.csv_path, RECORD_COLUMNS, self.history)
        self._restored = False
        if trainer.current_epoch == 0:
            self._maybe_measure(trainer, module, 0)

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._maybe_measure(trainer, module, trainer.current_epoch + 1)

    def is_due(self, epoch: int) -> bool:
        return epoch in self._epochs and epoch not in self.measured

    def _maybe_measure(self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int) -> None:
        if not self.is_due(epoch):
            return
        if trainer.is_global_zero:  # under DDP rank 0 estimates, the others wait at the barrier
            safe_point()
            start = time.perf_counter()
            with measuring(module):
                m = measurement(module, epoch)
                values = self.measure(m)
            self.seconds += time.perf_counter() - start
            # What measuring has cost so far (all members) is a record too (estimator "time",
            # logged time/...), under the first member's seed.
            values = [
                *values,
                (m.seeds[0], None, "time", f"{self.name}_seconds", self.seconds, None),
            ]
            rows = [(v[0], epoch, *v[1:]) for v in values]
            self.history.extend(rows)
            emit(trainer, self.csv_path, rows, epoch)
        self.measured.append(epoch)
        trainer.strategy.barrier()

    def state_dict(self) -> dict:
        return {
            "measured": list(self.measured),
            "history": list(self.history),
            "seconds": self.seconds,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.measured = list(state_dict["measured"])
        self.history = [tuple(r) for r in state_dict["history"]]
        self.seconds = float(state_dict.get("seconds", 0.0))
        self._restored = True
