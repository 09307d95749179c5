"""torch.optim.Adam's step on one flat vector of parameters: the same bits in a few operations.

On the CPU torch's Adam takes its single-tensor path by default (no foreach, no fused kernel): six
tensor operations per parameter tensor, each a Python call into a kernel, plus ``Optimizer.step``'s
own bookkeeping (~50 µs). For the 12 tensors of the 294-parameter SZT net that is more than the
network's forward and backward. :class:`FlatAdam` runs the same six operations with the same
scalars once, on the vector that holds every parameter (:meth:`MLPEnsemble.flat_parameters
<infoflow.models.mlp.MLPEnsemble.flat_parameters>`): the operations are elementwise, so each
parameter gets the same bits (tests/models/test_fast_training.py checks it against
``torch.optim.Adam`` after hundreds of steps).

Its state is the optimizer's: each parameter's ``exp_avg`` and ``exp_avg_sq`` in
``optimizer.state`` are views of FlatAdam's two vectors, and its ``step`` is brought up to date
whenever the state is read, so the optimizer's ``state_dict`` (a checkpoint) saves and loads them
as torch's own, and a checkpoint of either kind resumes in the other.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: Adam's settings under which torch takes the single-tensor step that FlatAdam repeats.
_PLAIN = {
    "weight_decay": 0,
    "amsgrad": False,
    "maximize": False,
    "capturable": False,
    "differentiable": False,
    "decoupled_weight_decay": False,
}


class FlatAdam:
    """Steps ``optimizer`` (a plain ``torch.optim.Adam`` over ``params``) on a flat vector that
    ``params`` are views of, in order (and their gradients of another). Build it with
    :meth:`attach`."""

    def __init__(self, optimizer: torch.optim.Adam, params: list[Tensor], flat: Tensor) -> None:
        self.optimizer = optimizer
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat), torch.zeros_like(flat)
        self._denom = torch.empty_like(flat)
        states = [optimizer.state.get(p) or {} for p in params]
        self._steps = int(states[0]["step"]) if states[0] else 0
        self._step_tensors = []
        start = 0
        for p, state in zip(params, states, strict=True):
            m = self.exp_avg[start : start + p.numel()].view_as(p)
            v = self.exp_avg_sq[start : start + p.numel()].view_as(p)
            if state:  # restored from a checkpoint: carried over into the vectors
                m.copy_(state["exp_avg"])
                v.copy_(state["exp_avg_sq"])
            step = torch.tensor(float(self._steps))  # torch's: a float32 scalar on the CPU
            optimizer.state[p] = {"step": step, "exp_avg": m, "exp_avg_sq": v}
            self._step_tensors.append(step)
            start += p.numel()
        # Each parameter's own step tensor (a torch Adam that loads the state steps each once),
        # brought up to date when the state is read rather than 12 times a step.
        optimizer.register_state_dict_pre_hook(self._write_steps)

    def _write_steps(self, optimizer: torch.optim.Optimizer) -> None:
        for step in self._step_tensors:
            step.fill_(float(self._steps))

    @classmethod
    def attach(
        cls, optimizer: torch.optim.Optimizer, params: list[Tensor], flat: Tensor
    ) -> FlatAdam | None:
        """A FlatAdam for ``optimizer`` if it is a ``torch.optim.Adam`` whose step torch would
        take on the single-tensor path, with bits FlatAdam repeats: one parameter group holding
        exactly ``params`` (views of ``flat``, in its order), on the CPU, float lr and betas, no
        weight decay, amsgrad, maximize, capturable, differentiable, foreach or fused, and every
        parameter's state either empty or at one step. None otherwise: then step the optimizer."""
        if type(optimizer) is not torch.optim.Adam or len(optimizer.param_groups) != 1:
            return None
        group = optimizer.param_groups[0]
        plain = all(group.get(key, value) == value for key, value in _PLAIN.items())
        kernels = not group.get("foreach") and not group.get("fused")
        floats = all(isinstance(v, float | int) for v in (group["lr"], *group["betas"]))
        if not (plain and kernels and floats) or flat.device.type != "cpu":
            return None
        if len(group["params"]) != len(params) or any(
            p is not q for p, q in zip(group["params"], params, strict=True)
        ):
            return None
        steps = {float(s["step"]) if s else 0.0 for s in (optimizer.state.get(p) for p in params)}
        return cls(optimizer, params, flat) if len(steps) == 1 else None

    def step(self, flat: Tensor, flat_grad: Tensor) -> None:
        """One Adam step of the parameters in ``flat`` from the gradients in ``flat_grad`` (the
        vectors of :meth:`attach`'s order): torch's ``_single_tensor_adam`` (no weight decay, not
        capturable) with the same operations and scalars; only the denominator goes into a kept
        buffer."""
        group = self.optimizer.param_groups[0]
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        self._steps += 1
        step = float(self._steps)
        g, m, v = flat_grad, self.exp_avg, self.exp_avg_sq
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = lr / (1 - beta1**step)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        torch.sqrt(v, out=self._denom).div_(bias_correction2_sqrt).add_(eps)
        flat.addcdiv_(m, self._denom, value=-step_size)
