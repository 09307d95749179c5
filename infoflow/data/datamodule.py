"""LightningDataModules over in-memory arrays: the SZT task (and the base that MNIST reuses)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch

from infoflow.data.batches import TensorBatches
from infoflow.data.szt import make_szt_dataset


@dataclass
class Splits:
    """Train / validation / evaluation arrays; ``eval`` is what the information callbacks measure."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray


class ArrayDataModule(pl.LightningDataModule):
    """Keeps every split as float32/int64 tensors on the trainer's device and serves them in batches.

    Validation runs two loaders with noise off: the training set (``train/*`` metrics, as the papers
    report the noiseless network's training loss) and the held-out set (``val/*``).
    """

    def __init__(self, batch_size: int = 256, seed: int = 0, eval_batch_size: int = 4096) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.tensors: dict[str, torch.Tensor] = {}
        self._generator = torch.Generator().manual_seed(seed)

    def make_splits(self) -> Splits:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        splits = self.make_splits()
        for name, arr in vars(splits).items():
            dtype = torch.int64 if name.startswith("y") else torch.float32
            self.tensors[name] = torch.as_tensor(arr).to(device=device, dtype=dtype)

    def train_dataloader(self) -> TensorBatches:
        t = self.tensors
        return TensorBatches(
            t["x_train"], t["y_train"], self.batch_size, shuffle=True, generator=self._generator
        )

    def val_dataloader(self) -> list[TensorBatches]:
        t, b = self.tensors, self.eval_batch_size
        loaders = [
            TensorBatches(t[f"x_{name}"], t[f"y_{name}"], b, name=name) for name in ("train", "val")
        ]
        return [loader for loader in loaders if len(loader)]  # train_fraction=1 leaves no val

    def eval_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and labels the information estimators measure on, on the model's device."""
        return self.tensors["x_eval"], self.tensors["y_eval"]

    def state_dict(self) -> dict:
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self._generator.set_state(state["generator"])


def split_indices(n: int, train_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of range(n): round(train_fraction·n) training indices, the rest held out."""
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(round(train_fraction * n))
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


class SZTDataModule(ArrayDataModule):
    """The 4096-pattern SZT task with a seeded train/validation split.

    ``eval_on`` chooses the inputs that information is measured on: ``all`` (the 4096 patterns, as
    the papers did), ``train`` or ``val``.
    """

    def __init__(
        self,
        train_fraction: float = 0.8,
        batch_size: int = 256,
        eval_on: str = "all",
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed)
        if not 0 < train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        if eval_on not in ("all", "train", "val"):
            raise ValueError(f"eval_on must be one of all, train, val; got {eval_on!r}")
        self.train_fraction = train_fraction
        self.eval_on = eval_on

    def make_splits(self) -> Splits:
        x, y = make_szt_dataset()
        train, val = split_indices(len(x), self.train_fraction, self.seed)
        ev = {"all": np.arange(len(x)), "train": train, "val": val}[self.eval_on]
        return Splits(x[train], y[train], x[val], y[val], x[ev], y[ev])
