"""The final weights of every member (``weights.npz``), for the figure of how equally accurate
members of an ensemble reach different weights (Shwartz-Ziv & Tishby's "randomised nature of the
final weights")."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytorch_lightning as pl

from infoflow.callbacks.schedule import resolve_output_dir
from infoflow.io import write_atomic
from infoflow.records import WEIGHTS_FILE


class FinalWeightsCallback(pl.Callback):
    """When training ends, writes ``weights.npz`` in the run directory: ``seeds`` (K,) and, for
    every weight layer k = 1 … L (hidden layers, then the read-out), ``layer_<k>`` of shape
    (K, out, in) in float32 (convolution kernels as (K, out, in·kh·kw)). Written whole (atomically)
    by rank 0; a run that stops early writes none.

    Args:
        output_dir: where ``weights.npz`` goes; None: the trainer's ``default_root_dir``.
    """

    def __init__(self, output_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.output_dir = Path(output_dir) if output_dir is not None else None

    def setup(self, trainer: pl.Trainer, module: pl.LightningModule, stage: str) -> None:
        self.output_dir = resolve_output_dir(self.output_dir, trainer)

    def on_train_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        net = module.measured_network()
        arrays = {"seeds": np.asarray(net.seeds, dtype=np.int64)}
        for layer, w in enumerate(net.weights(), start=1):
            flat = w.detach().reshape(w.shape[0], w.shape[1], -1)
            arrays[f"layer_{layer}"] = flat.cpu().float().numpy()
        write_atomic(self.output_dir / WEIGHTS_FILE, lambda f: np.savez(f, **arrays))
