"""The LightningModule that trains infoflow's networks: cross-entropy training of K networks as
one (:class:`~infoflow.models.network.Network`; K = 1 for a single run), noiseless evaluation, and
the two methods the measuring callbacks read (:class:`infoflow.callbacks.Measurable`):
:meth:`ClassifierModule.measured_network` and :meth:`ClassifierModule.measurement_data`.

Models import no estimators and no callbacks: the callbacks measure the network through its
:class:`~infoflow.models.network.Network` interface.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from infoflow.errors import DivergenceError, ModelError, one_line
from infoflow.models.network import Network


@runtime_checkable
class EvaluationData(Protocol):
    """What a datamodule offers the measurements: every member's evaluation inputs (K, n, ...)
    and labels (K, n)."""

    def eval_set(self) -> tuple[torch.Tensor, torch.Tensor]: ...


class ClassifierModule(pl.LightningModule):
    """Trains ``net``, K networks as one (:mod:`infoflow.models.ensemble`), with noise on;
    validates with noise off (unless ``noise_at_eval``). Batches are (K, B, ...): member k sees
    its own data; the loss is the sum of the members' mean losses, so no member's gradient
    touches another's.

    Summed on the device per member and handed over once per epoch by :meth:`epoch_record` (a
    per-step ``self.log`` costs more than an SZT step): ``train/loss_noisy`` (the training
    objective, noise on) and ``train/acc_noisy``, and from the noiseless validation pass
    ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``. The module logs nothing itself: the
    callbacks turn records into logged values.
    """

    def __init__(self, net: Network, optimizer: Callable[..., torch.optim.Optimizer]) -> None:
        super().__init__()
        if not isinstance(net, Network):
            raise TypeError(f"net must be an infoflow Network, got {type(net).__name__}")
        self.net = net
        self.optimizer_factory = optimizer
        self.automatic_optimization = False
        self._sums: dict[str, torch.Tensor] = {}
        self._record: dict[str, list[float]] = {}

    @property
    def seeds(self) -> list[int]:
        """The members' seeds, in member order."""
        return self.net.seeds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (K, B, n_classes) of inputs (K, B, ...)."""
        return self.net(x)

    @staticmethod
    def _member_losses(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's mean cross-entropy, (K,)."""
        # (K, C, B) is cross_entropy's (N, C, d) layout, and an MLPEnsemble's own (its logits
        # (K, B, C) are a transposed view): no copy.
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)

    @staticmethod
    def _member_correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Each member's number of correct answers, (K,): argmax over the classes (the first of
        equal maxima, as ``argmax``), as C elementwise steps. torch's ``argmax`` over a class
        dimension of 2 took 16 ms for an ensemble's 50 × 3482 logits here, more than the whole
        validation forward pass; these steps take 0.2 ms."""
        scores = logits.transpose(1, 2)  # (K, C, B)
        best, pred = scores[:, 0], torch.zeros_like(y)
        for c in range(1, scores.shape[1]):
            better = scores[:, c] > best
            best = torch.where(better, scores[:, c], best)
            pred = torch.where(better, c, pred)
        return (pred == y).sum(1)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):  # noqa: ANN001
        # The datamodules keep their tensors on the model's device already; skip the generic
        # collection walk Lightning would do on every step.
        x, y = batch
        return batch if x.device == device else (x.to(device), y.to(device))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.optimizer_factory(self.net.parameters())

    def _accumulate(self, name: str, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[1]
        loss_sum = self._member_losses(logits, y).detach() * n
        correct = self._member_correct(logits, y).to(loss_sum.dtype)
        stats = torch.stack([loss_sum, correct, torch.full_like(loss_sum, n)])  # (3, K)
        self._sums[name] = self._sums.get(name, 0) + stats

    def _keep_sums(self, names: list[str], epoch: int) -> None:
        for name in names:
            if name in self._sums:
                loss_sum, correct, n = self._sums.pop(name)
                self._record[f"{name}/loss"] = self._finite(loss_sum / n, f"{name} loss", epoch)
                self._record[f"{name}/acc"] = (correct / n).tolist()

    def _finite(self, losses: torch.Tensor, what: str, epoch: int) -> list[float]:
        """``losses`` (K,) as a list; a non-finite one stops the run with one line naming the
        epoch and every member that diverged (:class:`~infoflow.errors.DivergenceError`)."""
        values = losses.tolist()
        bad = {s: v for s, v in zip(self.seeds, values, strict=True) if not math.isfinite(v)}
        if bad:
            raise DivergenceError(epoch, what, bad, len(values))
        return values

    def on_fit_start(self) -> None:
        """Run the network once on two evaluation inputs: a forward that fails or returns the
        wrong shape is one line (a :class:`~infoflow.errors.ModelError`) before any training."""
        x, y = self.measurement_data()
        check_network(self.net, x[:, :2], int(y.max()) + 1)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Manual optimisation: one plain step, with the orthonormality rule right after it. Lightning's
        # automatic closure costs more per step than the whole SZT forward/backward.
        x, y = batch
        try:
            logits = self.net(x)
        except RuntimeError as exc:  # eval mode ran (on_fit_start): what only training does
            if self.global_step:
                raise
            raise ModelError(f"model: the network fails in training mode: {one_line(exc)}") from exc
        losses = self._member_losses(logits, y)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(losses.sum())  # member k's gradient is its own loss's
        opt.step()
        self.net.after_optimizer_step()  # e.g. the orthonormality rule
        # Sums stay on the device (no sync per step): loss and correct answers with noise on.
        n = y.shape[1]
        self._noisy_loss_sum += losses.detach() * n
        self._noisy_correct += self._member_correct(logits.detach(), y)
        self._noisy_count += n
        if batch_idx + 1 == self.trainer.num_training_batches:  # once per epoch: one sync
            # Before the epoch's measurements, which would meet the NaN representations.
            self._finite(self._noisy_loss_sum, "training loss", self.current_epoch + 1)

    def on_train_epoch_start(self) -> None:
        k = len(self.seeds)
        self._noisy_loss_sum = torch.zeros(k, device=self.device)
        self._noisy_correct = torch.zeros(k, device=self.device, dtype=torch.long)
        self._noisy_count = 0

    def epoch_record(self) -> dict[str, list[float]]:
        """This epoch's ``<split>/<quantity>`` values, one per member in member order
        (``train/loss_noisy``, ``train/acc_noisy`` from the training steps, noise on;
        ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc`` from the noiseless validation
        pass), handed over once: the next call returns only newer ones. The training-record
        callback writes them to ``training.csv`` and the loggers."""
        if n := getattr(self, "_noisy_count", 0):
            self._record["train/loss_noisy"] = (self._noisy_loss_sum / n).tolist()
            self._record["train/acc_noisy"] = (self._noisy_correct / n).tolist()
            self._noisy_count = 0
        record, self._record = self._record, {}
        return record

    @torch.no_grad()
    def initial_record(self) -> dict[str, list[float]]:
        """The noiseless ``train/*`` and ``val/*`` loss and accuracy before any training (epoch
        0 of ``training.csv``), one value per member; the mode is restored."""
        was_training = self.training
        self.eval()
        try:
            for loader in self.trainer.datamodule.val_dataloader():
                for x, y in loader:
                    self._accumulate(loader.name, self.net(x.to(self.device)), y.to(self.device))
            self._keep_sums(list(self._sums), epoch=0)
        finally:
            self.train(was_training)
        record, self._record = self._record, {}
        return record

    # --------------------------------------------------- what the measuring callbacks read

    def measured_network(self) -> Network:
        """The K networks to measure (:class:`infoflow.callbacks.Measurable`)."""
        return self.net

    def measurement_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's evaluation inputs (K, n, ...) and labels (K, n), from the datamodule,
        on the model's device (:class:`infoflow.callbacks.Measurable`)."""
        data = self.trainer.datamodule
        if not isinstance(data, EvaluationData):
            raise TypeError(f"{type(data).__name__} has no eval_set(): nothing to measure on")
        return data.eval_set()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if hasattr(self.net, "noise_state"):  # MLPEnsemble: the members' training-noise streams
            checkpoint["noise_generators"] = self.net.noise_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if hasattr(self.net, "load_noise_state"):
            self.net.load_noise_state(checkpoint.get("noise_generators", []))

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
        self._keep_sums(names, epoch=self.current_epoch + 1)


@torch.no_grad()
def check_network(net: Network, x: torch.Tensor, n_classes: int) -> None:
    """Raise a one-line :class:`~infoflow.errors.ModelError` unless ``net`` maps inputs x
    (K, B, ...) to logits (K, B, C) with C ≥ ``n_classes`` and gives every measured layer's
    output as (K, B, d) (checked in eval mode; the mode is restored)."""
    k, b = x.shape[:2]
    was_training = net.training
    net.eval()
    try:
        logits = net(x)
        outputs = net.layer_outputs(x, noise=False)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelError(
            f"model: the network cannot run on inputs of shape {tuple(x.shape[2:])}: "
            f"{one_line(exc)}"
        ) from exc
    finally:
        net.train(was_training)
    if logits.ndim != 3 or tuple(logits.shape[:2]) != (k, b) or logits.shape[2] < n_classes:
        raise ModelError(
            f"model: forward must return logits (batch, n_classes >= {n_classes}) for inputs of "
            f"shape {tuple(x.shape[2:])}, got {tuple(logits.shape[1:])}"
        )
    for name, out in zip(net.layer_names, outputs, strict=True):
        if out.pre_noise.ndim != 3 or tuple(out.pre_noise.shape[:2]) != (k, b):
            raise ModelError(
                f"model: layer {name} gives {tuple(out.pre_noise.shape)}, not (K, B, d)"
            )
