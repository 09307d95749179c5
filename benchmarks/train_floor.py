"""The training-speed floor of the SZT nets: hand-written loops doing infoflow's work per epoch,
the variants that go faster while doing the same work, and the same loops inside Lightning.

    python benchmarks/train_floor.py --epochs 300 --repeats 5 [--sections single,lightning,...]

The work of one epoch, for each of K members (K = 1: a single run), exactly as infoflow's
ClassifierModule + SZTDataModule: the 12-10-7-5-4-3-2 tanh net with Gaussian noise of std β after
every hidden activation, the member's training split (3277 of the 4096 patterns for 80 %) shuffled
by its own generator, minibatches of B, cross-entropy, Adam (lr 4e-4), the noisy loss and correct
answers summed per minibatch; then a noiseless pass over the training and the validation split
(loss and accuracy) and the epoch's record handed over once (one ``tolist``). Initial weights,
noise generators and minibatch order are the app's (``MLPEnsemble``'s init and noise streams, the
datamodule's generators), so a loop and ``python -m infoflow`` of the same seed train the same
network (section ``check``).

A :class:`Design` picks how the same work is done (layout, parameter storage, Adam kernel, when
noise is drawn, backward); :class:`Loop` runs it. Named designs: ``CAREFUL`` (what a competent
user writes), ``APP`` (infoflow's math today, bit-identical to it), ``FAST_AUTOGRAD`` (every
trick that keeps autograd), ``FASTEST`` (hand backward, fused Adam kernel), ``EXACT`` (hand
backward, torch's default Adam math: bit-identical to ``APP``), ``PROPOSED`` (``EXACT`` with the
numpy row gather and the records summed once per epoch) and ``PROPOSED_NP`` (with numpy's tanh). Sections (each prints a table, ms per epoch,
median over ``--repeats`` interleaved repeats, start-up and ``--warmup`` epochs excluded):

- ``single``: one net, B = 256, β = 0.005, from the careful baseline to the fastest design;
- ``lightning``: the same loops inside ``pytorch_lightning.Trainer`` (one epoch per step or one
  minibatch per step; raw vs ``manual_backward`` vs ``LightningOptimizer``), and infoflow's own
  ClassifierModule;
- ``callbacks``: what infoflow's per-epoch callbacks and loggers (training record, CSV, W&B
  offline, checkpoint every 10th epoch, progress bar) add to the proposed epoch step;
- ``ensemble``: K = 8, 50 stacked members, B = 256 / 512, β = 0.005 / 0, vs K separate loops;
- ``tishby``: the tishby_szt_sweep jobs (K = 50, B = 512, β = 0, fractions 5/45/85 %,
  validation every 10th epoch);
- ``check``: which designs train bit-identically to infoflow (and which only to float tolerance);
- ``compile``: ``torch.compile`` of the forward and loss (slow to compile; not in the default).

One torch thread (``--threads``). Load averages before and after are printed: on a shared
machine, compare rows of one run, not runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from infoflow.data.datamodule import SZTDataModule
from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule
from infoflow.models.network import NOISE_STREAM, member_seed

HIDDEN = (10, 7, 5, 4, 3)
#: The record's rows, in :meth:`Loop.record`'s order (infoflow's ``epoch_record`` names).
RECORD = ("train/loss_noisy", "train/acc_noisy", "train/loss", "train/acc", "val/loss", "val/acc")


# ---------------------------------------------------------------------------------------------
# The task: each member's splits and settings


@dataclass
class Task:
    """Training data (K, n, 12) / (K, n) and validation data (K, m, 12) / (K, m) of K members
    (member k: seed ``seeds[k]``, its own split), and the training settings."""

    seeds: list[int]
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    batch: int = 256
    beta: float = 0.005
    lr: float = 4e-4
    train_fraction: float = 0.8

    @property
    def k(self) -> int:
        return len(self.seeds)

    @property
    def steps(self) -> int:
        return -(-self.x_train.shape[1] // self.batch)


_DATA_CACHE: dict[tuple, tuple[Tensor, ...]] = {}


def szt_task(
    k: int = 1, *, batch: int = 256, beta: float = 0.005, train_fraction: float = 0.8, seed: int = 0
) -> Task:
    """The SZT task as infoflow's datamodule makes it: members of seeds seed … seed+k−1."""
    key = (k, train_fraction, seed)
    if key not in _DATA_CACHE:
        dm = SZTDataModule(train_fraction=train_fraction, seeds=range(seed, seed + k))
        dm.setup()
        t = dm.tensors
        _DATA_CACHE[key] = (t["x_train"], t["y_train"], t["x_val"], t["y_val"])
    x, y, xv, yv = _DATA_CACHE[key]
    seeds = list(range(seed, seed + k))
    return Task(seeds, x, y, xv, yv, batch=batch, beta=beta, train_fraction=train_fraction)


# ---------------------------------------------------------------------------------------------
# Designs: how the same work is done


@dataclass(frozen=True)
class Design:
    """One way of doing an epoch's work.

    layout: ``batch`` — activations (B, d), ``F.linear`` (a plain nn.Linear net; K = 1 only);
        ``feature`` — (K, d, B), ``torch.baddbmm`` with stacked weights (infoflow's MLPEnsemble).
    params: ``separate`` — one tensor per weight and bias; ``flat`` — views of one buffer, and
        their gradients views of one gradient buffer, so Adam sees one tensor.
    adam: ``default`` (torch's for-loop Adam on CPU), ``foreach``, ``fused`` (torch.optim.Adam's
        kernels); on the flat buffer only: ``raw-fused`` (``torch._fused_adam_`` called
        directly), ``raw-default`` (torch's for-loop Adam's six tensor ops written out: its
        bits, without ``Optimizer.step``'s Python).
    noise: ``step`` — per member and step one ``randn(31, B)`` from its generator (infoflow's
        stream); ``epoch`` — the same numbers in one draw per member and epoch; ``layer`` —
        ``randn_like`` per layer (what a user writes; another stream of the same distribution).
    gather: ``step`` — ``x[idx]`` per minibatch; ``epoch`` — ``x[order]`` once (one
        ``index_select``), then slices; ``numpy`` — the same rows copied by ``np.take`` on
        the rows viewed as 48-byte records (a plain copy, 3x faster than torch's row gather
        for 50 members).
    tanh: ``torch`` or ``numpy`` (``np.tanh`` in place on the tensor's memory, no autograd:
        hand backward and evaluation only; as accurate, other bits, and much faster here).
    backward: ``autograd`` or ``hand`` (the same kernels autograd calls, no graph; feature/flat).
    evaluate: ``no_grad`` / ``inference`` — a forward pass per split; ``merged`` — the two
        splits as one pre-transposed batch, under inference_mode.
    records: ``step`` — the noisy loss and correct answers summed per minibatch (infoflow);
        ``epoch`` — each minibatch's logits kept, the sums taken once per epoch (equal to
        float tolerance: another summation order).
    grad_sums: add g and g² to running sums after every minibatch (the gradient-phase
        callback's work in a measured epoch).
    """

    layout: str = "feature"
    params: str = "separate"
    adam: str = "default"
    noise: str = "step"
    gather: str = "epoch"
    tanh: str = "torch"
    backward: str = "autograd"
    evaluate: str = "no_grad"
    records: str = "step"
    grad_sums: bool = False


#: The work infoflow does today (ClassifierModule + MLPEnsemble + TensorBatches), in a plain loop.
APP = Design()
#: What a competent PyTorch user writes for one net (batch-major nn.Linear, per-layer randn_like).
CAREFUL = Design(layout="batch", noise="layer", gather="step")
#: Every trick that keeps autograd (so ``on_after_backward`` and any nn.Module still work).
FAST_AUTOGRAD = Design(params="flat", adam="raw-fused", noise="epoch", evaluate="merged")
#: The floor found here: FAST_AUTOGRAD with the backward written out.
FASTEST = replace(FAST_AUTOGRAD, backward="hand")
#: The fastest design that trains bit-identically to infoflow today (torch's default Adam math).
EXACT = replace(FASTEST, adam="raw-default")
#: EXACT with numpy's row gather and the records summed once per epoch: the same training to
#: the bit, the records to float tolerance. What this benchmark proposes for infoflow.
PROPOSED = replace(EXACT, gather="numpy", records="epoch")
#: PROPOSED with numpy's tanh: as accurate, other bits; pays off for large ensembles.
PROPOSED_NP = replace(PROPOSED, tanh="numpy")


def _adam_kwargs(adam: str) -> dict:
    return {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[adam]


class Loop:
    """Trains a :class:`Task` as ``design`` says; :meth:`epoch` does one epoch's work and
    returns its record (one list of floats, one ``tolist``)."""

    def __init__(self, task: Task, design: Design) -> None:
        d = self.design = design
        self.task = task
        if d.layout == "batch" and task.k != 1:
            raise ValueError("the batch layout is one net (K = 1)")
        if d.backward == "hand" and (d.params != "flat" or d.layout != "feature"):
            raise ValueError("the hand backward is written for the flat feature-major design")
        if d.adam.startswith("raw") and d.params != "flat":
            raise ValueError("the raw Adams run on the flat buffer")
        if d.tanh == "numpy" and d.backward != "hand":
            raise ValueError("numpy's tanh has no autograd: hand backward only")
        if d.records == "epoch" and d.gather == "step":
            raise ValueError("records per epoch need the epoch's gathered labels")
        self.k, self.n, self.b = task.k, task.x_train.shape[1], task.batch
        self.widths = [12, *HIDDEN, 2]
        self.noise_width = sum(HIDDEN)
        self._init_params(MLPEnsemble(task.seeds, hidden=HIDDEN, beta=task.beta))
        self._init_optimizer()
        self.data_gens = [torch.Generator().manual_seed(s) for s in task.seeds]
        self.noise_gens = [
            torch.Generator().manual_seed(member_seed(s, NOISE_STREAM)) for s in task.seeds
        ]
        self.betas = torch.full((self.k, 1, 1), task.beta)
        self.rows = torch.arange(self.k)[:, None]
        self.row_offsets = self.rows * self.n  # member k's rows of x_train viewed as (K·n, 12)
        self.z_epoch = torch.empty(self.k, self.noise_width * self.n)
        # Each input row as one fixed-size numpy record: np.take copies records in a tight loop.
        x_rows = task.x_train.reshape(self.k * self.n, -1).contiguous().numpy()
        self.x_records = x_rows.view(np.dtype((np.void, x_rows.shape[1] * 4))).reshape(-1)
        self.y_numpy = task.y_train.reshape(-1).contiguous().numpy()
        self.backward_fn: Callable[[Tensor], None] = Tensor.backward
        self.optimizer_step: Callable[[], object] = self._adam_step
        if d.evaluate == "merged":  # the noiseless pass's inputs never change: lay them out once
            x_eval = torch.cat([task.x_train, task.x_val], dim=1)
            self.x_eval = (
                x_eval.transpose(1, 2).contiguous() if d.layout == "feature" else x_eval[0]
            )
            self.y_eval = torch.cat([task.y_train, task.y_val], dim=1)
        self.g1 = self.g2 = None

    # -- parameters and optimizer --------------------------------------------------------------

    def _init_params(self, init: MLPEnsemble) -> None:
        d = self.design
        tensors = []
        for layer in init.layers:
            w, b = layer.weight.detach(), layer.bias.detach()
            tensors += [w[0], b[0]] if d.layout == "batch" else [w, b]
        grad = d.backward == "autograd"
        if d.params == "separate":
            self.params = [torch.nn.Parameter(t.clone()) for t in tensors]
            self.flat = None
            return
        sizes = [t.numel() for t in tensors]
        self.flat = torch.cat([t.reshape(-1) for t in tensors])
        self.flat_grad = torch.zeros_like(self.flat)
        views = [v.view_as(t) for v, t in zip(self.flat.split(sizes), tensors, strict=True)]
        self.grad_views = [
            v.view_as(t) for v, t in zip(self.flat_grad.split(sizes), tensors, strict=True)
        ]
        if grad:
            # Leaves whose data and grad alias the flat buffers: autograd accumulates in place
            # into an existing .grad (checked in check_aliasing), Adam updates the buffer.
            self.params = []
            for v, g in zip(views, self.grad_views, strict=True):
                p = torch.nn.Parameter(torch.empty(0))
                p.data, p.grad = v, g
                self.params.append(p)
        else:
            self.params = views
        self.flat_param = torch.nn.Parameter(self.flat)  # shares the storage
        self.flat_param.grad = self.flat_grad
        if not grad:  # the views the hand step uses, made once (they alias the buffers)
            self.w, self.w_t = views[0::2], [w.transpose(1, 2) for w in views[0::2]]
            self.b_col = [b.unsqueeze(2) for b in views[1::2]]

    def _init_optimizer(self) -> None:
        d = self.design
        if d.adam.startswith("raw"):
            self.opt = None
            self.exp_avg = torch.zeros_like(self.flat)
            self.exp_avg_sq = torch.zeros_like(self.flat)
            self.denom = torch.zeros_like(self.flat)
            self.step_t = torch.zeros((), dtype=torch.float32)
            self.step_n = 0
            return
        target = [self.flat_param] if self.flat is not None else self.params
        self.opt = torch.optim.Adam(target, lr=self.task.lr, **_adam_kwargs(d.adam))

    def _adam_step(self) -> None:
        if self.opt is not None:
            self.opt.step()
            return
        if self.design.adam == "raw-default":
            self._default_adam_step()
            return
        self.step_t.add_(1)
        torch._fused_adam_(
            [self.flat],
            [self.flat_grad],
            [self.exp_avg],
            [self.exp_avg_sq],
            [],
            [self.step_t],
            lr=self.task.lr,
            beta1=0.9,
            beta2=0.999,
            weight_decay=0.0,
            eps=1e-8,
            amsgrad=False,
            maximize=False,
        )

    def _default_adam_step(self, beta1: float = 0.9, beta2: float = 0.999) -> None:
        """torch.optim.Adam's for-loop step (``_single_tensor_adam``, no weight decay, not
        capturable) on the flat buffer: the same operations with the same scalars, so the same
        bits; only the denominator goes into a kept buffer."""
        g, m, v = self.flat_grad, self.exp_avg, self.exp_avg_sq
        self.step_n += 1
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = self.task.lr / (1 - beta1**self.step_n)
        bias_correction2_sqrt = (1 - beta2**self.step_n) ** 0.5
        torch.sqrt(v, out=self.denom).div_(bias_correction2_sqrt).add_(1e-8)
        self.flat.addcdiv_(m, self.denom, value=-step_size)

    def _zero_grad(self) -> None:
        if self.flat is not None:
            self.flat_grad.zero_()
        else:
            for p in self.params:
                p.grad = None

    def parameters_flat(self) -> Tensor:
        """All parameters as one vector, member-major per tensor (for comparisons)."""
        return torch.cat([p.detach().reshape(-1) for p in self.params])

    def track_gradients(self, on: bool) -> None:
        """Start (or stop) the per-minibatch sums of g and g² (the gradient-phase callback)."""
        if not on:
            self.g1 = self.g2 = None
        elif self.flat is not None:
            self.g1, self.g2 = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        else:
            self.g1 = [torch.zeros_like(p) for p in self.params]
            self.g2 = [torch.zeros_like(p) for p in self.params]

    def _add_gradient_sums(self) -> None:
        if self.flat is not None:
            self.g1.add_(self.flat_grad)
            self.g2.addcmul_(self.flat_grad, self.flat_grad)
            return
        for s1, s2, p in zip(self.g1, self.g2, self.params, strict=True):
            s1.add_(p.grad)
            s2.addcmul_(p.grad, p.grad)

    # -- one epoch -----------------------------------------------------------------------------

    def begin_epoch(self) -> None:
        """Shuffle (each member by its generator), draw the epoch's noise, reset the sums."""
        d, t = self.design, self.task
        order = torch.stack([torch.randperm(self.n, generator=g) for g in self.data_gens])
        if d.gather != "step":
            flat_rows = (order + self.row_offsets).view(-1)
            table = t.x_train.view(-1, t.x_train.shape[2])
            if d.gather == "numpy":
                rows = np.take(self.x_records, flat_rows.numpy())  # one record per row
                self.xe = torch.from_numpy(rows.view(np.float32)).view(self.k, self.n, -1)
                ye = np.take(self.y_numpy, flat_rows.numpy())
                self.ye = torch.from_numpy(ye).view(self.k, self.n)
            else:
                self.xe = table.index_select(0, flat_rows).view(self.k, self.n, -1)
            if d.gather != "numpy":
                self.ye = t.y_train.view(-1).index_select(0, flat_rows).view(self.k, self.n)
            self.ye_bool = self.ye.bool()
        else:
            self.order = order
        if d.noise == "epoch" and t.beta > 0:
            for z, g in zip(self.z_epoch, self.noise_gens, strict=True):
                z.normal_(generator=g)  # the numbers of randn(31·n), drawn in place
            self.z_epoch.mul_(self.betas[:, 0])
        self.stash: list[Tensor] = []
        self.loss_sum = torch.zeros(self.k)
        self.correct = torch.zeros(self.k, dtype=torch.long)

    def _batch(self, s: int) -> tuple[Tensor, Tensor, int, int]:
        a = s * self.b
        e = min(a + self.b, self.n)
        if self.design.gather != "step":
            return self.xe[:, a:e], self.ye[:, a:e], a, e
        idx = self.order[:, a:e]
        return self.task.x_train[self.rows, idx], self.task.y_train[self.rows, idx], a, e

    def _noise(self, a: int, e: int) -> list[Tensor] | None:
        """β·Z of every hidden layer for rows a:e, feature-major (K, d_ℓ, B) each."""
        d, t = self.design, self.task
        if t.beta == 0 or d.noise == "layer":
            return None
        if d.noise == "epoch":
            z = self.z_epoch[:, self.noise_width * a : self.noise_width * e]
            return z.view(self.k, self.noise_width, e - a).split(HIDDEN, dim=1)
        z = torch.stack(
            [torch.randn(self.noise_width, e - a, generator=g) for g in self.noise_gens]
        )
        return (self.betas * z).split(HIDDEN, dim=1)

    def forward(self, x: Tensor, noise: list[Tensor] | None, *, train: bool) -> Tensor:
        """Logits, (K, C, B) feature-major or (B, C) for the batch layout, of inputs
        ``_inputs(x)``: (K, 12, B) feature-major, (B, 12) batch-major."""
        p = self.params
        per_layer = train and self.design.noise == "layer" and self.task.beta > 0
        if self.design.layout == "batch":
            t = x
            for i in range(len(HIDDEN)):
                t = torch.tanh(F.linear(t, p[2 * i], p[2 * i + 1]))
                if per_layer:
                    t = t + self.task.beta * torch.randn(t.shape, generator=self.noise_gens[0])
                elif noise is not None:
                    t = t + noise[i][0].T
            return F.linear(t, p[-2], p[-1])
        t = x
        for i in range(len(HIDDEN)):
            t = self._tanh(torch.baddbmm(p[2 * i + 1].unsqueeze(2), p[2 * i], t))
            if per_layer:
                t = t + self.task.beta * torch.randn(t.shape, generator=self.noise_gens[0])
            elif noise is not None:
                t = t + noise[i]
        return torch.baddbmm(p[-1].unsqueeze(2), p[-2], t)

    def _tanh(self, pre: Tensor) -> Tensor:
        if self.design.tanh == "numpy":
            np.tanh(pre.numpy(), out=pre.numpy())  # in place: pre is a fresh product
            return pre
        return torch.tanh(pre)

    def _inputs(self, x: Tensor) -> Tensor:
        return x[0] if self.design.layout == "batch" else x.transpose(1, 2)

    def _losses(self, logits: Tensor, y: Tensor) -> Tensor:
        """Each member's mean cross-entropy (K,), or the scalar mean of the batch layout."""
        if self.design.layout == "batch":
            return F.cross_entropy(logits, y[0])
        return F.cross_entropy(logits, y, reduction="none").mean(1)

    def _correct(self, logits: Tensor, y: Tensor) -> Tensor:
        if self.design.layout == "batch":
            return (logits.argmax(1) == y[0]).sum()
        # Two classes: argmax (the first of equal maxima) is "logit 1 beats logit 0".
        return ((logits[:, 1] > logits[:, 0]) == y.bool()).sum(1)

    def step(self, s: int) -> None:
        """One minibatch: forward with noise, loss, backward, Adam, the running sums."""
        if self.design.backward == "hand":
            self._hand_step(s)
            return
        x, y, a, e = self._batch(s)
        logits = self.forward(self._inputs(x), self._noise(a, e), train=True)
        losses = self._losses(logits, y)
        self._zero_grad()
        self.backward_fn(losses.sum() if losses.dim() else losses)
        self.optimizer_step()
        if self.g1 is not None:
            self._add_gradient_sums()
        if self.design.records == "epoch":
            self.stash.append(logits.detach())
            return
        self.loss_sum += losses.detach() * (e - a)
        self.correct += self._correct(logits.detach(), y)

    @torch.no_grad()
    def _hand_step(self, s: int) -> None:
        """The step with autograd's own backward kernels called in order (no graph): the same
        gradient to the bit (section ``check``)."""
        x, y, a, e = self._batch(s)
        noise = self._noise(a, e)
        w, w_t, b_col, g = self.w, self.w_t, self.b_col, self.grad_views
        ts = [x.transpose(1, 2)]  # each layer's input, (K, d, B)
        acts = []
        for i in range(len(HIDDEN)):
            act = self._tanh(torch.baddbmm(b_col[i], w[i], ts[-1]))
            acts.append(act)
            ts.append(act if noise is None else act + noise[i])
        logits = torch.baddbmm(b_col[-1], w[-1], ts[-1])
        logp = torch.log_softmax(logits, 1)
        # d(sum_k mean_b nll)/d logp = −1/B at the target: MeanBackward then NllLossBackward;
        # 1/B rounded once to float32, as autograd's float32 division does.
        inv_b = float(np.float32(1.0) / np.float32(e - a))
        dlogp = torch.zeros_like(logp).scatter_(1, y.unsqueeze(1), -inv_b)
        grad = torch.ops.aten._log_softmax_backward_data(dlogp, logp, 1, logp.dtype)
        for i in range(len(HIDDEN), -1, -1):  # layer i: weight g[2i], bias g[2i+1]
            torch.bmm(grad, ts[i].transpose(1, 2), out=g[2 * i])
            torch.sum(grad, 2, out=g[2 * i + 1])
            if i:
                grad = torch.ops.aten.tanh_backward(torch.bmm(w_t[i], grad), acts[i - 1])
        self.optimizer_step()
        if self.g1 is not None:
            self._add_gradient_sums()
        if self.design.records == "epoch":
            self.stash.append(logp)
            return
        nll = -logp.gather(1, y.unsqueeze(1)).squeeze(1)  # (K, B): cross_entropy(..., "none")
        self.loss_sum += nll.mean(1) * (e - a)
        self.correct += self._correct(logits, y)

    def evaluate(self) -> Tensor:
        """The noiseless pass: (4, K) rows train loss, train acc, val loss, val acc."""
        d, t = self.design, self.task
        mode = torch.no_grad() if d.evaluate == "no_grad" else torch.inference_mode()
        with mode:
            if d.evaluate == "merged":
                logits = self.forward(self.x_eval, None, train=False)
                if d.layout == "batch":
                    ce = F.cross_entropy(logits, self.y_eval[0], reduction="none")[None]
                    hit = (logits.argmax(1) == self.y_eval[0])[None]
                else:
                    ce = F.cross_entropy(logits, self.y_eval, reduction="none")
                    hit = (logits[:, 1] > logits[:, 0]) == self.y_eval.bool()
                n = self.n
                return torch.stack(
                    [
                        ce[:, :n].mean(1),
                        hit[:, :n].float().mean(1),
                        ce[:, n:].mean(1),
                        hit[:, n:].float().mean(1),
                    ]
                )
            out = []
            for x, y in ((t.x_train, t.y_train), (t.x_val, t.y_val)):
                logits = self.forward(self._inputs(x), None, train=False)
                losses = self._losses(logits, y).reshape(-1)
                out += [losses, self._correct(logits, y).reshape(-1) / y.shape[1]]
            return torch.stack(out)

    def record(self, evaluation: Tensor | None) -> list[float]:
        """The epoch's record, handed over once: noisy loss and accuracy, then the evaluation."""
        if self.stash:  # records per epoch: the minibatches' log-probabilities (or logits)
            scores = torch.cat(self.stash, dim=2)  # (K, C, n), the epoch's order
            logp = scores if self.design.backward == "hand" else torch.log_softmax(scores, 1)
            self.loss_sum = -logp.gather(1, self.ye.unsqueeze(1)).sum((1, 2))
            self.correct = ((logp[:, 1] > logp[:, 0]) == self.ye_bool).sum(1)
        parts = [self.loss_sum / self.n, self.correct / self.n]
        if evaluation is not None:
            parts += list(evaluation)
        return torch.stack(parts).tolist()

    def epoch(self, evaluate: bool = True) -> list[float]:
        self.begin_epoch()
        for s in range(self.task.steps):
            self.step(s)
        return self.record(self.evaluate() if evaluate else None)


def check_aliasing(loop: Loop) -> None:
    """The flat design's premise: after steps, every parameter's data and gradient still live in
    the flat buffers (autograd accumulated in place, nothing re-allocated)."""
    if loop.flat is None:
        return
    base, gbase = loop.flat.data_ptr(), loop.flat_grad.data_ptr()
    for p, gv in zip(loop.params, loop.grad_views, strict=True):
        if p.data_ptr() < base or p.data_ptr() >= base + 4 * loop.flat.numel():
            raise AssertionError("a parameter left the flat buffer")
        grad = p.grad if loop.design.backward == "autograd" else gv
        if (
            grad is None
            or grad.data_ptr() < gbase
            or grad.data_ptr() >= gbase + 4 * loop.flat.numel()
        ):
            raise AssertionError("a gradient left the flat gradient buffer")


# ---------------------------------------------------------------------------------------------
# Timing


def time_loop(task: Task, design: Design, epochs: int, warmup: int, *, every: int = 1) -> float:
    """ms per epoch of ``design`` on ``task`` (evaluation every ``every``-th epoch)."""
    loop = Loop(task, design)
    for e in range(warmup):
        loop.epoch(evaluate=e % every == 0)
    start = time.perf_counter()
    for e in range(epochs):
        loop.epoch(evaluate=(e + 1) % every == 0)
    check_aliasing(loop)
    return 1e3 * (time.perf_counter() - start) / epochs


def medians(
    runs: dict[str, Callable[[], float]], repeats: int
) -> dict[str, tuple[float, list[float]]]:
    """Each run ``repeats`` times, interleaved so that load changes hit every row alike."""
    got: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            got[name].append(fn())
    return {name: (statistics.median(v), v) for name, v in got.items()}


def print_table(title: str, rows: dict[str, tuple[float, list[float]]], ref: str) -> None:
    """Median ms/epoch, epochs/s, speed-up over row ``ref``, and the fastest and slowest repeat
    (on a shared machine the fastest repeat is the better guess of the quiet cost)."""
    base = rows[ref][0]
    print(f"\n## {title}")
    print(
        f"{'variant':62s} {'ms/epoch':>9s} {'epochs/s':>9s} {'speed-up':>9s} {'min':>7s} {'max':>7s}"
    )
    for name, (med, values) in rows.items():
        print(
            f"{name:62s} {med:9.2f} {1e3 / med:9.1f} {base / med:8.2f}x "
            f"{min(values):7.2f} {max(values):7.2f}"
        )


# ---------------------------------------------------------------------------------------------
# Section: one net


SINGLE_DESIGNS: dict[str, Design] = {
    "careful: nn.Linear, randn_like per layer, Adam default": CAREFUL,
    "careful, app's noise stream (one randn(31,B) per step)": replace(CAREFUL, noise="step"),
    "careful + foreach Adam": replace(CAREFUL, adam="foreach"),
    "careful + fused Adam": replace(CAREFUL, adam="fused"),
    "careful + flat buffer, Adam default (1 tensor)": replace(CAREFUL, params="flat"),
    "careful + flat buffer, fused Adam": replace(CAREFUL, params="flat", adam="fused"),
    "careful + flat buffer, raw _fused_adam_": replace(CAREFUL, params="flat", adam="raw-fused"),
    "careful + flat buffer, default Adam written out": replace(
        CAREFUL, params="flat", adam="raw-default"
    ),
    "careful + noise per epoch (1 draw)": replace(CAREFUL, noise="epoch"),
    "careful + gather per epoch": replace(CAREFUL, gather="epoch"),
    "careful + inference_mode evaluation": replace(CAREFUL, evaluate="inference"),
    "careful + merged evaluation (train+val one pass)": replace(CAREFUL, evaluate="merged"),
    "batch layout, all autograd tricks": replace(FAST_AUTOGRAD, layout="batch"),
    "app: stacked K=1 (MLPEnsemble math), Adam default": APP,
    "stacked K=1 + fused Adam": replace(APP, adam="fused"),
    "stacked K=1, all autograd tricks": FAST_AUTOGRAD,
    "stacked K=1, all tricks + hand backward (FASTEST)": FASTEST,
    "FASTEST + records summed once per epoch": replace(FASTEST, records="epoch"),
    "FASTEST + gradient sums every minibatch": replace(FASTEST, grad_sums=True),
    "FASTEST, torch.optim fused Adam instead of raw": replace(FASTEST, adam="fused"),
    "EXACT: FASTEST with default Adam's math written out": EXACT,
    "EXACT + records summed once per epoch": replace(EXACT, records="epoch"),
    "EXACT + numpy row gather": replace(EXACT, gather="numpy"),
    "PROPOSED: EXACT + numpy row gather + records per epoch": PROPOSED,
    "PROPOSED + numpy tanh": PROPOSED_NP,
}


def _timed(task: Task, design: Design, args: argparse.Namespace, every: int = 1) -> Callable:
    def run() -> float:
        if design.grad_sums:
            return _time_tracked(task, design, args.epochs, args.warmup)
        return time_loop(task, design, args.epochs, args.warmup, every=every)

    return run


def _time_tracked(task: Task, design: Design, epochs: int, warmup: int) -> float:
    loop = Loop(task, design)
    loop.track_gradients(True)
    for _ in range(warmup):
        loop.epoch()
    start = time.perf_counter()
    for _ in range(epochs):
        loop.epoch()
    return 1e3 * (time.perf_counter() - start) / epochs


def section_single(args: argparse.Namespace) -> None:
    task = szt_task(1)
    runs = {name: _timed(task, d, args) for name, d in SINGLE_DESIGNS.items()}
    rows = medians(runs, args.repeats)
    print_table(
        f"one SZT net, B=256, beta=0.005, {args.epochs} epochs, median of {args.repeats}",
        rows,
        next(iter(rows)),
    )


# ---------------------------------------------------------------------------------------------
# Section: Lightning


class EpochClock(pl.Callback):
    """perf_counter at every training epoch's end (after the validation loop)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.times.append(time.perf_counter())


class EpochStepModule(pl.LightningModule):
    """One training_step per epoch: the epoch's minibatches looped inside (manual optimisation),
    the noiseless evaluation at its end (``validation="step"``) or in Lightning's validation loop
    (``"loop"``, one one-batch loader). ``backward``: ``raw`` (loss.backward) or ``manual``
    (self.manual_backward: on_after_backward hooks fire); ``optimizer``: ``raw`` or
    ``lightning`` (self.optimizers().step(), a LightningOptimizer)."""

    def __init__(
        self,
        loop: Loop,
        *,
        backward: str = "raw",
        optimizer: str = "raw",
        validation: str = "step",
        per_minibatch: bool = False,
        log_record: bool = False,
    ) -> None:
        super().__init__()
        self.log_record = log_record
        self.automatic_optimization = False
        self.loop = loop
        self.flat = loop.flat_param if loop.flat is not None else None
        self.mode = (backward, optimizer, validation, per_minibatch)
        self.records: list[list[float]] = []

    def configure_optimizers(self) -> torch.optim.Optimizer | None:
        return self.loop.opt

    def on_train_start(self) -> None:
        backward, optimizer, _, _ = self.mode
        if backward == "manual":
            self.loop.backward_fn = self.manual_backward
        if optimizer == "lightning":
            self.loop.optimizer_step = self.optimizers().step

    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # noqa: ANN001
        return batch

    def train_dataloader(self) -> list[int]:
        return list(range(self.loop.task.steps)) if self.mode[3] else [0]

    def val_dataloader(self) -> list[int]:
        return [0]

    def on_train_epoch_start(self) -> None:
        if self.mode[3]:
            self.loop.begin_epoch()

    def training_step(self, batch: int, batch_idx: int) -> None:
        if self.mode[3]:
            self.loop.step(batch)
            return
        self.loop.begin_epoch()
        for s in range(self.loop.task.steps):
            self.loop.step(s)
        if self.mode[2] == "step":
            self.records.append(self.loop.record(self.loop.evaluate()))

    def validation_step(self, batch: int, batch_idx: int) -> None:
        self._evaluation = self.loop.evaluate()

    def on_train_epoch_end(self) -> None:
        if self.mode[2] == "loop":
            self.records.append(self.loop.record(self._evaluation))
        elif self.mode[3]:
            self.records.append(self.loop.record(self.loop.evaluate()))
        if self.log_record:  # what TrainingRecordCallback does each epoch: the members' means
            rows = zip(RECORD, self.records[-1], strict=True)
            self.log_dict({name: sum(v) / len(v) for name, v in rows}, logger=False)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    for name in ("pytorch_lightning", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def fit_ms_per_epoch(
    module: pl.LightningModule,
    epochs: int,
    warmup: int,
    *,
    datamodule: pl.LightningDataModule | None = None,
    validate: bool = True,
) -> float:
    """ms per epoch of ``trainer.fit`` after ``warmup`` epochs (start-up excluded)."""
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as tmp, quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=warmup + epochs,
            accelerator="cpu",
            devices=1,
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            limit_val_batches=None if validate else 0,
            default_root_dir=tmp,
            callbacks=[clock],
        )
        trainer.fit(module, datamodule=datamodule)
    t = clock.times
    return 1e3 * (t[-1] - t[warmup - 1]) / epochs


def section_lightning(args: argparse.Namespace) -> None:
    task = szt_task(1)
    ep, wu = args.epochs, max(args.warmup, 1)
    fused_autograd = replace(FAST_AUTOGRAD, adam="fused")  # a torch Optimizer for Lightning
    proposed = PROPOSED

    def app() -> float:
        net = MLPEnsemble([0], beta=task.beta)
        module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=task.lr))
        return fit_ms_per_epoch(module, ep, wu, datamodule=SZTDataModule(seeds=[0]))

    def module(design: Design, **kw: object) -> Callable[[], float]:
        loop_validates = kw.get("validation") == "loop"
        return lambda: fit_ms_per_epoch(
            EpochStepModule(Loop(task, design), **kw), ep, wu, validate=loop_validates
        )

    runs = {
        "hand loop: app design (reference for infoflow rows)": _timed(task, APP, args),
        "infoflow today: ClassifierModule+SZTDataModule, val loop": app,
        "Lightning per-minibatch step, app design, manual_bw+LOpt": module(
            APP, backward="manual", optimizer="lightning", per_minibatch=True
        ),
        "hand loop: all autograd tricks, fused Adam": _timed(task, fused_autograd, args),
        "Lightning per-minibatch step, same, raw bw/opt": module(
            fused_autograd, per_minibatch=True
        ),
        "Lightning per-minibatch step, same, manual_bw+LOpt": module(
            fused_autograd, backward="manual", optimizer="lightning", per_minibatch=True
        ),
        "Lightning epoch step, same, raw bw/opt, eval in step": module(fused_autograd),
        "Lightning epoch step, same, manual_backward": module(fused_autograd, backward="manual"),
        "Lightning epoch step, same, LightningOptimizer.step": module(
            fused_autograd, optimizer="lightning"
        ),
        "Lightning epoch step, same, manual_bw+LOpt": module(
            fused_autograd, backward="manual", optimizer="lightning"
        ),
        "Lightning epoch step, same, raw, Lightning val loop": module(
            fused_autograd, validation="loop"
        ),
        "hand loop: FASTEST (hand backward, raw fused Adam)": _timed(task, FASTEST, args),
        "Lightning epoch step, FASTEST, eval in step": module(FASTEST),
        "hand loop: PROPOSED": _timed(task, proposed, args),
        "Lightning epoch step, PROPOSED": module(proposed),
        "  same + log_dict of the record each epoch": module(proposed, log_record=True),
    }
    rows = medians(runs, args.repeats)
    costs = lightning_call_costs()
    print_table(
        f"Lightning, one SZT net, B=256, beta=0.005, {ep} epochs after {wu}, median of "
        f"{args.repeats}",
        rows,
        next(iter(rows)),
    )
    print("per call, inside a running fit (best of 7 x 300 calls):")
    for name, us in costs.items():
        print(f"  {name:50s} {us:7.1f} us")


class CallCosts(pl.LightningModule):
    """Times, inside a running fit, Lightning's per-call wrappers against the raw calls: µs per
    call of ``manual_backward`` vs ``Tensor.backward`` and ``LightningOptimizer.step`` vs
    ``Optimizer.step`` on a one-parameter graph (best of several rounds)."""

    def __init__(self, calls: int = 300, rounds: int = 7) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.w = torch.nn.Parameter(torch.ones(3))
        self.calls, self.rounds = calls, rounds
        self.costs: dict[str, float] = {}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.w], lr=1e-3, fused=True)

    def train_dataloader(self) -> list[int]:
        return [0]

    def transfer_batch_to_device(self, batch, device, dataloader_idx):  # noqa: ANN001
        return batch

    def _best(self, fn: Callable[[], object]) -> float:
        best = math.inf
        for _ in range(self.rounds):
            start = time.perf_counter()
            for _ in range(self.calls):
                fn()
            best = min(best, (time.perf_counter() - start) / self.calls)
        return 1e6 * best

    def training_step(self, batch: int, batch_idx: int) -> None:
        lopt, opt = self.optimizers(), self.optimizers(use_pl_optimizer=False)
        self.costs["loss.backward()"] = self._best(lambda: (self.w * 2).sum().backward())
        self.costs["self.manual_backward(loss)"] = self._best(
            lambda: self.manual_backward((self.w * 2).sum())
        )
        self.costs["optimizer.step() (fused Adam)"] = self._best(opt.step)
        self.costs["self.optimizers().step() (LightningOptimizer)"] = self._best(lopt.step)


def lightning_call_costs() -> dict[str, float]:
    module = CallCosts()
    with tempfile.TemporaryDirectory() as tmp, quiet_lightning():
        pl.Trainer(
            max_epochs=1,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=False,
            default_root_dir=tmp,
        ).fit(module)
    return module.costs


# ---------------------------------------------------------------------------------------------
# Section: infoflow's per-epoch callbacks and loggers on top of the proposed epoch step


class RecordingModule(EpochStepModule):
    """:class:`EpochStepModule` with the interface infoflow's training-record callback reads."""

    @property
    def seeds(self) -> list[int]:
        return self.loop.task.seeds

    def epoch_record(self) -> dict[str, list[float]]:
        return dict(zip(RECORD, self.records[-1], strict=True)) if self.records else {}


def section_callbacks(args: argparse.Namespace) -> None:
    """What each of infoflow's per-epoch callbacks and loggers adds to an epoch (cumulative)."""
    from infoflow.callbacks.progress import EpochProgressBar
    from infoflow.callbacks.training import TrainingRecordCallback
    from infoflow.checkpoint import ModelCheckpoint
    from infoflow.loggers import WandbLogger

    task = szt_task(1)
    ep, wu = args.epochs, max(args.warmup, 1)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")

    def run(extras: list[str], every: int = 1) -> Callable[[], float]:
        def go() -> float:
            clock = EpochClock()
            with (
                tempfile.TemporaryDirectory() as tmp,
                quiet_lightning(),
                open(os.devnull, "w") as null,
                contextlib.redirect_stdout(null),
            ):
                callbacks: list[pl.Callback] = [clock]
                loggers: list = []
                if "record" in extras:
                    callbacks.append(TrainingRecordCallback(tmp, every_n_epochs=every))
                if "csv" in extras:
                    loggers.append(pl.loggers.CSVLogger(tmp, name="", version=""))
                if "wandb" in extras:
                    loggers.append(WandbLogger(project="bench", save_dir=tmp))
                if "checkpoint" in extras:
                    callbacks.append(
                        ModelCheckpoint(dirpath=tmp, filename="last", every_n_epochs=10)
                    )
                if "bar" in extras:
                    callbacks.append(EpochProgressBar())
                trainer = pl.Trainer(
                    max_epochs=wu + ep,
                    accelerator="cpu",
                    enable_progress_bar="bar" in extras,
                    enable_model_summary=False,
                    logger=loggers or False,
                    enable_checkpointing="checkpoint" in extras,
                    num_sanity_val_steps=0,
                    limit_val_batches=0,
                    default_root_dir=tmp,
                    callbacks=callbacks,
                )
                trainer.fit(RecordingModule(Loop(task, PROPOSED)))
                if "wandb" in extras:
                    import wandb

                    wandb.finish()
            return 1e3 * (clock.times[-1] - clock.times[wu - 1]) / ep

        return go

    steps = ["record", "csv", "wandb", "checkpoint", "bar"]
    runs = {"PROPOSED epoch step, no callbacks or loggers": run([])}
    for i, name in enumerate(steps):
        runs[f"+ {name}"] = run(steps[: i + 1])
    runs["all, training record every 10th epoch"] = run(steps, every=10)
    rows = medians(runs, args.repeats)
    print_table(
        f"infoflow's per-epoch callbacks on the PROPOSED epoch step (cumulative), one net, "
        f"{ep} epochs",
        rows,
        next(iter(rows)),
    )


# ---------------------------------------------------------------------------------------------
# Sections: ensembles and the Tishby sweep


def section_ensemble(args: argparse.Namespace) -> None:
    ep = args.ensemble_epochs
    sub = argparse.Namespace(**{**vars(args), "epochs": ep})
    for k in args.members:
        for batch in (256, 512):
            for beta in (0.005, 0.0):
                task, one = szt_task(k, batch=batch, beta=beta), szt_task(1, batch=batch, beta=beta)
                runs = {
                    f"app design, K={k} stacked": _timed(task, APP, sub),
                    f"all autograd tricks, K={k} stacked": _timed(task, FAST_AUTOGRAD, sub),
                    f"FASTEST, K={k} stacked": _timed(task, FASTEST, sub),
                    f"PROPOSED, K={k} stacked": _timed(task, PROPOSED, sub),
                    f"PROPOSED + numpy tanh, K={k} stacked": _timed(task, PROPOSED_NP, sub),
                    "app design, one net (x K = separate loops)": _timed(one, APP, sub),
                    "careful, one net (x K = separate loops)": _timed(one, CAREFUL, sub),
                    "PROPOSED, one net (x K = separate loops)": _timed(one, PROPOSED, sub),
                }
                rows = medians(runs, args.repeats)
                for name in list(rows)[5:]:
                    med, values = rows.pop(name)
                    rows[name.replace("one net (x K", f"{k} separate nets (x{k}")] = (
                        k * med,
                        [k * v for v in values],
                    )
                print_table(
                    f"ensemble K={k}, B={batch}, beta={beta}, {ep} epochs, median of "
                    f"{args.repeats} (per member: divide by {k})",
                    rows,
                    next(iter(rows)),
                )


def section_tishby(args: argparse.Namespace) -> None:
    """The three tishby_szt_sweep jobs: K = 50, B = 512, β = 0, validation every 10th epoch."""
    ep = args.ensemble_epochs
    sub = argparse.Namespace(**{**vars(args), "epochs": ep})
    designs = {
        "app design": APP,
        "all autograd tricks": FAST_AUTOGRAD,
        "FASTEST": FASTEST,
        "PROPOSED": PROPOSED,
        "PROPOSED + numpy tanh": PROPOSED_NP,
    }
    total = dict.fromkeys(designs, 0.0)
    for fraction in (0.05, 0.45, 0.85):
        task = szt_task(50, batch=512, beta=0.0, train_fraction=fraction)
        runs = {
            f"{name}, f={fraction}": _timed(task, d, sub, every=10) for name, d in designs.items()
        }
        rows = medians(runs, args.repeats)
        print_table(
            f"tishby_szt_sweep job: K=50, B=512, beta=0, train fraction {fraction} "
            f"({task.steps} steps), validation every 10th epoch",
            rows,
            next(iter(rows)),
        )
        for name in designs:
            total[name] += rows[f"{name}, f={fraction}"][0]
    for name, ms in total.items():
        print(f"3 jobs x 8000 epochs, training only, {name}: {ms * 8000 / 6e4:.1f} min")


# ---------------------------------------------------------------------------------------------
# Section: numerical identity


def _loop_records(task: Task, design: Design, epochs: int) -> tuple[Tensor, Tensor, Loop]:
    """Records (E, 6, K) and parameters of ``epochs`` epochs, and the loop itself."""
    loop = Loop(task, design)
    records = torch.tensor([loop.epoch() for _ in range(epochs)], dtype=torch.float64)
    return records, loop.parameters_flat().double(), loop


def _app_records(epochs: int) -> tuple[Tensor, Tensor]:
    """infoflow's ClassifierModule through Lightning, its epoch_record in the Loop's order."""
    net = MLPEnsemble([0], beta=0.005)
    module = ClassifierModule(net, optimizer=lambda p: torch.optim.Adam(p, lr=4e-4))
    got: list[list[float]] = []

    class Grab(pl.Callback):
        def on_train_epoch_end(self, trainer: pl.Trainer, m: pl.LightningModule) -> None:
            r = m.epoch_record()
            keys = ["train/loss_noisy", "train/acc_noisy"]
            keys += ["train/loss", "train/acc", "val/loss", "val/acc"]
            got.append([r[k][0] for k in keys])

    with tempfile.TemporaryDirectory() as tmp, quiet_lightning():
        trainer = pl.Trainer(
            max_epochs=epochs,
            accelerator="cpu",
            enable_progress_bar=False,
            enable_model_summary=False,
            logger=False,
            enable_checkpointing=False,
            num_sanity_val_steps=0,
            default_root_dir=tmp,
            callbacks=[Grab()],
        )
        trainer.fit(module, datamodule=SZTDataModule(seeds=[0]))
    params = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    return torch.tensor(got, dtype=torch.float64)[:, :, None], params.double()


def _compare(name: str, ref: tuple, got: tuple, app: tuple | None = None) -> None:
    """One row: bit-identical to ``ref``?, the largest record and parameter differences, and the
    parameters' difference from infoflow's (``app``)."""
    dr = (ref[0] - got[0]).abs()
    dp = (ref[1] - got[1]).abs().max().item()
    same = dr.max().item() == 0 and dp == 0
    vs_app = "" if app is None else f"{(app[1] - got[1]).abs().max().item():11.2e}"
    # Records: noisy loss (col 0) and the noiseless losses (2, 4); accuracies (1, 3, 5).
    print(
        f"{name:76s} {'yes' if same else 'no':>4s} {dr[:, [0, 2, 4]].max().item():9.2e} "
        f"{dr[:, [1, 3, 5]].max().item():9.2e} {dp:9.2e} {vs_app}"
    )


def reference(d: Design) -> Design:
    """The design whose math ``d`` repeats: same layout and noise stream, the app's other knobs
    (default Adam on separate tensors, autograd, a no_grad evaluation per split)."""
    return replace(APP, layout=d.layout, noise="layer" if d.noise == "layer" else "step")


#: Designs that change one knob of the app's, to see which knob changes the bits.
ISOLATING: dict[str, Design] = {
    "stacked K=1 + flat buffer, Adam default": replace(APP, params="flat"),
    "stacked K=1 + flat buffer, raw _fused_adam_": replace(APP, params="flat", adam="raw-fused"),
    "stacked K=1 + foreach Adam": replace(APP, adam="foreach"),
    "stacked K=1 + noise per epoch": replace(APP, noise="epoch"),
    "stacked K=1 + gather per step": replace(APP, gather="step"),
    "stacked K=1 + merged evaluation": replace(APP, evaluate="merged"),
    "stacked K=1 + flat + hand backward, Adam default": replace(
        APP, params="flat", backward="hand"
    ),
}


def section_check(args: argparse.Namespace) -> None:
    e = args.check_epochs
    task = szt_task(1)
    print(f"\n## numerical identity over {e} epochs, seed 0, B=256, beta=0.005 (max |difference|)")
    print("columns: bit-identical to the reference, max |diff| of losses, of accuracies, of")
    print("parameters after the last epoch; then of parameters vs infoflow's training")
    print(
        f"{'variant (reference)':76s} {'bit=':>4s} {'losses':>9s} {'accs':>9s} {'params':>9s} "
        f"{'vs infoflow':>11s}"
    )
    app = _app_records(e)
    ref_app = _loop_records(task, APP, e)
    _compare("app-design loop (infoflow ClassifierModule via Lightning)", app, ref_app)
    refs: dict[Design, tuple] = {APP: ref_app}
    for name, d in {**SINGLE_DESIGNS, **ISOLATING}.items():
        if d == APP or d.grad_sums:
            continue
        r = reference(d)
        if r not in refs:
            refs[r] = _loop_records(task, r, e)
        label = "app" if r == APP else ("careful" if r.noise == "layer" else "careful, app noise")
        _compare(f"{name} ({label})", refs[r], _loop_records(task, d, e), app)
    # Ensembles: member k of a stacked ensemble vs the single run of seed k, both designs.
    k = 8
    ens = szt_task(k)
    app_k = _loop_records(ens, APP, e)
    for design_name, d in (("app design", APP), ("FASTEST", FASTEST), ("PROPOSED", PROPOSED)):
        records, params, loop = app_k if d == APP else _loop_records(ens, d, e)
        if d != APP:
            _compare(f"{design_name} K={k} (app design K={k})", app_k, (records, params))
        for m in (0, k - 1):
            one = _loop_records(szt_task(1, seed=m), d, e)
            flat = torch.cat([p.detach()[m].reshape(-1) for p in loop.params]).double()
            member = (records[:, :, m : m + 1], flat)
            _compare(f"{design_name} K={k}: member {m} (the single run of seed {m})", one, member)
    # The Tishby setting: B = 512, β = 0, last minibatches of 410, 307 and 205 rows.
    for fraction in (0.85, 0.45, 0.05):
        tishby = szt_task(k, batch=512, beta=0.0, train_fraction=fraction)
        _compare(
            f"PROPOSED K={k}, B=512, beta=0, fraction {fraction} (app design)",
            _loop_records(tishby, APP, e),
            _loop_records(tishby, PROPOSED, e),
        )
    # How far float-tolerance differences drift over a longer run, beside seed-to-seed spread.
    long = args.check_long
    print(f"\nafter {long} epochs: max |diff| over the run of records; parameters at the end")
    exact = _loop_records(task, EXACT, long)
    for name, other in (
        ("FASTEST (fused Adam kernel)", _loop_records(task, FASTEST, long)),
        ("PROPOSED (records per epoch)", _loop_records(task, PROPOSED, long)),
        ("PROPOSED + numpy tanh", _loop_records(task, PROPOSED_NP, long)),
        ("EXACT with seed 1 (seed-to-seed scale)", _loop_records(szt_task(1, seed=1), EXACT, long)),
    ):
        _compare(f"{name} (EXACT)", exact, other)


# ---------------------------------------------------------------------------------------------
# Section: torch.compile


def section_compile(args: argparse.Namespace) -> None:
    """torch.compile of the forward + loss of the app design (the rest unchanged)."""
    task = szt_task(1)
    loop = Loop(task, FAST_AUTOGRAD)
    plain = loop.forward
    start = time.perf_counter()
    loop.forward = torch.compile(plain, dynamic=False)
    loop.epoch()  # compiles: B = 256 and the last minibatch, the evaluation shapes
    loop.epoch()
    compile_s = time.perf_counter() - start
    runs = {
        "all autograd tricks": _timed(task, FAST_AUTOGRAD, args),
        "all autograd tricks, torch.compile(forward)": lambda: _time_existing(loop, args),
        "FASTEST": _timed(task, FASTEST, args),
    }
    rows = medians(runs, args.repeats)
    print_table(f"torch.compile (compile + first 2 epochs: {compile_s:.1f} s)", rows, "FASTEST")


def _time_existing(loop: Loop, args: argparse.Namespace) -> float:
    start = time.perf_counter()
    for _ in range(args.epochs):
        loop.epoch()
    return 1e3 * (time.perf_counter() - start) / args.epochs


SECTIONS = {
    "check": section_check,
    "single": section_single,
    "lightning": section_lightning,
    "callbacks": section_callbacks,
    "ensemble": section_ensemble,
    "tishby": section_tishby,
    "compile": section_compile,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="timed epochs, one net")
    parser.add_argument("--ensemble-epochs", type=int, default=60, help="timed epochs, ensembles")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--check-epochs", type=int, default=30)
    parser.add_argument("--check-long", type=int, default=300, help="epochs of the drift check")
    parser.add_argument("--members", type=int, nargs="+", default=[8, 50])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--sections",
        default="check,single,lightning,callbacks,ensemble,tishby",
        help=f"comma-separated, of {','.join(SECTIONS)}",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = args.sections.split(",")
    if unknown := [n for n in names if n not in SECTIONS]:
        parser.error(f"--sections: unknown {unknown}; allowed: {','.join(SECTIONS)}")
    print(f"torch {torch.__version__}, Lightning {pl.__version__}, {args.threads} thread(s)")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for name in names:
        start = time.perf_counter()
        SECTIONS[name](args)
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", flush=True)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
