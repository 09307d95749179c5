"""Gradient phases (Shwartz-Ziv & Tishby 2017): per layer, the mean and the fluctuation of the
mini-batch gradients over an epoch, from the gradients training computes anyway."""

from __future__ import annotations

import math
import os

import pytorch_lightning as pl
import torch

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.specs import checked


class GradientPhasesCallback(ScheduledCallback):
    """For each weight layer ℓ (hidden layers and the read-out), over the steps of a scheduled
    epoch, per member:

        mean_norm = ‖(1/S) Σ_s g_s‖,  std_norm = ‖sqrt((1/S) Σ_s g_s² − mean²)‖ (per coordinate),
        snr = mean_norm / std_norm,

    rows of estimator ``gradients`` (logged as ``grad/layer<k>/{mean_norm,std_norm,snr}``). A high
    SNR is the "drift" phase, a low one the "diffusion" phase. Only running sums of g and g² per
    coordinate are kept: no extra backward passes, no W×W matrices. The weights are the network's
    (:meth:`~infoflow.models.network.Network.weights`), each gradient read member by member.
    """

    name = "gradients"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)
        self._sums: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._steps = 0

    @staticmethod
    def _weights(module: pl.LightningModule) -> list[torch.Tensor]:
        return module.measured_network().weights()

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # Accumulate only in the epochs that will be reported (epoch 0 has no gradients).
        tracked = trainer.current_epoch + 1 in self._epochs
        self._sums = (
            [(torch.zeros_like(w), torch.zeros_like(w)) for w in self._weights(module)]
            if tracked
            else None
        )
        self._steps = 0

    def on_after_backward(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._sums is None:
            return
        with torch.no_grad():
            for (s1, s2), w in zip(self._sums, self._weights(module), strict=True):
                if w.grad is not None:
                    s1.add_(w.grad)
                    s2.addcmul_(w.grad, w.grad)
        self._steps += 1

    def measure(self, m: Measurement) -> list[MemberValue]:
        """Every member's, from the running sums of the epoch just trained (none at epoch 0)."""
        sums, self._sums = self._sums, None
        if not sums or self._steps == 0:
            return []
        k = len(m.seeds)
        values: list[MemberValue] = []
        for layer, (s1, s2) in enumerate(sums, start=1):
            mean = s1.reshape(k, -1) / self._steps  # member by member
            var = (s2.reshape(k, -1) / self._steps - mean**2).clamp_min(0)
            for seed, mean_norm, std_norm in zip(
                m.seeds, mean.norm(dim=1).tolist(), var.sqrt().norm(dim=1).tolist(), strict=True
            ):
                snr = mean_norm / std_norm if std_norm > 0 else math.inf
                values += [
                    (seed, layer, "gradients", q, v, None)
                    for q, v in (("mean_norm", mean_norm), ("std_norm", std_norm), ("snr", snr))
                ]
        return values
