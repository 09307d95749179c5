"""Clustering of each layer's representations by class (Goldfeld et al.: compression is clustering)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from callbacks.schedule import ScheduledCallback
from infoflow.estimators import clustering_scores


class ClusteringCallback(ScheduledCallback):
    """Per layer: within/between-class distance ratio, silhouette, cosine-similarity statistics,
    and torchmetrics' scores of a k-means partition against the labels — logged as
    ``cluster/layer<k>/<score>`` (noiseless representations of the evaluation set)."""

    name = "clustering"

    def __init__(
        self,
        output_dir: str,
        max_samples: int = 2000,
        seed: int = 0,
        every_n_epochs: int | None = None,
        n_points: int | None = 30,
    ) -> None:
        super().__init__(output_dir, every_n_epochs, n_points)
        self.max_samples = max_samples
        self.seed = seed

    def measure(
        self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int
    ) -> tuple[list, dict[str, float]]:
        x, y = trainer.datamodule.eval_set()
        metrics = {}
        for k, out in enumerate(module.net.representations(x, noise=False), start=1):
            gen = torch.Generator().manual_seed(self.seed)  # the same sample on CPU and GPU
            scores = clustering_scores(
                out.pre_noise, y, max_samples=self.max_samples, generator=gen
            )
            metrics.update({f"cluster/layer{k}/{name}": v for name, v in scores.items()})
        return [], metrics
