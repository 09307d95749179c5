"""The LightningModule: cross-entropy training of a NoisyNetwork, noiseless evaluation."""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from infoflow.models.network import NoisyNetwork


class ClassifierModule(pl.LightningModule):
    """Trains ``net`` with noise on; validates with noise off (unless ``noise_at_eval``).

    Logged once per epoch (a per-step ``self.log`` costs more than an SZT step): ``train/loss_noisy``
    (the training objective, noise on), and from the noiseless validation pass ``train/loss``,
    ``train/acc``, ``val/loss``, ``val/acc``.
    """

    def __init__(
        self,
        net: NoisyNetwork,
        optimizer: Callable[..., torch.optim.Optimizer],
        orth_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.orth_alpha = orth_alpha
        self.automatic_optimization = False
        self._sums: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):  # noqa: ANN001
        # The datamodules keep their tensors on the model's device already; skip the generic
        # collection walk Lightning would do on every step.
        x, y = batch
        return batch if x.device == device else (x.to(device), y.to(device))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())

    def _accumulate(self, name: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum().to(loss.dtype)
        stats = torch.stack([loss.detach() * len(y), correct, loss.new_tensor(len(y))])
        self._sums[name] = self._sums.get(name, 0) + stats

    def _log_sums(self, names: list[str]) -> None:
        metrics = {}
        for name in names:
            if name in self._sums:
                loss_sum, correct, n = self._sums.pop(name).tolist()
                metrics.update({f"{name}/loss": loss_sum / n, f"{name}/acc": correct / n})
        if metrics:
            self.log_dict(metrics)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Manual optimisation: one plain step, with the orthonormality rule right after it. Lightning's
        # automatic closure costs more per step than the whole SZT forward/backward.
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        if self.orth_alpha > 0:
            self.net.orthonormalize_(self.orth_alpha)
        self._noisy_loss_sum += loss.detach() * len(y)
        self._noisy_count += len(y)

    def on_train_epoch_start(self) -> None:
        self._noisy_loss_sum = torch.zeros((), device=self.device)
        self._noisy_count = 0

    def on_train_epoch_end(self) -> None:
        if self._noisy_count:
            self.log("train/loss_noisy", self._noisy_loss_sum.item() / self._noisy_count)

    def validation_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        x, y = batch
        self._accumulate(self._val_names()[dataloader_idx], self.net(x), y)

    def _val_names(self) -> list[str]:
        loaders = self.trainer.val_dataloaders
        return [loader.name for loader in (loaders if isinstance(loaders, list) else [loaders])]

    def on_validation_epoch_end(self) -> None:
        names = self._val_names()
        if self.trainer.sanity_checking:
            self._sums = {k: v for k, v in self._sums.items() if k not in names}
            return
        self._log_sums(names)
