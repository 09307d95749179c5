"""The LightningModule: cross-entropy training of a NoisyNetwork, noiseless evaluation, and the
typed interface the measuring callbacks use (:class:`Measurement`, :meth:`ClassifierModule.measurement`,
:meth:`ClassifierModule.epoch_record`, :meth:`ClassifierModule.weights`).

Models import no estimators: a :class:`Measurement` holds representations and a sample function,
which the callbacks hand to the estimators.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from infoflow.models.network import NoisyNetwork


@runtime_checkable
class EvaluationData(Protocol):
    """What a datamodule offers the measurements: the evaluation inputs and labels."""

    def eval_set(self) -> tuple[torch.Tensor, torch.Tensor]: ...


class Measurement:
    """One scheduled epoch's view of the network on the evaluation set, shared by every measuring
    callback: each representation is computed at most once, on first use, without gradients, and
    kept until the next epoch. The caller sets the mode (``callbacks.schedule.measuring``: eval).

    Attributes:
        epoch: completed training epochs.
        inputs, labels: the evaluation set, (n, ...) and (n,), on the model's device.
        beta: the noise's standard deviation (0: a deterministic network).
        sample_fn: S_ℓ of every hidden layer for a batch of inputs, fresh noise in the earlier
            layers: the SP estimator's ``sample_fn``.
    """

    def __init__(self, net: NoisyNetwork, inputs: torch.Tensor, labels: torch.Tensor, epoch: int):
        self._net = net
        self.inputs, self.labels, self.epoch = inputs, labels, epoch
        self.beta: float = net.beta
        self.sample_fn: Callable[[torch.Tensor], list[torch.Tensor]] = net.sample_pre_noise

    @cached_property
    @torch.no_grad()
    def noiseless(self) -> list[torch.Tensor]:
        """Every hidden layer's S_ℓ with the noise off everywhere, flattened to (n, d_ℓ)."""
        return [o.pre_noise for o in self._net.representations(self.inputs, noise=False)]

    @cached_property
    @torch.no_grad()
    def _noisy_pass(self) -> list:
        return self._net.representations(self.inputs, noise=True)

    @property
    def pre_noise(self) -> list[torch.Tensor]:
        """Every hidden layer's S_ℓ with noise on in the earlier layers (one noisy pass), (n, d_ℓ)."""
        return [o.pre_noise for o in self._noisy_pass]

    @property
    def noisy(self) -> list[torch.Tensor]:
        """Every hidden layer's T_ℓ = S_ℓ + βZ of the same noisy pass, (n, d_ℓ)."""
        return [o.noisy for o in self._noisy_pass]

    @cached_property
    @torch.no_grad()
    def widths(self) -> list[int]:
        """d_ℓ of every hidden layer (one input propagated)."""
        return [
            o.pre_noise.shape[1] for o in self._net.hidden_outputs(self.inputs[:1], noise=False)[0]
        ]


class ClassifierModule(pl.LightningModule):
    """Trains ``net`` with noise on; validates with noise off (unless ``noise_at_eval``).

    Summed on the device and handed over once per epoch by :meth:`epoch_record` (a per-step
    ``self.log`` costs more than an SZT step): ``train/loss_noisy`` (the training objective, noise
    on) and ``train/acc_noisy``, and from the noiseless validation pass ``train/loss``,
    ``train/acc``, ``val/loss``, ``val/acc``. The module logs nothing itself: the callbacks turn
    records into logged values.
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
        self._record: dict[str, float] = {}
        self._measurement: Measurement | None = None

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

    def _keep_sums(self, names: list[str]) -> None:
        for name in names:
            if name in self._sums:
                loss_sum, correct, n = self._sums.pop(name).tolist()
                self._record.update({f"{name}/loss": loss_sum / n, f"{name}/acc": correct / n})

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Manual optimisation: one plain step, with the orthonormality rule right after it. Lightning's
        # automatic closure costs more per step than the whole SZT forward/backward.
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        if self.orth_alpha > 0:
            self.net.orthonormalize_(self.orth_alpha)
        # Sums stay on the device (no sync per step): loss and correct answers with noise on.
        self._noisy_loss_sum += loss.detach() * len(y)
        self._noisy_correct += (logits.detach().argmax(1) == y).sum()
        self._noisy_count += len(y)

    def on_train_epoch_start(self) -> None:
        self._noisy_loss_sum = torch.zeros((), device=self.device)
        self._noisy_correct = torch.zeros((), device=self.device, dtype=torch.long)
        self._noisy_count = 0
        self._measurement = None  # the last epoch's representations: free them

    def on_train_end(self) -> None:
        self._measurement = None

    def epoch_record(self) -> dict[str, float]:
        """This epoch's ``<split>/<quantity>`` values (``train/loss_noisy``, ``train/acc_noisy``
        from the training steps, noise on; ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``
        from the noiseless validation pass), handed over once: the next call returns only newer
        ones. The training-record callback writes them to ``training.csv`` and the loggers."""
        if n := getattr(self, "_noisy_count", 0):
            self._record["train/loss_noisy"] = self._noisy_loss_sum.item() / n
            self._record["train/acc_noisy"] = self._noisy_correct.item() / n
            self._noisy_count = 0
        record, self._record = self._record, {}
        return record

    def measurement(self, epoch: int) -> Measurement:
        """The shared :class:`Measurement` of ``epoch`` on the datamodule's evaluation set: built
        on the first call of a training step, the same object for every later call."""
        m = self._measurement
        if m is not None and m.epoch == epoch:
            return m
        data = self.trainer.datamodule
        if not isinstance(data, EvaluationData):
            raise TypeError(f"{type(data).__name__} has no eval_set(): nothing to measure on")
        x, y = data.eval_set()
        self._measurement = Measurement(self.net, x, y, epoch)
        return self._measurement

    def weights(self) -> list[torch.Tensor]:
        """The weight of every layer in order: hidden layers, then the read-out."""
        return [layer.weight for layer in self.net.linear_layers()] + [self.net.head.weight]

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
        self._keep_sums(names)
