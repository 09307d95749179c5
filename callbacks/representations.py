"""Per-layer activation histograms (``histograms.csv``) and snapshots of narrow layers
(``snapshots/epoch_XXXXXX.npz``) for the figures: the data the plots need beyond the records of
values."""

from __future__ import annotations

import os
from typing import Annotated

import numpy as np
import torch

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.io import write_atomic
from infoflow.records import HISTOGRAM_COLUMNS, HISTOGRAM_FILE, append_rows
from infoflow.specs import RANGE, checked, integer


class RepresentationsCallback(ScheduledCallback):
    """Histograms of every hidden layer's noiseless activations over a fixed range, and the
    representations of layers with at most ``snapshot_max_units`` units with the labels (the
    class-coloured scatter of Goldfeld et al.'s SZT experiment)."""

    name = "representations"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        n_bins: Annotated[int, integer(1)] = 60,
        value_range: Annotated[
            list[float] | None, RANGE.or_null("(each layer's own range)")
        ] = None,
        snapshot_max_units: Annotated[int, integer(0)] = 3,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)
        self.n_bins = n_bins
        self.value_range = tuple(value_range) if value_range is not None else None
        self.snapshot_max_units = snapshot_max_units

    def _histogram_rows(self, seed: int, epoch: int, k: int, reps: torch.Tensor) -> list[tuple]:
        flat = reps.flatten().double().cpu()
        lo, hi = self.value_range or (float(flat.min()), float(flat.max()) + 1e-12)
        counts = torch.histc(flat, bins=self.n_bins, min=lo, max=hi).long().tolist()
        edges = np.linspace(lo, hi, self.n_bins + 1)
        return [
            (seed, epoch, k, "noiseless", float(a), float(b), c)
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]

    def _save_snapshot(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        path = self.output_dir / "snapshots" / f"epoch_{epoch:06d}.npz"
        write_atomic(path, lambda f: np.savez(f, **arrays))

    def measure(self, m: Measurement) -> list[MemberValue]:
        """Writes its own files (bins and arrays are not values); returns no value rows. Of an
        ensemble, the first member's only (its seed on the rows): K members' histograms at every
        epoch would be a file of millions of rows that no figure reads."""
        seed, hist_rows, snapshot = m.seeds[0], [], {}
        for k, reps in enumerate(m.noiseless, start=1):
            hist_rows += self._histogram_rows(seed, m.epoch, k, reps[0])
            if reps.shape[-1] <= self.snapshot_max_units:
                snapshot[f"layer_{k}"] = reps[0].cpu().numpy()
        append_rows(self.output_dir / HISTOGRAM_FILE, HISTOGRAM_COLUMNS, hist_rows)
        if snapshot:
            self._save_snapshot(m.epoch, {"labels": m.labels[0].cpu().numpy(), **snapshot})
        return []
