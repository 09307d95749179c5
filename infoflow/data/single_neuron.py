"""The toy of Goldfeld et al. (2019, Fig. 4): X uniform on {−3, −1, 1, 3}, one noisy tanh neuron.

The label is the sign of X, so training drives the weight w up; as w grows the four Gaussians
tanh(wx + b) + βZ merge in pairs near ±1 and I(X;T) falls from ln 4 toward ln 2: compression as
clustering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np

from infoflow.data.datamodule import ArrayDataModule, Splits, shuffled
from infoflow.specs import POSITIVE_INT, checked

POINTS = np.array([-3.0, -1.0, 1.0, 3.0])


class SingleNeuronDataModule(ArrayDataModule):
    """Each of the four points ``copies`` times for training; the four points for validation and
    for the information estimates (SP draws its inputs from them uniformly with replacement)."""

    @checked
    def __init__(
        self,
        copies: Annotated[int, POSITIVE_INT] = 64,
        batch_size: Annotated[int, POSITIVE_INT] = 256,
        seeds: Sequence[int] = (0,),
        shuffle_labels: bool = False,
    ) -> None:
        super().__init__(batch_size=batch_size, seeds=seeds, shuffle_labels=shuffle_labels)
        if copies < 1:
            raise ValueError(f"copies must be >= 1, got {copies}")
        self.copies = copies

    def make_splits(self, seed: int) -> Splits:  # the same for every seed (labels aside)
        x = POINTS[:, None].astype(np.float32)
        y = (POINTS > 0).astype(np.int64)
        if self.shuffle_labels:
            y = shuffled(y, seed)
        x_train, y_train = np.repeat(x, self.copies, axis=0), np.repeat(y, self.copies)
        return Splits(x_train, y_train, x, y, x, y)
