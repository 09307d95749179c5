"""Checkpoints written whole, and checked before a run resumes from one.

Writing: :class:`AtomicCheckpointIO` saves through :func:`infoflow.io.write_atomic` (a hidden file
beside the target, synced, then renamed over it): a checkpoint is never cut, not by a hard stop,
a full disk or SIGKILL. Lightning's own save goes through a temporary file in the system's temp
folder, whose move is a copy when that is another filesystem (a cluster's /tmp), so a kill in the
middle of it leaves a cut file. A second stop signal during a save removes the file being written
and leaves the last whole checkpoint.

Reading: :func:`check_checkpoint` loads ``ckpt_path`` (``weights_only``: no code runs) and holds
its weights against the configured network before the run writes anything, so a missing, cut or
foreign checkpoint is one line naming the path and what is wrong, not a traceback from Lightning.
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from infoflow.errors import one_line
from infoflow.io import write_atomic

#: What a checkpoint must hold to resume training from it (Lightning's keys).
RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "epoch")


class ModelCheckpoint(pl.callbacks.ModelCheckpoint):
    """Lightning's ``ModelCheckpoint`` (same arguments); its saves go through the trainer's
    checkpoint IO, which :func:`use_atomic_saves` makes atomic, and it saves at the end of a
    training epoch unless ``save_on_train_epoch_end=False``."""

    def _should_save_on_train_epoch_end(self, trainer: pl.Trainer) -> bool:
        # The epoch's end comes after its validation loop (run inside the epoch) and after every
        # other callback's epoch end: the checkpoint holds the whole epoch, records included.
        # Lightning instead waits for the validation loop when check_val_every_n_epoch > 1, a
        # loop that a module evaluating itself (ClassifierModule on whole epochs) never runs.
        return self._save_on_train_epoch_end is not False


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``TorchCheckpointIO`` that writes each checkpoint atomically, in its folder."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomic(path, lambda f: torch.save(checkpoint, f))


def use_atomic_saves(trainer: pl.Trainer) -> None:
    """Make ``trainer`` save checkpoints with :class:`AtomicCheckpointIO` (unless it was given a
    checkpoint IO of another kind, e.g. for remote storage)."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()


def checkpoint_problem(
    path: str | os.PathLike, expected: Mapping[str, torch.Tensor] | None
) -> str | None:
    """What is wrong with resuming from ``path`` a module whose ``state_dict()`` is ``expected``,
    on one line, or None: no such file, a file that does not load (cut, or not a checkpoint), no
    training state to resume, or weights whose names or shapes differ from the model's
    (``expected`` None: not compared).

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "x.ckpt"
    ...     _ = p.write_bytes(b"not a checkpoint")
    ...     checkpoint_problem(p, {}).split(" (")[0]
    'cannot be loaded: cut, or not a checkpoint'
    """
    path = Path(path)
    if not path.is_file():
        return "no such file" if not path.exists() else "not a file"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        return f"cannot be loaded: cut, or not a checkpoint ({_load_failure(path, exc)})"
    if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
        return "not a Lightning checkpoint (no state_dict)"
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        return f"holds no training state to resume ({', '.join(missing)} missing): weights only?"
    if expected is None:
        return None
    return state_dict_mismatch(ckpt["state_dict"], expected)


def _load_failure(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` failed, short: a checkpoint is a zip archive, whose directory is at its
    end (a cut file has none); torch's weights-only refusal names the reason at its end."""
    if not zipfile.is_zipfile(path):
        return f"{path.stat().st_size} bytes, not a whole zip archive"
    text = one_line(exc)
    found = re.search(r"WeightsUnpickler error: ([^.]*)", text)
    return found.group(1) if found else one_line(text, 200)


def state_dict_mismatch(
    found: Mapping[str, Any], expected: Mapping[str, torch.Tensor], limit: int = 3
) -> str | None:
    """How the weights ``found`` differ from ``expected`` (names, then shapes), or None.

    >>> w = {"net.w": torch.zeros(2, 3)}
    >>> state_dict_mismatch({"net.w": torch.zeros(2, 4)}, w)
    'does not fit the configured model: net.w is (2, 4) there, (2, 3) here'
    >>> state_dict_mismatch({"net.v": torch.zeros(1)}, w)
    'does not fit the configured model: missing net.w; not in the model: net.v'
    """
    parts = []
    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    if missing:
        parts.append(f"missing {_some(missing, limit)}")
    if extra:
        parts.append(f"not in the model: {_some(extra, limit)}")
    shapes = [
        f"{k} is {_shape(found[k])} there, {_shape(v)} here"
        for k, v in expected.items()
        if k in found and _shape(found[k]) != _shape(v)
    ]
    parts += shapes[:limit] + ([f"{len(shapes) - limit} more"] if len(shapes) > limit else [])
    return f"does not fit the configured model: {'; '.join(parts)}" if parts else None


def _shape(t: Any) -> tuple[int, ...] | str:
    return tuple(t.shape) if hasattr(t, "shape") else type(t).__name__


def _some(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
