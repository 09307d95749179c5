"""Quantization to k bits with a straight-through gradient, as Lorenzen, Igel & Nielsen (ICLR 2022)
train the networks whose information they compute exactly.

The grid is TensorFlow's fake quantization (``tf.quantization.fake_quant_with_min_max_vars`` with
``num_bits=k, narrow_range=False``, what ``tensorflow_model_optimization`` inserts), ported
operation by operation in float32. For a range ``[lo, hi]`` and ``q = 2^k - 1``:

* *nudge* the range so that 0 is a level: ``scale = (hi - lo) / q``, zero point
  ``z = round(-lo / scale)`` (half away from zero, clipped to [0, q]), nudged range
  ``[-z · scale, (q - z) · scale]``;
* *quantize*: clamp to the nudged range, ``m = floor((x - lo') / scale - z + 0.5)``, output
  ``m · scale``. The 2^k levels are ``(c - z) · scale`` for the codes ``c = m + z`` in [0, q]: equal
  codes give bit-identical floats, and 0 is always a level (a dead ReLU is exactly 0).
* *gradient* (straight-through): the upstream gradient passes unchanged where ``x`` lies inside
  the nudged range and is 0 outside; a range that itself requires grad receives the sum of the
  upstream gradient below (``lo``) and above (``hi``) the range, as TensorFlow's op does.

Where the range comes from (all three as in their code; ``Quantize``'s ``mode``):

* ``"batch"`` — the min and max of the whole tensor at each call (their tanh layers: ``tanh`` then
  fake quantization on ``reduce_min/max`` of the activations, differentiably). The grid moves with
  every minibatch, and a measurement's grid is that of the set measured: compute it in one pass.
* ``"ema"`` — tfmot's ``MovingAverageQuantizer`` (their ReLU layers and the logits before the
  softmax): in training, ``r ← r - 0.001 · (r - b)`` with ``b = (min(batch min, 0), max(batch
  max, 0))``, starting from (-6, 6), then quantization on the updated range; in eval, the stored
  range. The range is state (buffers): it is saved with the model.
* ``"fixed"`` — a given ``(lo, hi)`` with ``lo <= 0 <= hi`` (e.g. (-1, 1) for tanh): not their
  choice, but a grid that does not move between epochs. The nudge applies to it too: (-1, 1) at
  8 bits becomes [-127, 128] · 2/255 (float32 puts -1 / scale just below 127.5).

Weights (:func:`quantize_weight`, tfmot's ``LastValueQuantizer``): the range of the weight tensor
itself, ``[min(W.min(), 0), max(W.max(), 0)]``, per tensor, without gradient to the range. tfmot
evaluates with the range of the last training step; here the current weights' range is used in
both modes (identical after any training step but the last, and no (-6, 6) grid before training).
Biases stay in full precision, as theirs.

With ``members=K`` a tensor's leading dimension indexes K networks (an ensemble), each with its own
range. Everything is computed in float32, TensorFlow's arithmetic, and returned in the input's
dtype (exact for float32 and float64 inputs). TensorFlow accepts 2..16 bits; one bit follows the
same formulas (two levels, one of them 0).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "MAX_BITS",
    "MODES",
    "Grid",
    "Quantize",
    "QuantizeWeight",
    "check_bits",
    "codes",
    "grid",
    "nudge",
    "quantize",
    "quantize_weight",
]

MAX_BITS = 16
MODES = ("fixed", "batch", "ema")
#: tfmot's MovingAverageQuantizer: decay and the range its variables start from.
EMA_DECAY = 0.999
EMA_INIT = (-6.0, 6.0)


def check_bits(bits: object) -> int:
    """``bits`` as an int, or a one-line ValueError unless it is an integer in 1..16.

    >>> check_bits(8)
    8
    >>> check_bits(0)
    Traceback (most recent call last):
    ...
    ValueError: bits must be an integer in 1..16, got 0
    """
    ok = isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= MAX_BITS
    if not ok:
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}")
    return bits


def _check_range(lo: float, hi: float) -> None:
    finite = all(isinstance(v, int | float) and abs(v) < float("inf") for v in (lo, hi))
    if not (finite and lo <= 0.0 <= hi and lo < hi):
        raise ValueError(f"range must be finite with lo <= 0 <= hi and lo < hi, got ({lo}, {hi})")


class Grid(NamedTuple):
    """The nudged grid of a range (float32 tensors of the range's shape): level ``c`` in [0, q]
    is ``(c - zero) · scale``; the nudged range is ``[lo, hi]``. A degenerate range (``hi <= lo``)
    has ``scale = 0`` and quantizes everything to 0."""

    scale: Tensor
    zero: Tensor
    lo: Tensor
    hi: Tensor


def _f32(v: float | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(v, device=like.device).to(torch.float32)


def _round_half_away(x: Tensor) -> Tensor:
    """C's ``std::round`` for x >= 0 (torch.round rounds half to even)."""
    down = torch.floor(x)
    return down + (x - down >= 0.5).to(x.dtype)


def nudge(bits: int, lo: float | Tensor, hi: float | Tensor) -> Grid:
    """TensorFlow's ``Nudge`` (``fake_quant_ops_functor.h``), elementwise over ``lo`` and ``hi``.

    In float32, -(-1 / (2 / 255)) is 127.49999, so (-1, 1) at 8 bits keeps 127 levels below 0
    (TensorFlow gives the same):

    >>> g = nudge(8, -1.0, 1.0)
    >>> int(g.zero), round(g.lo.item(), 7), round(g.hi.item(), 7)
    (127, -0.9960785, 1.0039216)
    """
    bits = check_bits(bits)
    ref = lo if isinstance(lo, Tensor) else hi if isinstance(hi, Tensor) else torch.empty(0)
    lo, hi = _f32(lo, ref), _f32(hi, ref)
    q = _f32(float(2**bits - 1), lo)  # 0-d tensors: true IEEE division on every device
    span = hi - lo
    degenerate = ~(span > 0)
    span = torch.where(degenerate, torch.ones_like(span), span)
    scale = span / q
    inv_scale = q / span
    zero_from_min = -(lo / scale)
    zero = torch.where(
        zero_from_min < 0,
        torch.zeros_like(zero_from_min),
        torch.where(zero_from_min > q, q, _round_half_away(zero_from_min)),
    )
    nlo, nhi = (0.0 - zero) * scale, (q - zero) * scale
    # TF recomputes the zero point from the nudged minimum; it equals `zero` (kept for fidelity).
    zero = torch.floor(-nlo * inv_scale + 0.5)
    inf = torch.full_like(scale, float("inf"))
    return Grid(
        torch.where(degenerate, torch.zeros_like(scale), scale),
        torch.where(degenerate, torch.zeros_like(zero), zero),
        torch.where(degenerate, -inf, nlo),
        torch.where(degenerate, inf, nhi),
    )


def _levels(x: Tensor, g: Grid) -> Tensor:
    """``m = code - zero`` as integer-valued float32, TF's order of float32 operations."""
    clamped = torch.maximum(torch.minimum(x, g.hi), g.lo)
    m = torch.floor((clamped - g.lo) / torch.where(g.scale > 0, g.scale, 1.0) - g.zero + 0.5)
    return torch.where(g.scale > 0, m, torch.zeros_like(m))


def _sum_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to the shape of the operand it was broadcast from."""
    lead = t.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        i + lead for i, s in enumerate(shape) if s == 1 and t.shape[i + lead] != 1
    )
    return t.sum(dim=dims, keepdim=True).reshape(shape) if dims else t.reshape(shape)


class _FakeQuant(torch.autograd.Function):
    # forward / setup_context split and a generated vmap rule: usable inside torch.func.vmap
    # (the ensembles of NamedLayers), one member's tensor at a time.
    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, lo: Tensor, hi: Tensor, bits: int) -> Tensor:
        g = nudge(bits, lo, hi)
        return (_levels(x.to(torch.float32), g) * g.scale).to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs: tuple, output: Tensor) -> None:  # noqa: ANN001
        x, lo, hi, bits = inputs
        g = nudge(bits, lo, hi)
        ctx.save_for_backward(x.to(torch.float32), g.lo, g.hi)
        ctx.shapes = (lo.shape, hi.shape)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, nlo, nhi = ctx.saved_tensors
        below, above = x < nlo, x > nhi
        zero = torch.zeros_like(grad)
        grad_x = torch.where(below | above, zero, grad)
        grad_lo = grad_hi = None
        if ctx.needs_input_grad[1]:
            grad_lo = _sum_to(torch.where(below, grad, zero), ctx.shapes[0])
        if ctx.needs_input_grad[2]:
            grad_hi = _sum_to(torch.where(above, grad, zero), ctx.shapes[1])
        return grad_x, grad_lo, grad_hi, None


def _range_tensors(x: Tensor, lo: float | Tensor, hi: float | Tensor) -> tuple[Tensor, Tensor]:
    """Numbers are checked (``lo <= 0 <= hi``) and made float32 tensors; tensors pass as given."""
    if not isinstance(lo, Tensor) and not isinstance(hi, Tensor):
        _check_range(lo, hi)
    return tuple(v if isinstance(v, Tensor) else _f32(v, x) for v in (lo, hi))


def quantize(x: Tensor, bits: int, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """``x`` on the k-bit grid of ``[lo, hi]`` (module docstring), straight-through gradient.

    Args:
        x: float tensor of any shape and device.
        bits: k, an integer in 1..16 (2^k levels; one of them is 0).
        lo, hi: the range: numbers with ``lo <= 0 <= hi``, or tensors broadcastable to ``x``
            (e.g. (K, 1, 1) for per-member ranges; then, as in TensorFlow, a range without 0 is
            shifted to [0, hi - lo] or [lo - hi, 0]); tensors that require grad receive one.

    Returns:
        A tensor like ``x`` whose values are exactly ``grid(bits, lo, hi)[codes(x, bits, lo, hi)]``.

    Example:
        >>> quantize(torch.tensor([-0.2, 0.1, 0.2, 0.5, 0.9, 1.5]), 2, 0.0, 1.0).tolist()
        [0.0, 0.0, 0.3333333432674408, 0.6666666865348816, 1.0, 1.0]
    """
    lo_t, hi_t = _range_tensors(x, lo, hi)
    return _FakeQuant.apply(x, lo_t, hi_t, check_bits(bits))


def codes(x: Tensor, bits: int, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """The level index in [0, 2^k - 1] of every value of ``x`` (int64, ``x``'s shape).

    >>> codes(torch.tensor([-0.2, 0.1, 0.2, 0.5, 0.9, 1.5]), 2, 0.0, 1.0).tolist()
    [0, 0, 1, 2, 3, 3]
    """
    lo_t, hi_t = _range_tensors(x, lo, hi)
    g = nudge(check_bits(bits), lo_t.detach(), hi_t.detach())
    return (_levels(x.detach().to(torch.float32), g) + g.zero).long()


def grid(bits: int, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """The 2^k level values of the range, float32, shape ``(*range_shape, 2^k)``, increasing.

    >>> grid(2, 0.0, 1.0).tolist()
    [0.0, 0.3333333432674408, 0.6666666865348816, 1.0]
    """
    bits = check_bits(bits)
    ref = lo if isinstance(lo, Tensor) else hi if isinstance(hi, Tensor) else torch.empty(0)
    lo_t, hi_t = _range_tensors(ref, lo, hi)
    g = nudge(bits, lo_t.detach(), hi_t.detach())
    c = torch.arange(2**bits, device=g.scale.device, dtype=torch.float32)
    return (c - g.zero.unsqueeze(-1)) * g.scale.unsqueeze(-1)


def _member_range(x: Tensor, members: int | None) -> tuple[Tensor, Tensor]:
    """min and max of the whole tensor, or of each member's slice (shape (K, 1, ..., 1))."""
    if members is None:
        return x.amin(), x.amax()
    dims = tuple(range(1, x.ndim))
    return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)


def _check_members(x: Tensor, members: int | None) -> None:
    if members is not None and (x.ndim < 2 or x.shape[0] != members):
        raise ValueError(
            f"members={members} needs a leading member dimension of size {members}, "
            f"got shape {tuple(x.shape)}"
        )


def _check_count(members: int | None) -> None:
    if members is not None and (isinstance(members, bool) or not isinstance(members, int)):
        raise ValueError(f"members must be None or an integer >= 1, got {members!r}")
    if members is not None and members < 1:
        raise ValueError(f"members must be None or an integer >= 1, got {members!r}")


def quantize_weight(w: Tensor, bits: int, members: int | None = None) -> Tensor:
    """A weight tensor on the k-bit grid of its own range ``[min(W.min(), 0), max(W.max(), 0)]``
    (tfmot's ``LastValueQuantizer``, per tensor, asymmetric), straight-through gradient to ``w``
    and none to the range. ``members=K``: ``w`` is (K, ...) stacked weights, one range each.

    >>> quantize_weight(torch.tensor([[-0.3, 0.05], [0.2, 0.6]]), 2).tolist()
    [[-0.30000001192092896, 0.0], [0.30000001192092896, 0.6000000238418579]]
    """
    _check_count(members)
    _check_members(w, members)
    lo, hi = _member_range(w.detach(), members)
    return quantize(w, bits, lo.clamp_max(0.0), hi.clamp_min(0.0))


class Quantize(nn.Module):
    """Quantize a layer's output to k bits: a layer (``nn.Sequential(..., nn.Tanh(),
    Quantize(8, mode="batch"))``) or a forward hook (``layer.register_forward_hook(q.hook)``).

    Args:
        bits: k, an integer in 1..16.
        lo, hi: the range of ``mode="fixed"`` (``lo <= 0 <= hi``); not given for the others.
        mode: ``"fixed"``, ``"batch"`` or ``"ema"`` (module docstring).
        members: None (one range for the whole tensor) or K (the input's leading dimension
            indexes K networks, each with its own range; ``"ema"`` keeps K ranges).

    Example:
        >>> q = Quantize(4, mode="ema")
        >>> _ = q(torch.tensor([0.0, 2.0]))  # training: r = (-6, 6) + 0.001 · ((0, 2) - (-6, 6))
        >>> round(q.range_lo.item(), 3), round(q.range_hi.item(), 3)
        (-5.994, 5.996)
    """

    def __init__(
        self,
        bits: int,
        lo: float | None = None,
        hi: float | None = None,
        *,
        mode: str = "fixed",
        members: int | None = None,
    ) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        _check_count(members)
        self.mode, self.members = mode, members
        given = lo is not None or hi is not None
        if mode == "fixed" and not given:
            raise ValueError("mode='fixed' needs a range: Quantize(bits, lo, hi)")
        if mode == "fixed":
            _check_range(lo, hi)
        elif given:
            raise ValueError(f"lo and hi are for mode='fixed' only, got them with mode={mode!r}")
        shape = () if members is None else (members,)
        if mode == "ema":
            self.register_buffer("range_lo", torch.full(shape, EMA_INIT[0]))
            self.register_buffer("range_hi", torch.full(shape, EMA_INIT[1]))
        elif mode == "fixed":
            self.register_buffer("range_lo", torch.full(shape, float(lo)))
            self.register_buffer("range_hi", torch.full(shape, float(hi)))

    def _stored(self, x: Tensor) -> tuple[Tensor, Tensor]:
        view = () if self.members is None else (self.members,) + (1,) * (x.ndim - 1)
        return self.range_lo.view(view), self.range_hi.view(view)

    @torch.no_grad()
    def _update_ema(self, x: Tensor) -> None:
        lo, hi = _member_range(x.detach().to(torch.float32), self.members)
        rate = torch.tensor(1.0 - EMA_DECAY, dtype=torch.float32, device=x.device)
        for buf, value in ((self.range_lo, lo.clamp_max(0.0)), (self.range_hi, hi.clamp_min(0.0))):
            buf.sub_((buf - value.reshape(buf.shape)) * rate)

    def forward(self, x: Tensor) -> Tensor:
        _check_members(x, self.members)
        if self.mode == "batch":
            lo, hi = _member_range(x, self.members)
            return _FakeQuant.apply(x, lo, hi, self.bits)
        if self.mode == "ema" and self.training:
            self._update_ema(x)
        lo, hi = self._stored(x)
        return _FakeQuant.apply(x, lo, hi, self.bits)

    def hook(self, module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        """Forward-hook form: ``module``'s output, quantized."""
        return self(output)

    def extra_repr(self) -> str:
        extra = f", members={self.members}" if self.members is not None else ""
        if self.mode == "fixed":
            lo, hi = float(self.range_lo.reshape(-1)[0]), float(self.range_hi.reshape(-1)[0])
            return f"bits={self.bits}, lo={lo}, hi={hi}{extra}"
        return f"bits={self.bits}, mode={self.mode!r}{extra}"


class QuantizeWeight(nn.Module):
    """:func:`quantize_weight` as a module, for ``torch.nn.utils.parametrize``:
    ``register_parametrization(linear, "weight", QuantizeWeight(8))`` trains the full-precision
    weight and computes with its quantized value (straight-through)."""

    def __init__(self, bits: int, members: int | None = None) -> None:
        super().__init__()
        self.bits = check_bits(bits)
        _check_count(members)
        self.members = members

    def forward(self, w: Tensor) -> Tensor:
        return quantize_weight(w, self.bits, self.members)

    def extra_repr(self) -> str:
        return f"bits={self.bits}" + (f", members={self.members}" if self.members else "")
