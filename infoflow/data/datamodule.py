"""LightningDataModules over in-memory arrays: your own arrays, the SZT task, MNIST."""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pytorch_lightning as pl
import torch

from infoflow.data.batches import TensorBatches
from infoflow.data.mnist import MnistDataError, load_mnist, mnist_splits
from infoflow.data.szt import make_szt_dataset
from infoflow.errors import DataError, one_line
from infoflow.specs import POSITIVE_INT, boolean, checked, choice, number, text

_log = logging.getLogger(__name__)
# With whole epochs the validation loaders are an empty list on purpose (the module evaluates).
warnings.filterwarnings("ignore", message="Total length of `list` across ranks is zero")

#: The largest training set (bytes of its inputs, all members) served as whole epochs.
WHOLE_EPOCH_BYTES = 64 * 2**20


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

    For an ensemble, member k (seed ``seeds[k]``) has its own seeded splits and its own batch
    order: every tensor has a leading member dimension, (K, n, ...).

    Validation runs two loaders with noise off: the training set (``train/*`` metrics, as the papers
    report the noiseless network's training loss) and the held-out set (``val/*``). When the splits
    have them (MNIST), ``train/*`` is computed on ``train_eval`` instead of the whole training set,
    and a third loader gives ``test/*``. A module that trains whole epochs in one step asks for
    them (:meth:`serve_whole_epochs`) and runs these passes itself (:meth:`evaluation_loaders`).

    Args:
        batch_size: training mini-batch size.
        seeds: one per member (the app passes ``seed`` … ``seed + ensemble.size − 1``).
        shuffle_labels: replace the labels by a random permutation of them, fixed per member seed
            (random labels, as smoothMI's ``--shuffle_labels``); the class balance is kept.
        eval_batch_size: inputs per validation batch.
    """

    def __init__(
        self,
        batch_size: int = 256,
        seeds: Sequence[int] = (0,),
        shuffle_labels: bool = False,
        eval_batch_size: int = 4096,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("seeds must name at least one member")
        self.shuffle_labels = shuffle_labels
        self.tensors: dict[str, torch.Tensor] = {}
        self.whole_epochs = False  # see serve_whole_epochs
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

    def serve_whole_epochs(self, on: bool = True) -> bool:
        """Switch the training loader to whole epochs (one :class:`~infoflow.data.batches.Epoch`
        per pass) and leave the evaluation to the module (:meth:`val_dataloader` then gives none;
        :meth:`evaluation_loaders` does), if ``on`` and the training set is at most
        :data:`WHOLE_EPOCH_BYTES`; returns whether it did. Asked by a module that trains whole
        epochs in one step (:class:`~infoflow.models.module.ClassifierModule`) in its ``setup``.
        Larger data (MNIST's 55,000 images: 170 MB per epoch) stay in minibatches: their steps
        cost milliseconds, Lightning's quarter of a millisecond per step does not matter there."""
        x = self.tensors["x_train"]
        self.whole_epochs = on and x.numel() * x.element_size() <= WHOLE_EPOCH_BYTES
        return self.whole_epochs

    def train_dataloader(self) -> TensorBatches:
        t = self.tensors
        return TensorBatches(
            t["x_train"],
            t["y_train"],
            self.batch_size,
            shuffle=True,
            generators=self._generators,
            whole_epochs=self.whole_epochs,
        )

    def val_dataloader(self) -> list[TensorBatches]:
        # With whole epochs the module evaluates on evaluation_loaders() itself, at the epochs
        # Lightning would (its validation loop, ~4 ms per SZT epoch, is skipped).
        return [] if self.whole_epochs else self.evaluation_loaders()

    def evaluation_loaders(self) -> list[TensorBatches]:
        """The noiseless evaluation passes' loaders, each named by its metric prefix: ``train``
        (on ``train_eval`` when there is one), ``val``, and ``test`` where present."""
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

    def peek(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The first member's first ``n`` evaluation inputs (n, ...) and labels (n,), if the data
        is at hand without a download (for checking a network before a run); None if not."""
        s = self.make_splits(self.seeds[0])
        return torch.as_tensor(s.x_eval[:n], dtype=torch.float32), torch.as_tensor(s.y_eval[:n])

    def eval_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's inputs (K, n, ...) and labels (K, n) that the information estimators
        measure, on the model's device."""
        return self.tensors["x_eval"], self.tensors["y_eval"]

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


#: The random stream of a member's label permutation (``shuffle_labels``), apart from its split.
LABEL_STREAM = 2


def shuffled(y: np.ndarray, seed: int) -> np.ndarray:
    """The labels in a random order fixed by ``seed`` (their class counts unchanged)."""
    return y[np.random.default_rng([seed, LABEL_STREAM]).permutation(len(y))]


class ArraysDataModule(ArrayDataModule):
    """Your own data: inputs ``x`` (n, ...) and integer labels ``y`` (n,), from an ``.npz`` file
    (``path``) or from a function (``arrays``: a ``_target_`` node that returns ``(x, y)`` or a
    mapping with ``x`` and ``y``), with the seeded train/validation split of the SZT task.

    Args:
        path: an ``.npz`` file holding arrays ``x`` and ``y``.
        arrays: ``(x, y)`` or ``{"x": ..., "y": ...}`` (instead of ``path``).
        train_fraction: the share of examples trained on (seeded split per member).
        eval_on: the inputs information is measured on: ``all``, ``train`` or ``val``.
        batch_size, seeds, shuffle_labels: see :class:`ArrayDataModule`.
    """

    @checked
    def __init__(
        self,
        path: Annotated[str | None, text().or_null()] = None,
        arrays: object = None,
        train_fraction: Annotated[float, number(0, 1, lo_open=True)] = 0.8,
        batch_size: Annotated[int, POSITIVE_INT] = 256,
        eval_on: Annotated[str, choice("all", "train", "val")] = "all",
        seeds: Sequence[int] = (0,),
        shuffle_labels: Annotated[bool, boolean()] = False,
    ) -> None:
        super().__init__(batch_size=batch_size, seeds=seeds, shuffle_labels=shuffle_labels)
        if (path is None) == (arrays is None):
            raise DataError("dataset: give exactly one of path (an .npz file) and arrays")
        if not 0 < train_fraction <= 1:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        if eval_on not in ("all", "train", "val"):
            raise ValueError(f"eval_on must be one of all, train, val; got {eval_on!r}")
        self.path, self.train_fraction, self.eval_on = path, train_fraction, eval_on
        self._arrays = arrays

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole data set: x float32 (n, ...), y int64 (n,); checked (one line if bad)."""
        if self.path is not None:
            return load_arrays(self.path)
        return check_arrays(self._arrays, "dataset.arrays")

    def make_splits(self, seed: int) -> Splits:
        x, y = self.data()
        if self.shuffle_labels:
            y = shuffled(y, seed)
        train, val = split_indices(len(x), self.train_fraction, seed)
        if len(train) == 0 or (self.eval_on == "val" and len(val) == 0):
            raise DataError(
                f"dataset.train_fraction={self.train_fraction} leaves "
                f"{'no example to train on' if len(train) == 0 else 'no validation example to measure on'} "
                f"among {len(x)}"
            )
        ev = {"all": np.arange(len(x)), "train": train, "val": val}[self.eval_on]
        return Splits(x[train], y[train], x[val], y[val], x[ev], y[ev])


def load_arrays(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` of an ``.npz`` file, checked; one line (:class:`DataError`) if not."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except FileNotFoundError:
        raise DataError(f"dataset.path={str(path)!r}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"dataset.path={str(path)!r}: not a readable .npz file ({one_line(exc)})"
        ) from None
    return check_arrays(arrays, f"dataset.path={str(path)!r}")


def check_arrays(arrays: object, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(x float32, y int64) from ``(x, y)`` or a mapping with ``x`` and ``y``; one line if bad."""
    if isinstance(arrays, Mapping):
        missing = [k for k in ("x", "y") if k not in arrays]
        if missing:
            raise DataError(
                f"{where}: no array {missing[0]!r} (it has: {', '.join(arrays) or 'none'})"
            )
        x, y = arrays["x"], arrays["y"]
    elif isinstance(arrays, Sequence) and len(arrays) == 2:
        x, y = arrays
    else:
        raise DataError(f"{where}: expected arrays x and y, got {type(arrays).__name__}")
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 1 or len(x) < 2:
        raise DataError(
            f"{where}: x must have at least 2 examples along its first axis, got shape {x.shape}"
        )
    if y.shape != (len(x),):
        raise DataError(
            f"{where}: y must have shape ({len(x)},), one label per row of x, got {y.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{where}: x must be real numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(
            f"{where}: x holds NaN or inf (row {int(np.argwhere(~np.isfinite(x))[0][0])})"
        )
    if np.issubdtype(y.dtype, np.floating) and np.isfinite(y).all() and (y == np.round(y)).all():
        y = y.astype(np.int64)
    if not np.issubdtype(y.dtype, np.integer) or (y < 0).any():
        raise DataError(f"{where}: y must be integer class labels >= 0, got dtype {y.dtype}")
    return x.astype(np.float32), y.astype(np.int64)


class SZTDataModule(ArraysDataModule):
    """The 4096-pattern SZT task with a seeded train/validation split.

    ``eval_on`` chooses the inputs that information is measured on: ``all`` (the 4096 patterns, as
    the papers did), ``train`` or ``val``.
    """

    @checked
    def __init__(
        self,
        train_fraction: Annotated[float, number(0, 1, lo_open=True)] = 0.8,
        batch_size: Annotated[int, POSITIVE_INT] = 256,
        eval_on: Annotated[str, choice("all", "train", "val")] = "all",
        seeds: Sequence[int] = (0,),
        shuffle_labels: Annotated[bool, boolean()] = False,
    ) -> None:
        super().__init__(
            arrays=make_szt_dataset(),
            train_fraction=train_fraction,
            batch_size=batch_size,
            eval_on=eval_on,
            seeds=seeds,
            shuffle_labels=shuffle_labels,
        )


class MnistDataModule(ArrayDataModule):
    """MNIST (``infoflow.data.mnist``): images (n, 1, 28, 28) in [0, 1], labels in 0..9.

    Splits, all seeded by ``seed``: ``val_size`` of the 60,000 training images are held out for
    validation, the rest (or its first ``subset``) are trained on; ``eval_size`` validation images
    are what the information callbacks measure; the official 10,000 test images give ``test/*``.
    The ``train/*`` metrics are computed on the first ``train_eval_size`` training images, a fixed
    random subset since the training set is in seeded random order (null: all of them).
    """

    @checked
    def __init__(
        self,
        data_dir: str = "data",
        batch_size: Annotated[int, POSITIVE_INT] = 128,
        val_size: Annotated[int, POSITIVE_INT] = 5000,
        subset: Annotated[int | None, POSITIVE_INT.or_null("(all)")] = None,
        eval_size: Annotated[int, POSITIVE_INT] = 2000,
        train_eval_size: Annotated[
            int | None, POSITIVE_INT.or_null("(the whole training set)")
        ] = 10000,
        seeds: Sequence[int] = (0,),
        shuffle_labels: Annotated[bool, boolean()] = False,
        download: Annotated[bool, boolean()] = True,
        eval_batch_size: Annotated[int, POSITIVE_INT] = 250,  # ~20% faster than 1000 here
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            seeds=seeds,
            shuffle_labels=shuffle_labels,
            eval_batch_size=eval_batch_size,
        )
        self.data_dir = data_dir
        self.val_size = val_size
        self.subset = subset
        self.eval_size = eval_size
        self.train_eval_size = train_eval_size
        self.download = download

    def peek(self, n: int = 2) -> tuple[torch.Tensor, torch.Tensor] | None:
        """As :meth:`ArrayDataModule.peek`; None while MNIST is not on disk yet."""
        try:
            arrays = load_mnist(self.data_dir, download=False, log=lambda *a: None)
        except MnistDataError:
            return None
        x = torch.as_tensor(arrays.x_train[:n], dtype=torch.float32)[:, None] / 255.0
        return x, torch.as_tensor(arrays.y_train[:n], dtype=torch.int64)

    def make_splits(self, seed: int) -> Splits:
        arrays = load_mnist(self.data_dir, download=self.download, log=_log.info)
        if self.shuffle_labels:  # the 60,000 training images' labels; the test set keeps its own
            arrays = arrays._replace(y_train=shuffled(arrays.y_train, seed))
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
