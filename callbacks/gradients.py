"""Gradient phases (Shwartz-Ziv & Tishby 2017): per layer, the mean and the fluctuation of the
mini-batch gradients over an epoch, from the gradients training computes anyway."""

from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from infoflow.callbacks.schedule import MemberValue, ScheduledCallback, Value
from infoflow.models.module import EnsembleMeasurement, Measurement


class GradientPhasesCallback(ScheduledCallback):
    """For each weight layer ℓ (hidden layers and the read-out), over the steps of a scheduled epoch:

        mean_norm = ‖(1/S) Σ_s g_s‖,  std_norm = ‖sqrt((1/S) Σ_s g_s² − mean²)‖ (per coordinate),
        snr = mean_norm / std_norm,

    rows of estimator ``gradients`` per ensemble member (logged as ``grad/layer<k>/{mean_norm,std_norm,snr}``). A high SNR is the "drift" phase, a low one
    the "diffusion" phase. Only running sums of g and g² per coordinate are kept: no extra backward
    passes, no W×W matrices.
    """

    name = "gradients"

    def __init__(
        self, output_dir: str, *, seed: int, every_n_epochs: int | None, n_points: int | None
    ) -> None:
        super().__init__(output_dir, seed=seed, every_n_epochs=every_n_epochs, n_points=n_points)
        self._sums: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        self._steps = 0
        self._stacked = False

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        # Accumulate only in the epochs that will be reported (epoch 0 has no gradients).
        tracked = trainer.current_epoch + 1 in self._epochs
        weights = module.weights()
        self._stacked = getattr(module.net, "stacked", False)
        self._sums = (
            [(torch.zeros_like(w), torch.zeros_like(w)) for w in weights] if tracked else None
        )
        self._steps = 0

    def on_after_backward(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        if self._sums is None:
            return
        with torch.no_grad():
            for (s1, s2), w in zip(self._sums, module.weights(), strict=True):
                if w.grad is not None:
                    s1.add_(w.grad)
                    s2.addcmul_(w.grad, w.grad)
        self._steps += 1

    def measure_all(self, em: EnsembleMeasurement) -> list[MemberValue]:
        values = super().measure_all(em)
        self._sums = None
        return values

    def measure(self, m: Measurement) -> list[Value]:
        """Member m's, from the running sums of the epoch just trained (none at epoch 0)."""
        if not self._sums or self._steps == 0:
            return []
        values: list[Value] = []
        for k, (s1, s2) in enumerate(self._sums, start=1):
            if self._stacked:  # an ensemble's weights: (K, out, in), member m's slice
                s1, s2 = s1[m.member], s2[m.member]
            mean = s1 / self._steps
            var = (s2 / self._steps - mean**2).clamp_min(0)
            mean_norm, std_norm = float(mean.norm()), float(var.sqrt().norm())
            snr = mean_norm / std_norm if std_norm > 0 else math.inf
            values += [
                (k, "gradients", q, v, None)
                for q, v in (("mean_norm", mean_norm), ("std_norm", std_norm), ("snr", snr))
            ]
        return values
