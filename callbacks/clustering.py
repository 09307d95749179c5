"""Clustering of each layer's representations by class (Goldfeld et al.: compression is clustering)."""

from __future__ import annotations

import torch

from infoflow.callbacks.schedule import ScheduledCallback, Value
from infoflow.estimators import clustering_scores
from infoflow.models.module import Measurement


class ClusteringCallback(ScheduledCallback):
    """Per layer: within/between-class distance ratio, silhouette, cosine-similarity statistics,
    and torchmetrics' scores of a k-means partition against the labels, on the noiseless
    representations of the evaluation set — rows of estimator ``clustering``, one quantity per
    score (logged as ``cluster/layer<k>/<score>``)."""

    name = "clustering"

    def __init__(
        self,
        output_dir: str,
        *,
        max_samples: int,
        seed: int,
        every_n_epochs: int | None,
        n_points: int | None,
    ) -> None:
        super().__init__(output_dir, seed=seed, every_n_epochs=every_n_epochs, n_points=n_points)
        if max_samples < 2:
            raise ValueError(f"max_samples must be >= 2, got {max_samples}")
        self.max_samples = max_samples

    def measure(self, m: Measurement) -> list[Value]:
        values: list[Value] = []
        for k, reps in enumerate(m.noiseless, start=1):
            gen = torch.Generator().manual_seed(m.seed)  # the same sample on CPU and GPU
            scores = clustering_scores(reps, m.labels, max_samples=self.max_samples, generator=gen)
            values += [(k, "clustering", name, v, None) for name, v in scores.items()]
        return values
