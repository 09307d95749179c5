"""Per-layer activation histograms (``histograms.csv``) and snapshots of narrow layers
(``snapshots/epoch_XXXXXX.npz``) for the figures: the data the plots need beyond information.csv."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytorch_lightning as pl
import torch

from callbacks.schedule import ScheduledCallback
from infoflow.records import HISTOGRAM_COLUMNS, append_rows


class RepresentationsCallback(ScheduledCallback):
    """Histograms of every hidden layer's noiseless activations over a fixed range, and the
    representations of layers with at most ``snapshot_max_units`` units with the labels (the
    class-coloured scatter of Goldfeld et al.'s SZT experiment)."""

    name = "representations"

    def __init__(
        self,
        output_dir: str,
        n_bins: int = 60,
        value_range: tuple[float, float] | None = None,
        snapshot_max_units: int = 3,
        every_n_epochs: int | None = None,
        n_points: int | None = 30,
    ) -> None:
        super().__init__(output_dir, every_n_epochs, n_points)
        self.n_bins = n_bins
        self.value_range = tuple(value_range) if value_range is not None else None
        self.snapshot_max_units = snapshot_max_units

    def _histogram_rows(self, epoch: int, k: int, reps: torch.Tensor) -> list[tuple]:
        flat = reps.flatten().double().cpu()
        lo, hi = self.value_range or (float(flat.min()), float(flat.max()) + 1e-12)
        counts = torch.histc(flat, bins=self.n_bins, min=lo, max=hi).long().tolist()
        edges = np.linspace(lo, hi, self.n_bins + 1)
        return [
            (epoch, k, "noiseless", float(a), float(b), c)
            for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)
        ]

    def _save_snapshot(self, epoch: int, arrays: dict[str, np.ndarray]) -> None:
        folder = self.output_dir / "snapshots"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, folder / f"epoch_{epoch:06d}.npz")

    def measure(
        self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int
    ) -> tuple[list, dict[str, float]]:
        x, y = trainer.datamodule.eval_set()
        hist_rows, snapshot = [], {}
        for k, out in enumerate(module.net.representations(x, noise=False), start=1):
            hist_rows += self._histogram_rows(epoch, k, out.pre_noise)
            if out.pre_noise.shape[1] <= self.snapshot_max_units:
                snapshot[f"layer_{k}"] = out.pre_noise.cpu().numpy()
        append_rows(self.output_dir / "histograms.csv", HISTOGRAM_COLUMNS, hist_rows)
        if snapshot:
            self._save_snapshot(epoch, {"labels": y.cpu().numpy(), **snapshot})
        return [], {}
