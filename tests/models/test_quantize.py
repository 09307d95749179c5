"""Tests for infoflow.models.quantize against a literal numpy port of TensorFlow's fake
quantization (``fake_quant_ops_functor.h``: Nudge, FakeQuantWithMinMaxVars and its gradient) and
of tfmot's moving-average and last-value ranges, all in numpy float32 scalars and arrays.

(The torch code was also compared once with TensorFlow 2.21 itself, out of the suite: 300 random
cases, 77,100 values, bit for bit, gradients to input, min and max included; see
benchmarks/notes_quantized.md.)
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from infoflow.models.quantize import (
    Quantize,
    QuantizeWeight,
    codes,
    grid,
    nudge,
    quantize,
    quantize_weight,
)

F = np.float32


def _tf_nudge(lo: float, hi: float, bits: int) -> tuple[F, F, F, F, F]:
    """TensorFlow's Nudge, line by line in float32: (scale, inv_scale, zero, nudged lo, hi)."""
    qmin, qmax = F(0), F(2**bits - 1)
    lo, hi = F(lo), F(hi)
    scale = (hi - lo) / (qmax - qmin)
    inv_scale = (qmax - qmin) / (hi - lo)
    zero_from_min = qmin - lo / scale
    if zero_from_min < qmin:
        zero = qmin
    elif zero_from_min > qmax:
        zero = qmax
    else:  # std::round of a float >= 0; exact in float64
        zero = F(math.floor(float(zero_from_min) + 0.5))
    return scale, inv_scale, zero, (qmin - zero) * scale, (qmax - zero) * scale


def _tf_fake_quant(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """FakeQuantWithMinMaxVarsFunctor on a float32 array."""
    x = x.astype(F)
    if F(lo) == 0 and F(hi) == 0:
        return np.zeros_like(x)
    scale, inv_scale, _, nlo, nhi = _tf_nudge(lo, hi, bits)
    quant_zero = np.floor(-nlo * inv_scale + F(0.5))
    clamped = np.maximum(np.minimum(x, nhi), nlo)
    return np.floor((clamped - nlo) / scale - quant_zero + F(0.5)) * scale


def _tf_grads(x: np.ndarray, g: np.ndarray, lo: float, hi: float, bits: int):
    """FakeQuantWithMinMaxVarsGradientFunctor: (d/dx, d/dmin, d/dmax)."""
    *_, nlo, nhi = _tf_nudge(lo, hi, bits)
    x = x.astype(F)
    inside = (x >= nlo) & (x <= nhi)
    return g * inside, g[x < nlo].sum(), g[x > nhi].sum()


def _same_bits(a: torch.Tensor, b: np.ndarray) -> bool:
    return np.array_equal(a.detach().numpy().astype(F).view(np.int32), b.astype(F).view(np.int32))


# (-0.5, 2.5) at 2 bits: the zero point 0.5 exactly, std::round's half away from zero
RANGES = [(-1, 1), (-0.5, 2.5), (0, 1), (-0.3, 2.7), (-5.9, 0.4), (0, 6), (-1e-3, 3), (-2, 0)]


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8, 12, 16])
@pytest.mark.parametrize(("lo", "hi"), RANGES)
def test_matches_the_tensorflow_port_bit_for_bit(bits, lo, hi):
    gen = torch.Generator().manual_seed(bits)
    x = (torch.rand(2000, generator=gen) * 1.4 - 0.2) * (hi - lo) + lo  # 20 % beyond the range
    scale, _, zero, *_ = _tf_nudge(lo, hi, bits)
    levels = (np.arange(2**bits, dtype=F)[:: max(1, 2**bits // 500)] - zero) * scale
    halves = levels[:-1] + F(0.5) * (levels[1:] - levels[:-1])  # where rounding is decided
    x = torch.cat([x, torch.tensor(levels), torch.tensor(halves), torch.tensor([lo, hi, 0.0])])
    assert _same_bits(quantize(x, bits, lo, hi), _tf_fake_quant(x.numpy(), lo, hi, bits))


def test_tanh_range_at_8_bits_keeps_127_levels_below_zero():
    # float32: -(-1 / float32(2 / 255)) = 127.49999 rounds to 127 (TensorFlow 2.21 agrees)
    scale, _, zero, nlo, nhi = _tf_nudge(-1.0, 1.0, 8)
    assert zero == 127
    g = nudge(8, -1.0, 1.0)
    assert (g.zero.item(), g.lo.item(), g.hi.item()) == (127.0, float(nlo), float(nhi))
    assert float(nlo) == pytest.approx(-127 * 2 / 255)
    assert float(nhi) == pytest.approx(128 * 2 / 255)


def test_two_bits_on_unit_interval_closed_form():
    assert grid(2, 0.0, 1.0).tolist() == [float(F(k / 3)) for k in range(4)]
    x = torch.tensor([-1.0, 0.1, 1 / 6 + 1e-6, 0.5, 5 / 6 + 1e-6, 1.0, 3.0])
    assert codes(x, 2, 0.0, 1.0).tolist() == [0, 0, 1, 2, 3, 3, 3]


@pytest.mark.parametrize("bits", [1, 4, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_are_grid_values_and_codes_round_trip(bits, dtype):
    lo, hi = -0.7, 1.3
    x = torch.linspace(-2, 2, 5001, dtype=dtype)
    q, c, levels = quantize(x, bits, lo, hi), codes(x, bits, lo, hi), grid(bits, lo, hi)
    assert q.dtype == dtype and c.dtype == torch.int64
    assert int(c.min()) >= 0 and int(c.max()) <= 2**bits - 1
    assert torch.equal(levels.to(dtype)[c], q)  # equal codes, bit-identical floats
    assert len(torch.unique(q)) <= 2**bits and 0.0 in levels.tolist()
    assert torch.equal(quantize(levels, bits, lo, hi), levels)  # idempotent on the grid
    assert codes(levels, bits, lo, hi).tolist() == list(range(2**bits))
    assert bool((levels[1:] > levels[:-1]).all())


@pytest.mark.parametrize("bits", [2, 8])
def test_straight_through_gradient_inside_zero_outside_and_to_the_range(bits):
    lo, hi = -0.8, 1.1
    gen = torch.Generator().manual_seed(3)
    x = (torch.rand(500, generator=gen) * 4 - 2).requires_grad_()
    upstream = torch.randn(500, generator=gen)
    lo_t = torch.tensor(lo, requires_grad=True)
    hi_t = torch.tensor(hi, requires_grad=True)
    (quantize(x, bits, lo_t, hi_t) * upstream).sum().backward()
    want_x, want_lo, want_hi = _tf_grads(x.detach().numpy(), upstream.numpy(), lo, hi, bits)
    assert np.array_equal(x.grad.numpy(), want_x)
    assert lo_t.grad.item() == pytest.approx(float(want_lo), rel=1e-6)
    assert hi_t.grad.item() == pytest.approx(float(want_hi), rel=1e-6)
    *_, nlo, nhi = _tf_nudge(lo, hi, bits)
    inside = (x.detach() >= float(nlo)) & (x.detach() <= float(nhi))
    assert torch.equal(x.grad[inside], upstream[inside])  # the identity inside the range
    assert bool((x.grad[~inside] == 0).all()) and bool((~inside).any())


def test_batch_mode_is_tanh_quantizer_of_lorenzen_et_al():
    """Their TanhQuantizer: fake quantization on min and max of the activations, gradient to the
    range flowing into the extreme elements (reduce_min / reduce_max)."""
    gen = torch.Generator().manual_seed(4)
    pre = (torch.randn(64, 7, generator=gen) * 2).requires_grad_()
    upstream = torch.randn(64, 7, generator=gen)
    acts = torch.tanh(pre)
    out = Quantize(4, mode="batch")(acts)
    a = acts.detach().numpy()
    assert _same_bits(out, _tf_fake_quant(a, a.min(), a.max(), 4))
    acts.retain_grad()
    (out * upstream).sum().backward()
    g_in, g_lo, g_hi = _tf_grads(a, upstream.numpy(), a.min(), a.max(), 4)
    want = g_in.copy()
    want[np.unravel_index(a.argmin(), a.shape)] += g_lo
    want[np.unravel_index(a.argmax(), a.shape)] += g_hi
    np.testing.assert_allclose(acts.grad.numpy(), want, rtol=1e-6, atol=1e-7)


def test_ema_mode_updates_like_tfmot_in_training_only():
    q = Quantize(4, mode="ema")
    gen = torch.Generator().manual_seed(5)
    lo, hi = F(-6.0), F(6.0)
    rate = F(1.0 - 0.999)
    for _ in range(30):
        x = torch.relu(torch.randn(32, 5, generator=gen) * 3)
        out = q(x)
        lo = lo - (lo - min(F(x.min()), F(0))) * rate
        hi = hi - (hi - max(F(x.max()), F(0))) * rate
        assert (q.range_lo.item(), q.range_hi.item()) == (float(lo), float(hi))
        assert _same_bits(out, _tf_fake_quant(x.numpy(), lo, hi, 4))
    q.eval()
    x = torch.full((3, 5), 100.0)
    assert _same_bits(q(x), _tf_fake_quant(x.numpy(), lo, hi, 4))
    assert q.range_hi.item() == float(hi)  # eval: no update
    state = q.state_dict()
    assert set(state) == {"range_lo", "range_hi"}  # the range is saved with the model


def test_members_have_their_own_ranges():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(3, 20, 4, generator=gen) * torch.tensor([0.5, 1.0, 3.0]).view(3, 1, 1)
    got = Quantize(8, mode="batch", members=3)(x)
    for k in range(3):
        a = x[k].numpy()
        assert _same_bits(got[k], _tf_fake_quant(a, a.min(), a.max(), 8))
    ema = Quantize(8, mode="ema", members=3)
    ema(x)
    assert ema.range_lo.shape == (3,)
    want = [float(F(-6) - (F(-6) - min(F(x[k].min()), F(0))) * F(0.001)) for k in range(3)]
    assert ema.range_lo.tolist() == want
    with pytest.raises(ValueError, match="members=3 needs a leading member dimension of size 3"):
        Quantize(8, mode="batch", members=3)(torch.zeros(2, 5))


def test_weights_on_their_own_range_with_straight_through_gradient():
    gen = torch.Generator().manual_seed(7)
    w = (torch.randn(10, 7, generator=gen) * 0.4).requires_grad_()
    q = quantize_weight(w, 4)
    a = w.detach().numpy()
    assert _same_bits(q, _tf_fake_quant(a, min(a.min(), 0), max(a.max(), 0), 4))
    q.sum().backward()
    *_, nlo, nhi = _tf_nudge(min(a.min(), 0), max(a.max(), 0), 4)
    assert np.array_equal(w.grad.numpy(), ((a >= nlo) & (a <= nhi)).astype(F))
    stacked = torch.randn(2, 3, 4, generator=gen) * torch.tensor([0.1, 2.0]).view(2, 1, 1)
    got = quantize_weight(stacked, 4, members=2)
    for k in range(2):
        a = stacked[k].numpy()
        assert _same_bits(got[k], _tf_fake_quant(a, min(a.min(), 0), max(a.max(), 0), 4))


def test_weight_parametrization_trains_the_full_precision_weight():
    torch.manual_seed(8)
    layer = nn.Linear(5, 3)
    parametrize.register_parametrization(layer, "weight", QuantizeWeight(4))
    raw = layer.parametrizations.weight.original
    assert len(torch.unique(layer.weight)) <= 16
    before = raw.detach().clone()
    torch.optim.SGD(layer.parameters(), lr=0.1).zero_grad()
    layer(torch.randn(8, 5)).pow(2).sum().backward()
    assert raw.grad is not None and bool((raw.grad != 0).any())
    with torch.no_grad():
        raw -= 0.1 * raw.grad
    assert not torch.equal(raw, before)


def test_forward_hook_quantizes_a_layer_output():
    layer = nn.Linear(4, 6)
    q = Quantize(3, -1.0, 1.0)
    layer.register_forward_hook(q.hook)
    out = layer(torch.randn(50, 4))
    assert set(out.unique().tolist()) <= set(grid(3, -1.0, 1.0).tolist())


@pytest.mark.parametrize("bits", [0, 17, -1, 2.5, True, "8", None])
def test_bad_bits_is_one_line(bits):
    calls = [
        lambda: quantize(torch.zeros(3), bits, -1.0, 1.0),
        lambda: codes(torch.zeros(3), bits, -1.0, 1.0),
        lambda: Quantize(bits, mode="batch"),
        lambda: QuantizeWeight(bits),
    ]
    for call in calls:
        with pytest.raises(ValueError) as err:
            call()
        assert str(err.value) == f"bits must be an integer in 1..16, got {bits!r}"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: quantize(torch.zeros(3), 4, 0.5, 1.0), r"lo <= 0 <= hi and lo < hi, got \(0.5"),
        (lambda: quantize(torch.zeros(3), 4, 1.0, -1.0), "lo <= 0 <= hi"),
        (lambda: quantize(torch.zeros(3), 4, -math.inf, 1.0), "must be finite"),
        (lambda: Quantize(4), "mode='fixed' needs a range"),
        (lambda: Quantize(4, -1.0, 1.0, mode="batch"), "for mode='fixed' only"),
        (lambda: Quantize(4, mode="max"), "mode must be one of"),
        (lambda: Quantize(4, mode="ema", members=0), "members must be None or an integer >= 1"),
    ],
)
def test_bad_ranges_and_modes_are_one_line(make, match):
    with pytest.raises(ValueError, match=match) as err:
        make()
    assert "\n" not in str(err.value)
