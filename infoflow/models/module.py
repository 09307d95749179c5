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
        self._sums: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())

    def _accumulate(self, prefix: str, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits, y)
        correct = (logits.argmax(1) == y).sum().to(loss.dtype)
        stats = torch.stack([loss.detach() * len(y), correct, loss.new_tensor(len(y))])
        self._sums[prefix] = self._sums.get(prefix, 0) + stats
        return loss

    def _log_sums(self, prefixes: list[str], with_acc: bool = True) -> None:
        metrics = {}
        for prefix in prefixes:
            if prefix not in self._sums:
                continue
            loss_sum, correct, n = self._sums.pop(prefix).tolist()
            name = prefix.split(":")[0]
            metrics[f"{name}/loss{'_noisy' if ':noisy' in prefix else ''}"] = loss_sum / n
            if with_acc:
                metrics[f"{name}/acc"] = correct / n
        if metrics:
            self.log_dict(metrics, on_epoch=True)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        return self._accumulate("train:noisy", self.net(x), y)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:  # noqa: ANN001
        if self.orth_alpha > 0:
            self.net.orthonormalize_(self.orth_alpha)

    def on_train_epoch_end(self) -> None:
        self._log_sums(["train:noisy"], with_acc=False)

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
