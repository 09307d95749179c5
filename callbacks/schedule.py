"""When to measure, the base class every measuring callback shares, and the one sink of records.

Epoch numbers count completed training epochs: epoch 0 is before any training (measured at
``on_train_start``), epoch e is after the e-th epoch (measured at its ``on_train_epoch_end``, after
that epoch's validation), and the last is ``trainer.max_epochs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from infoflow.models.module import EnsembleMeasurement, Measurement
from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, append_rows, as_dicts, metric_name
from infoflow.threads import using_threads

log = logging.getLogger(__name__)

#: What a callback measures: (layer, estimator, quantity, value, stderr); the base adds seed, epoch.
Value = tuple[int | None, str, str, float, float | None]
#: A measured value of one member: (seed, layer, estimator, quantity, value, stderr).
MemberValue = tuple[int, int | None, str, str, float, float | None]


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
    values: dict[str, list[float]] = {}
    for r in as_dicts(rows):
        values.setdefault(metric_name(r), []).append(r["value"])
    with np.errstate(invalid="ignore"):  # an infinite SNR of every member: mean inf, sd NaN
        metrics = {name: float(np.mean(v)) for name, v in values.items()}
        metrics |= {f"{name}/sd": float(np.std(v)) for name, v in values.items() if len(v) > 1}
    for logger in trainer.loggers:
        logger.log_metrics({**metrics, "epoch": epoch}, step=trainer.global_step)


class ScheduledCallback(pl.Callback):
    """Runs :meth:`measure` at the scheduled epochs on rank 0 on the epoch's shared
    :class:`~infoflow.models.module.Measurement`, and emits its values (:func:`emit`) as rows of
    ``information.csv`` (with the run's ``seed`` and the epoch).

    Subclasses implement ``measure(m: Measurement) -> list[Value]`` for one member, called for
    every member of the ensemble, or, to batch over members, override :meth:`measure_all`. Rows
    carry each member's seed. The rows written so far are
    kept in ``state_dict`` so that a run resumed from a checkpoint (in a new directory) starts its
    ``information.csv`` with the full history. Settings come from the config
    (``conf/callbacks/default.yaml``): no defaults here that could disagree with it.
    """

    name = "scheduled"

    def __init__(
        self, output_dir: str, *, seed: int, every_n_epochs: int | None, n_points: int | None
    ) -> None:
        super().__init__()
        scheduled_epochs(10, every_n_epochs=every_n_epochs, n_points=n_points)  # validate now
        self.output_dir = Path(output_dir)
        self.seed = seed
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

    def measure(self, m: Measurement) -> Sequence[Value]:
        raise NotImplementedError

    def measure_all(self, em: EnsembleMeasurement) -> list[MemberValue]:
        """Every member's values, tagged with its seed: :meth:`measure` member by member."""
        return [(m.seed, *v) for m in em.members for v in self.measure(m)]

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
            start = time.perf_counter()
            with measuring(module):
                values = self.measure_all(module.measurement(epoch))
            self.seconds += time.perf_counter() - start
            # What measuring has cost so far (all members) is a record too (estimator "time",
            # logged time/...), under the run's seed.
            values = [
                *values,
                (self.seed, None, "time", f"{self.name}_seconds", self.seconds, None),
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
        history = [tuple(r) for r in state_dict["history"]]
        # Checkpoints from before rows had seeds hold 6-tuples: give them this run's seed.
        self.history = [r if len(r) == len(RECORD_COLUMNS) else (self.seed, *r) for r in history]
        self.seconds = float(state_dict.get("seconds", 0.0))
        self._restored = True
