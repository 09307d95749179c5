"""LightningDataModules over in-memory arrays: the SZT task (and the base that MNIST reuses)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch

from infoflow.data.batches import TensorBatches
from infoflow.data.mnist import MnistDataError, load_mnist, mnist_splits
from infoflow.data.szt import make_szt_dataset

_log = logging.getLogger(__name__)


@dataclass
class Splits:
    """Train / validation / evaluation arrays; ``eval`` is what the information callbacks measure.

    Optional (None: absent; SZT sets neither): ``train_eval``, a subset of the training set that
    the ``train/*`` metrics are computed on instead of the whole of it (MNIST: evaluating 55,000
    images every epoch would cost a third of the training), and ``test``, evaluated as a third
    validation loader (``test/*`` metrics).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    x_train_eval: np.ndarray | None = None
    y_train_eval: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


class ArrayDataModule(pl.LightningDataModule):
    """Keeps every split as float32/int64 tensors on the trainer's device and serves them in batches.

    For an ensemble of ``ensemble_size`` networks, member k (seed ``seed + k``) has its own seeded
    splits and its own batch order: every tensor has a leading member dimension, (K, n, ...).

    Validation runs two loaders with noise off: the training set (``train/*`` metrics, as the papers
    report the noiseless network's training loss) and the held-out set (``val/*``). When the splits
    have them (MNIST), ``train/*`` is computed on ``train_eval`` instead of the whole training set,
    and a third loader gives ``test/*``.
    """

    def __init__(
        self,
        batch_size: int = 256,
        seed: int = 0,
        eval_batch_size: int = 4096,
        ensemble_size: int = 1,
    ) -> None:
        super().__init__()
        if (
            isinstance(ensemble_size, bool)
            or int(ensemble_size) != ensemble_size
            or ensemble_size < 1
        ):
            raise ValueError(f"ensemble_size must be an integer >= 1, got {ensemble_size!r}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.seeds = [seed + k for k in range(int(ensemble_size))]
        self.tensors: dict[str, torch.Tensor] = {}
        self._generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    def make_splits(self, seed: int) -> Splits:
        """The splits of the member of seed ``seed``."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.tensors:
            return
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        members = [vars(self.make_splits(s)) for s in self.seeds]
        for name, arr in members[0].items():
            if arr is None:  # an optional split this dataset does not have
                continue
            dtype = torch.int64 if name.startswith("y") else torch.float32
            arrays = [torch.as_tensor(m[name]) for m in members]
            # One member: a view with the member dimension, no copy (MNIST's arrays are large).
            stacked = arrays[0][None] if len(arrays) == 1 else torch.stack(arrays)
            self.tensors[name] = stacked.to(device=device, dtype=dtype)

    def train_dataloader(self) -> TensorBatches:
        t = self.tensors
        return TensorBatches(
            t["x_train"], t["y_train"], self.batch_size, shuffle=True, generators=self._generators
        )

    def val_dataloader(self) -> list[TensorBatches]:
        t, b = self.tensors, self.eval_batch_size
        # metric prefix -> split: train/* from train_eval when there is one; test only if present.
        splits = {"train": "train_eval" if "x_train_eval" in t else "train", "val": "val"}
        if "x_test" in t:
            splits["test"] = "test"
        loaders = [
            TensorBatches(t[f"x_{key}"], t[f"y_{key}"], b, name=name)
            for name, key in splits.items()
        ]
        return [loader for loader in loaders if len(loader)]  # train_fraction=1 leaves no val

    def eval_set(self, member: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs (n, ...) and labels (n,) that the information estimators measure member
        ``member`` on, on the model's device."""
        return self.tensors["x_eval"][member], self.tensors["y_eval"][member]

    def state_dict(self) -> dict:
        return {"generators": [g.get_state() for g in self._generators]}

    def load_state_dict(self, state: dict) -> None:
        states = state["generators"] if "generators" in state else [state["generator"]]
        for g, s in zip(self._generators, states, strict=True):
            g.set_state(s)


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
        ensemble_size: int = 1,
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, ensemble_size=ensemble_size)
        if not 0 < train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        if eval_on not in ("all", "train", "val"):
            raise ValueError(f"eval_on must be one of all, train, val; got {eval_on!r}")
        self.train_fraction = train_fraction
        self.eval_on = eval_on

    def make_splits(self, seed: int) -> Splits:
        x, y = make_szt_dataset()
        train, val = split_indices(len(x), self.train_fraction, seed)
        ev = {"all": np.arange(len(x)), "train": train, "val": val}[self.eval_on]
        return Splits(x[train], y[train], x[val], y[val], x[ev], y[ev])


class MnistDataModule(ArrayDataModule):
    """MNIST (``infoflow.data.mnist``): images (n, 1, 28, 28) in [0, 1], labels in 0..9.

    Splits, all seeded by ``seed``: ``val_size`` of the 60,000 training images are held out for
    validation, the rest (or its first ``subset``) are trained on; ``eval_size`` validation images
    are what the information callbacks measure; the official 10,000 test images give ``test/*``.
    The ``train/*`` metrics are computed on the first ``train_eval_size`` training images, a fixed
    random subset since the training set is in seeded random order (null: all of them).
    """

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 128,
        val_size: int = 5000,
        subset: int | None = None,
        eval_size: int = 2000,
        train_eval_size: int | None = 10000,
        seed: int = 0,
        download: bool = True,
        eval_batch_size: int = 250,  # ~20% faster than 1000 here; 4096 would take ~0.5 GB
    ) -> None:
        super().__init__(batch_size=batch_size, seed=seed, eval_batch_size=eval_batch_size)
        self.data_dir = data_dir
        self.val_size = val_size
        self.subset = subset
        self.eval_size = eval_size
        self.train_eval_size = train_eval_size
        self.download = download

    def make_splits(self, seed: int) -> Splits:
        arrays = load_mnist(self.data_dir, download=self.download, log=_log.info)
        try:
            s = mnist_splits(
                arrays,
                val_size=self.val_size,
                subset=self.subset,
                eval_size=self.eval_size,
                seed=seed,
            )
        except ValueError as err:  # sizes that do not fit the data: bad input, one line
            raise MnistDataError(f"dataset: {err}") from None
        n = self.train_eval_size
        part = n is not None and n < len(s.x_train)  # else train/* uses the whole training set
        return Splits(
            s.x_train,
            s.y_train,
            s.x_val,
            s.y_val,
            s.x_eval,
            s.y_eval,
            x_train_eval=s.x_train[:n] if part else None,
            y_train_eval=s.y_train[:n] if part else None,
            x_test=s.x_test,
            y_test=s.y_test,
        )
