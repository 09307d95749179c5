"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y), h(T_ℓ), h(T_ℓ|X) for noisy networks (Goldfeld et al. 2019)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from callbacks.schedule import Row, ScheduledCallback
from infoflow.estimators import sp_information

log = logging.getLogger(__name__)


class InformationCallback(ScheduledCallback):
    """Sample-propagation estimates per hidden layer, with standard errors.

    At each scheduled epoch, ``n_inputs`` inputs are drawn uniformly with replacement from the
    datamodule's evaluation set (all of it when ``n_inputs`` is null: for SZT all 4096 patterns),
    each propagated ``n_replicas`` times through the noisy network. Skipped for β = 0, where
    I(X;T) is infinite or constant (Goldfeld et al., Sec. 2) and SP has no noise to work with.
    Layers wider than ``max_width`` (e.g. convolutional ones) are skipped, with one log line.
    """

    name = "sp"

    def __init__(
        self,
        output_dir: str,
        n_replicas: int = 100,
        n_inputs: int | None = None,
        n_mc: int | None = None,
        seed: int = 0,
        every_n_epochs: int | None = None,
        n_points: int | None = 30,
        max_width: int | None = None,
    ) -> None:
        super().__init__(output_dir, every_n_epochs, n_points)
        if n_replicas < 2:
            raise ValueError(f"n_replicas must be >= 2, got {n_replicas}")
        self.n_replicas = n_replicas
        self.n_inputs = n_inputs
        self.n_mc = n_mc
        self.seed = seed
        self.max_width = max_width
        self._said_skip = False
        self._said_wide = False

    def _say_wide_layers(self, module: pl.LightningModule, x: torch.Tensor) -> None:
        """Log once which layers are too wide for SP and why."""
        if self._said_wide or self.max_width is None:
            return
        self._said_wide = True
        widths = [o.pre_noise.shape[1] for o in module.net.hidden_outputs(x[:1], noise=False)[0]]
        wide = [f"T{k} (d={d})" for k, d in enumerate(widths, start=1) if d > self.max_width]
        if wide:
            log.info(
                "SP information skipped for %s: wider than estimator.sp_max_width=%d; SP needs "
                "e^{O(d)} samples there (Goldfeld et al.), so its estimate would say nothing",
                ", ".join(wide),
                self.max_width,
            )

    def measure(
        self, trainer: pl.Trainer, module: pl.LightningModule, epoch: int
    ) -> tuple[list[Row], dict[str, float]]:
        net = module.net
        if net.beta == 0:
            if not self._said_skip:
                log.info(
                    "SP information skipped: noise.beta=0, a deterministic net (I(X;T) vacuous)"
                )
                self._said_skip = True
            return [], {}
        x, y = trainer.datamodule.eval_set()
        self._say_wide_layers(module, x)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        idx = torch.randint(len(x), (self.n_inputs or len(x),), generator=gen).to(x.device)
        result = sp_information(
            net.sample_pre_noise,
            x[idx],
            y[idx],
            sigma=net.beta,
            n_replicas=self.n_replicas,
            n_mc=self.n_mc,
            n_mc_conditional=self.n_mc,
            max_width=self.max_width,
        )
        rows, metrics = [], {}
        for layer, quantities in result.items():
            for quantity, est in quantities.items():
                rows.append((epoch, layer + 1, "sp", quantity, est.value, est.stderr))
                metrics[f"info/sp/layer{layer + 1}/{quantity}"] = est.value
        return rows, metrics
