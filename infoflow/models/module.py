"""The LightningModule: cross-entropy training of K networks as one (an ensemble,
:mod:`infoflow.models.ensemble`; K = 1 for a single run), noiseless evaluation, and the typed
interface the measuring callbacks use (:class:`Measurement`, :class:`EnsembleMeasurement`,
:meth:`ClassifierModule.measurement`, :meth:`ClassifierModule.epoch_record`,
:meth:`ClassifierModule.weights`).

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

from infoflow.models.ensemble import MLPEnsemble, SingleNetwork
from infoflow.models.network import NoisyNetwork


@runtime_checkable
class EvaluationData(Protocol):
    """What a datamodule offers the measurements: each member's evaluation inputs and labels."""

    def eval_set(self, member: int = 0) -> tuple[torch.Tensor, torch.Tensor]: ...


class Measurement:
    """One scheduled epoch's view of one network (one ensemble member) on its evaluation set,
    shared by every measuring callback: each representation is computed at most once, on first
    use, without gradients, and kept until the next epoch. The caller sets the mode
    (``callbacks.schedule.measuring``: eval).

    Attributes:
        epoch: completed training epochs.
        inputs, labels: the evaluation set, (n, ...) and (n,), on the model's device.
        beta: the noise's standard deviation (0: a deterministic network).
        sample_fn: S_ℓ of every hidden layer for a batch of inputs, fresh noise in the earlier
            layers: the SP estimator's ``sample_fn``.
        seed, member: the member's seed (what its records carry) and its index in the ensemble.
    """

    def __init__(
        self,
        net: NoisyNetwork,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        epoch: int,
        *,
        seed: int = 0,
        member: int = 0,
    ):
        self._net = net
        self.inputs, self.labels, self.epoch = inputs, labels, epoch
        self.seed, self.member = seed, member
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


class EnsembleMeasurement:
    """One scheduled epoch's measurements of every member: ``members[k]`` is member k's
    :class:`Measurement` (its own network, evaluation set and seed). Callbacks that can batch over
    members stack their representations (:meth:`stacked`)."""

    def __init__(self, members: list[Measurement], epoch: int) -> None:
        self.members, self.epoch = members, epoch
        self.seeds = [m.seed for m in members]

    def stacked(self, name: str) -> list[torch.Tensor]:
        """Every layer's ``noiseless`` / ``pre_noise`` / ``noisy`` representations of all members,
        (K, n, d_ℓ) per layer."""
        per_member = [getattr(m, name) for m in self.members]
        return [torch.stack(layer) for layer in zip(*per_member, strict=True)]

    @property
    def labels(self) -> torch.Tensor:
        """Every member's evaluation labels, (K, n)."""
        return torch.stack([m.labels for m in self.members])


Ensemble = MLPEnsemble | SingleNetwork


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

    def __init__(
        self,
        net: Ensemble | NoisyNetwork,
        optimizer: Callable[..., torch.optim.Optimizer],
        orth_alpha: float = 0.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.net = SingleNetwork(net, seed) if isinstance(net, NoisyNetwork) else net
        self.optimizer_factory = optimizer
        self.orth_alpha = orth_alpha
        self.automatic_optimization = False
        self._sums: dict[str, torch.Tensor] = {}
        self._record: dict[str, list[float]] = {}
        self._measurement: EnsembleMeasurement | None = None

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

    def _keep_sums(self, names: list[str]) -> None:
        for name in names:
            if name in self._sums:
                loss_sum, correct, n = self._sums.pop(name)
                self._record[f"{name}/loss"] = (loss_sum / n).tolist()
                self._record[f"{name}/acc"] = (correct / n).tolist()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        # Manual optimisation: one plain step, with the orthonormality rule right after it. Lightning's
        # automatic closure costs more per step than the whole SZT forward/backward.
        x, y = batch
        logits = self.net(x)
        losses = self._member_losses(logits, y)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(losses.sum())  # member k's gradient is its own loss's
        opt.step()
        if self.orth_alpha > 0:
            self.net.orthonormalize_(self.orth_alpha)
        # Sums stay on the device (no sync per step): loss and correct answers with noise on.
        n = y.shape[1]
        self._noisy_loss_sum += losses.detach() * n
        self._noisy_correct += self._member_correct(logits.detach(), y)
        self._noisy_count += n

    def on_train_epoch_start(self) -> None:
        k = len(self.seeds)
        self._noisy_loss_sum = torch.zeros(k, device=self.device)
        self._noisy_correct = torch.zeros(k, device=self.device, dtype=torch.long)
        self._noisy_count = 0
        self._measurement = None  # the last epoch's representations: free them

    def on_train_end(self) -> None:
        self._measurement = None

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

    def measurement(self, epoch: int) -> EnsembleMeasurement:
        """The shared :class:`EnsembleMeasurement` of ``epoch``, every member on its evaluation
        set: built on the first call of a training step, the same object for every later call."""
        m = self._measurement
        if m is not None and m.epoch == epoch:
            return m
        data = self.trainer.datamodule
        if not isinstance(data, EvaluationData):
            raise TypeError(f"{type(data).__name__} has no eval_set(): nothing to measure on")
        members = [
            Measurement(self.net.member(k), *data.eval_set(k), epoch, seed=seed, member=k)
            for k, seed in enumerate(self.seeds)
        ]
        self._measurement = EnsembleMeasurement(members, epoch)
        return self._measurement

    def weights(self) -> list[torch.Tensor]:
        """The weight of every layer in order, hidden layers then the read-out; stacked
        (K, out, in) for an :class:`MLPEnsemble` (``net.stacked``)."""
        return self.net.weights()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["noise_generators"] = self.net.noise_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
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
        self._keep_sums(names)
