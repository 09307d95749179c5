"""Clustering of each layer's representations by class (Goldfeld et al.: compression is clustering)."""

from __future__ import annotations

import os
from typing import Annotated

import torch

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.estimators import clustering_scores
from infoflow.specs import checked, integer
from infoflow.stopping import safe_point


class ClusteringCallback(ScheduledCallback):
    """Per layer: within/between-class distance ratio, silhouette, cosine-similarity statistics,
    and torchmetrics' scores of a k-means partition against the labels, on the noiseless
    representations of the evaluation set — rows of estimator ``clustering``, one quantity per
    score (logged as ``cluster/layer<k>/<score>``), member by member.

    Args:
        output_dir, n_points, every_n_epochs: see :class:`ScheduledCallback`.
        max_samples: score a seeded sample of at most this many inputs (the scores cost O(m²)).
    """

    name = "clustering"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        max_samples: Annotated[int, integer(2)] = 2000,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)
        self.max_samples = max_samples

    def measure(self, m: Measurement) -> list[MemberValue]:
        values: list[MemberValue] = []
        for member, seed in enumerate(m.seeds):
            for k, reps in enumerate(m.noiseless, start=1):
                safe_point()  # between members and layers (each O(m²))
                gen = torch.Generator().manual_seed(seed)  # the same sample on CPU and GPU
                scores = clustering_scores(
                    reps[member], m.labels[member], max_samples=self.max_samples, generator=gen
                )
                values += [(seed, k, "clustering", name, v, None) for name, v in scores.items()]
        return values
