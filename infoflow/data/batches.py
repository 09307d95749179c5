"""Mini-batches sliced from tensors that already live on the model's device.

The SZT data is 4096 × 12: a DataLoader's per-step collation and worker machinery would cost more than
the training step itself. Lightning accepts any sized iterable as a loader, so we hand it this one.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class TensorBatches:
    """Iterates (x, y) mini-batches over in-memory tensors, reshuffled each pass when ``shuffle``."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        name: str = "",
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} != {len(y)}")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.name = name  # the metric prefix when used as a validation loader

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.x)
        if self.shuffle:
            # The permutation is drawn on the CPU (reproducible on any device), then moved.
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            x, y = self.x[order], self.y[order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            yield x[start : start + self.batch_size], y[start : start + self.batch_size]
