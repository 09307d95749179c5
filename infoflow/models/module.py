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
from functools import partial
from typing import Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.plugins.precision import Precision
from pytorch_lightning.strategies import SingleDeviceStrategy
from pytorch_lightning.utilities.model_helpers import is_overridden

from infoflow.data.batches import Epoch
from infoflow.errors import DivergenceError, ModelError, one_line
from infoflow.models.flat_adam import FlatAdam
from infoflow.models.network import Network

#: Lightning's hooks around a step that the whole-epoch path calls itself (those that exist).
STEP_HOOKS = ("on_before_backward", "on_after_backward", "on_before_optimizer_step")


@runtime_checkable
class EvaluationData(Protocol):
    """What a datamodule offers the measurements: every member's evaluation inputs (K, n, ...)
    and labels (K, n)."""

    def eval_set(self) -> tuple[torch.Tensor, torch.Tensor]: ...


class ClassifierModule(pl.LightningModule):
    """Trains ``net``, K networks as one (:mod:`infoflow.models.mlp`), with noise on;
    validates with noise off (unless ``noise_at_eval``). Batches are (K, B, ...): member k sees
    its own data; the loss is the sum of the members' mean losses, so no member's gradient
    touches another's.

    Summed on the device per member and handed over once per epoch by :meth:`epoch_record` (a
    per-step ``self.log`` costs more than an SZT step): ``train/loss_noisy`` (the training
    objective, noise on) and ``train/acc_noisy``, and from the noiseless validation pass
    ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``. The module logs nothing itself: the
    callbacks turn records into logged values.

    Whole epochs: with an in-memory datamodule that serves them
    (:meth:`~infoflow.data.datamodule.ArrayDataModule.serve_whole_epochs`, asked in :meth:`setup`
    when training on one device in plain precision, epochs counted in epochs), one Lightning
    step trains a whole :class:`~infoflow.data.batches.Epoch`: the same minibatches in the same
    order, each through the network's own forward and autograd, then the noiseless evaluation at
    the epochs Lightning's validation loop would run it (every ``check_val_every_n_epoch``-th)
    and the last. Per minibatch it does what Lightning's wrappers would, without their cost
    (~0.25 ms a step, as much as an SZT step): the callbacks' and the module's
    ``on_before_backward``, ``on_after_backward`` (the gradient-phase callback's per-minibatch
    sums) and ``on_before_optimizer_step`` hooks, ``self.backward``, the optimizer's step (torch's
    Adam as :class:`~infoflow.models.flat_adam.FlatAdam` on a flat parameter vector: the same
    bits), ``trainer.global_step`` counted per minibatch. An :class:`MLPEnsemble
    <infoflow.models.mlp.MLPEnsemble>` draws each epoch's training noise ahead in one draw per
    member (the same numbers). Lightning's validation hooks do not run then. Otherwise (other
    data, several devices, mixed precision, ``max_steps``): one minibatch per Lightning step,
    validated by Lightning's loop.
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
        self._whole_epochs = False
        self._flat_adam: FlatAdam | None = None
        self._hooks: dict[str, list[Callable]] = {name: [] for name in STEP_HOOKS}

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
        if isinstance(batch, Epoch):
            x, y, size = batch
            return batch if x.device == device else Epoch(x.to(device), y.to(device), size)
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

    def setup(self, stage: str) -> None:
        """Ask the datamodule for whole epochs where one step per epoch is safe (see the class)."""
        serve = getattr(self.trainer.datamodule, "serve_whole_epochs", None)
        fit = stage == "fit" and takes_whole_epochs(self.trainer)
        self._whole_epochs = bool(serve is not None and serve(fit))

    def on_train_start(self) -> None:
        # After the optimizer's state is restored from a checkpoint: FlatAdam carries it over.
        self._flat_adam = None
        if self._whole_epochs and hasattr(self.net, "flat_parameters"):
            flat, _ = self.net.flat_parameters()
            opt = self.optimizers(use_pl_optimizer=False)
            self._flat_adam = FlatAdam.attach(opt, list(self.net.parameters()), flat)
        self._hooks = {name: self._hook_calls(name) for name in STEP_HOOKS}

    def _hook_calls(self, name: str) -> list[Callable]:
        """The callbacks' and this module's own ``name`` hooks that do something, in Lightning's
        order (callbacks first), bound to the trainer and module as Lightning calls them."""
        calls: list[Callable] = [
            partial(getattr(cb, name), self.trainer, self)
            for cb in self.trainer.callbacks
            if is_overridden(name, cb, pl.Callback)
        ]
        if is_overridden(name, self, pl.LightningModule):
            calls.append(getattr(self, name))
        return calls

    def training_step(
        self, batch: Epoch | tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> None:
        # Manual optimisation: one plain step, with the orthonormality rule right after it. Lightning's
        # automatic closure costs more per step than the whole SZT forward/backward.
        if isinstance(batch, Epoch):
            self._train_epoch(batch)
            return
        x, y = batch
        logits, losses = self._training_losses(x, y)
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(losses.sum())  # member k's gradient is its own loss's
        opt.step()
        self.net.after_optimizer_step()  # e.g. the orthonormality rule
        self._noisy_correct += self._member_correct(logits.detach(), y)
        self._noisy_count += y.shape[1]
        if batch_idx + 1 == self.trainer.num_training_batches:  # once per epoch: one sync
            self._finite(self._noisy_loss_sum, "training loss", self.current_epoch + 1)

    def _training_losses(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (K, B, C) and each member's loss (K,) with noise on; the noisy loss summed."""
        try:
            logits = self.net(x)
        except RuntimeError as exc:  # eval mode ran (on_fit_start): what only training does
            if self.global_step:
                raise
            raise ModelError(f"model: the network fails in training mode: {one_line(exc)}") from exc
        losses = self._member_losses(logits, y)
        # Sums stay on the device (no sync per step): loss and correct answers with noise on.
        self._noisy_loss_sum.add_(losses.detach() * y.shape[1])  # in place: no module setattr
        return logits, losses

    def _train_epoch(self, epoch: Epoch) -> None:
        """Every minibatch of ``epoch`` in order, then the noiseless evaluation when it is due."""
        if hasattr(self.net, "draw_noise_ahead"):
            self.net.draw_noise_ahead([e - a for a, e in epoch.spans()], epoch.x.device)
        opt = self.optimizers(use_pl_optimizer=False)
        scores = [self._minibatch_step(x, y, opt) for x, y in epoch.minibatches()]
        # Correct answers are integers: counted once per epoch, the same sums as per step.
        self._noisy_correct += self._member_correct(torch.cat(scores, 2).transpose(1, 2), epoch.y)
        self._noisy_count += epoch.y.shape[1]
        # One sync per epoch, before its evaluation and measurements meet NaN representations.
        self._finite(self._noisy_loss_sum, "training loss", self.current_epoch + 1)
        if self._evaluation_due():
            self._evaluate(self.current_epoch + 1)

    def _minibatch_step(
        self, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer
    ) -> torch.Tensor:
        """One minibatch as Lightning's manual_backward and optimizer wrappers would run it, hooks
        and step count included; returns its logits as scores (K, C, B)."""
        logits, losses = self._training_losses(x, y)
        flat = self.net.flat_parameters() if hasattr(self.net, "flat_parameters") else None
        if flat is not None:  # zeroed in place: the gradients stay views of the flat vector
            flat[1].zero_()
        else:
            opt.zero_grad()
        loss = losses.sum()  # member k's gradient is its own loss's
        for hook in self._hooks["on_before_backward"]:
            hook(loss)
        self.backward(loss)
        for hook in self._hooks["on_after_backward"]:
            hook()
        for hook in self._hooks["on_before_optimizer_step"]:
            hook(opt)
        progress = self.trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress
        progress.increment_ready()  # trainer.global_step counts optimizer steps
        if self._flat_adam is not None and flat is not None:
            self._flat_adam.step(*flat)
        else:
            opt.step()
        progress.increment_completed()
        self.net.after_optimizer_step()  # e.g. the orthonormality rule
        return logits.detach().transpose(1, 2)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients. A network with a flat gradient vector (an MLPEnsemble) has its
        gradients zeroed in place whatever ``set_to_none``: they stay views of the vector that
        FlatAdam steps from (Lightning calls this before validating and before training)."""
        if hasattr(self.net, "flat_parameters"):
            self.net.flat_parameters()[1].zero_()
            return
        super().zero_grad(set_to_none)

    def _evaluation_due(self) -> bool:
        """Whether Lightning's validation loop would run after this epoch (every
        ``check_val_every_n_epoch``-th, none with ``limit_val_batches=0``), or it is the last."""
        t = self.trainer
        epoch, every = t.current_epoch + 1, t.check_val_every_n_epoch
        if not t.limit_val_batches:
            return False
        return every is None or epoch % every == 0 or epoch == t.max_epochs or t.should_stop

    def _evaluation_loaders(self) -> list:
        data = self.trainer.datamodule
        get = getattr(data, "evaluation_loaders", None) or data.val_dataloader
        return get()

    @torch.no_grad()
    def _evaluate(self, epoch: int) -> None:
        """The noiseless pass over every evaluation loader (``train``, ``val``, …: the validation
        loop's work) into the record; the mode is restored."""
        was_training = self.training
        self.eval()
        try:
            loaders = self._evaluation_loaders()
            for loader in loaders:
                for x, y in loader:
                    self._accumulate(loader.name, self.net(x.to(self.device)), y.to(self.device))
            self._keep_sums([loader.name for loader in loaders], epoch)
        finally:
            self.train(was_training)

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

    def initial_record(self) -> dict[str, list[float]]:
        """The noiseless ``train/*`` and ``val/*`` loss and accuracy before any training (epoch
        0 of ``training.csv``), one value per member; the mode is restored."""
        self._evaluate(epoch=0)
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


def takes_whole_epochs(trainer: pl.Trainer) -> bool:
    """Whether one Lightning step may train a whole epoch: one device (under DDP each backward
    must pass through the wrapped module), plain precision (no loss scaling), and no limit or
    interval counted in steps or in fractions of an epoch."""
    return (
        isinstance(trainer.strategy, SingleDeviceStrategy)
        and type(trainer.precision_plugin) is Precision
        and trainer.max_steps == -1
        and trainer.limit_train_batches == 1.0
        and trainer.val_check_interval == 1.0
        and not trainer.overfit_batches
    )


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
