"""Mini-batches sliced from tensors that already live on the model's device, for K members at once.

The SZT data is 4096 × 12: a DataLoader's per-step collation and worker machinery would cost more than
the training step itself. Lightning accepts any sized iterable as a loader, so we hand it this one.
Every tensor has a leading member dimension (an ensemble of K networks, K = 1 for a single run):
member k has its own data ``x[k]`` and, when shuffling, its own order from its own generator.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class TensorBatches:
    """Iterates (x, y) mini-batches, shapes (K, B, ...) and (K, B), over in-memory tensors (K, n, ...)
    and (K, n); member k's rows are reshuffled each pass by ``generators[k]`` when ``shuffle``."""

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = False,
        generators: Sequence[torch.Generator] | None = None,
        name: str = "",
    ) -> None:
        if x.shape[:2] != y.shape[:2]:
            raise ValueError(
                f"x and y differ in shape: {tuple(x.shape[:2])} != {tuple(y.shape[:2])}"
            )
        if shuffle and (generators is None or len(generators) != x.shape[0]):
            raise ValueError("shuffling needs one generator per member")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generators = list(generators or [])
        self.name = name  # the metric prefix when used as a validation loader

    def __len__(self) -> int:
        return -(-self.x.shape[1] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.x.shape[1]
        if self.shuffle:
            # Permutations are drawn on the CPU (reproducible on any device), then moved.
            order = torch.stack([torch.randperm(n, generator=g) for g in self.generators])
            order = order.to(self.x.device)
            rows = torch.arange(len(order), device=self.x.device)[:, None]
            x, y = self.x[rows, order], self.y[rows, order]
        else:
            x, y = self.x, self.y
        for start in range(0, n, self.batch_size):
            yield x[:, start : start + self.batch_size], y[:, start : start + self.batch_size]
