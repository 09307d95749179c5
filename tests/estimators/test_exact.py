"""Tests for infoflow.estimators.exact.exact_information: brute force with plain Python Counters in
float64 (rows as tuples), closed forms, and an end-to-end quantized network."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from torch import nn

from infoflow.data.szt import make_szt_dataset
from infoflow.estimators import exact_information
from infoflow.models.quantize import Quantize
from tests.estimators.conftest import gen


def _h(items: list) -> float:
    n = len(items)
    return -sum(c / n * math.log(c / n) for c in Counter(items).values())


def _brute(rows: list[tuple], labels: list[int], inputs: list | None = None) -> dict:
    """H(T), I(X;T) = H(X) + H(T) - H(X,T) with X the input (default: the row's index), and
    I(T;Y) = H(T) - sum_y p(y) H(T | Y = y), all from Counters."""
    xs = inputs if inputs is not None else list(range(len(rows)))
    h_t = _h(rows)
    h_t_given_y = sum(
        labels.count(y) / len(labels) * _h([r for r, v in zip(rows, labels, strict=True) if v == y])
        for y in set(labels)
    )
    return {
        "H_T": h_t,
        "I_XT": _h(xs) + h_t - _h(list(zip(xs, rows, strict=True))),
        "I_TY": h_t - h_t_given_y,
    }


def _rows(t: torch.Tensor) -> list[tuple]:
    return [tuple(r) for r in t.tolist()]


@pytest.mark.parametrize("dtype", [torch.int64, torch.int16, torch.float32, torch.float64])
@pytest.mark.parametrize(("n", "d", "levels"), [(40, 1, 3), (200, 3, 2), (300, 4, 4), (64, 2, 16)])
def test_one_network_matches_brute_force(dtype, n, d, levels):
    g = gen(n * d + levels)
    codes = torch.randint(0, levels, (n, d), generator=g)
    values = (codes * 0.25 - 0.5).to(dtype) if dtype.is_floating_point else codes.to(dtype)
    y = torch.randint(0, 3, (n,), generator=g)
    got = exact_information(values, y)
    want = _brute(_rows(values), y.tolist())
    assert set(got) == {"H_T", "I_XT", "I_TY"} and all(isinstance(v, float) for v in got.values())
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)


@pytest.mark.parametrize("shared_labels", [True, False])
def test_ensemble_matches_brute_force_per_member(shared_labels):
    g = gen(11)
    k, n, d = 5, 150, 3
    # members on different grids (their own ranges) and with different numbers of levels
    codes = torch.stack([torch.randint(0, 2 + j, (n, d), generator=g) for j in range(k)])
    values = codes * torch.tensor([0.1, 0.5, 1.0, 2.0, 3.0]).view(k, 1, 1)
    y = torch.randint(0, 2, (n,) if shared_labels else (k, n), generator=g)
    got = exact_information(values, y)
    assert isinstance(got, list) and len(got) == k
    for j in range(k):
        yj = y if shared_labels else y[j]
        want = _brute(_rows(values[j]), yj.tolist())
        for key in want:
            assert got[j][key] == pytest.approx(want[key], abs=1e-12)


def test_closed_forms():
    n = 64
    y = torch.arange(n) % 4
    distinct = torch.arange(n, dtype=torch.float32)[:, None]
    r = exact_information(distinct, y)
    assert r["H_T"] == pytest.approx(math.log(n), abs=1e-12)
    assert r["I_XT"] == pytest.approx(math.log(n), abs=1e-12)
    assert r["I_TY"] == pytest.approx(math.log(4), abs=1e-12)  # T determines Y
    same = exact_information(torch.full((n, 3), 0.7), y)
    assert same == {"H_T": 0.0, "I_XT": 0.0, "I_TY": 0.0}
    t_is_y = exact_information(y[:, None].float(), y)  # T = Y: I(T;Y) = H(Y) = ln 4
    assert t_is_y["I_TY"] == pytest.approx(math.log(4), abs=1e-12)
    assert t_is_y["H_T"] == pytest.approx(math.log(4), abs=1e-12)
    # an ensemble of the three, through the same path
    stacked = exact_information(
        torch.stack([distinct.expand(n, 3), torch.full((n, 3), 0.7), y[:, None].expand(n, 3)]), y
    )
    assert [m["H_T"] for m in stacked] == pytest.approx([math.log(n), 0.0, math.log(4)], abs=1e-12)


def test_repeated_inputs_still_give_i_xt_equal_h_t():
    """X uniform over the rows; an input given twice has the same T twice (T = f(X)), so
    I(X;T) = H(X) + H(T) - H(X,T) = H(T) still, and H(T) <= H(X) < ln n."""
    g = gen(12)
    inputs = torch.randint(0, 30, (200,), generator=g)  # ~30 distinct inputs, many repeats
    table = torch.randint(0, 6, (30, 2), generator=g).double() / 5  # a deterministic layer f
    t = table[inputs]
    y = inputs % 3
    got = exact_information(t, y)
    want = _brute(_rows(t), y.tolist(), inputs=inputs.tolist())
    assert got["I_XT"] == pytest.approx(want["I_XT"], abs=1e-12)
    assert got["I_XT"] == pytest.approx(got["H_T"], abs=1e-12)
    assert got["H_T"] <= _h(inputs.tolist()) + 1e-12 < math.log(200)


def test_negative_zero_is_zero():
    t = torch.tensor([[0.0], [-0.0], [1.0], [1.0]])
    assert exact_information(t, torch.tensor([0, 1, 0, 1]))["H_T"] == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("reps", "labels", "match"),
    [
        (torch.zeros(4, 2), torch.zeros(5, dtype=torch.long), r"labels must have shape \(4,\)"),
        (torch.zeros(2, 4, 2), torch.zeros(3, 4, dtype=torch.long), r"\(4,\) or \(2, 4\)"),
        (torch.zeros(4, 2), torch.zeros(4), "labels must be an integer tensor"),
        (torch.zeros(2, 2, 2, 2), torch.zeros(2, dtype=torch.long), r"\(n, d\) or \(K, n, d\)"),
        (torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), r"\(n, d\) or \(K, n, d\)"),
        (torch.tensor([[math.nan]]), torch.zeros(1, dtype=torch.long), "NaN or inf"),
        ([[0.0]], torch.zeros(1, dtype=torch.long), "got list"),
    ],
)
def test_bad_input_is_one_line(reps, labels, match):
    with pytest.raises(ValueError, match=match) as err:
        exact_information(reps, labels)
    assert "\n" not in str(err.value)


class _QuantizedMLP(nn.Module):
    """12-10-7-5-4-3-2 tanh, each hidden activation quantized to 4 bits on its batch range."""

    def __init__(self, quantizer=lambda: Quantize(4, mode="batch")) -> None:
        super().__init__()
        widths = [12, 10, 7, 5, 4, 3]
        self.hidden = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b), nn.Tanh(), quantizer())
            for a, b in zip(widths, widths[1:], strict=False)
        )
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        layers = []
        for block in self.hidden:
            x = block(x)
            layers.append(x)
        return self.head(x), layers


class _RoundNoGradient(nn.Module):
    """The same grid without the straight-through gradient (torch.round: zero derivative)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lo, hi = x.detach().amin(), x.detach().amax()
        scale = (hi - lo) / 15
        return torch.round((x - lo) / scale) * scale + lo


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> list[float]:
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x)[0], y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_quantized_tanh_net_trains_through_the_straight_through_gradient_and_is_measured_exactly():
    patterns, labels = make_szt_dataset()
    x, y = torch.tensor(patterns[::4], dtype=torch.float32), torch.tensor(labels[::4])  # 1024
    torch.manual_seed(0)
    model = _QuantizedMLP()
    losses = _train(model, x, y, steps=150)
    assert losses[-1] < losses[0] - 0.1  # it learns (chance ~0.69)
    # without the straight-through gradient nothing reaches the hidden weights
    torch.manual_seed(0)
    frozen = _QuantizedMLP(_RoundNoGradient)
    first = frozen.hidden[0][0].weight.detach().clone()
    _train(frozen, x, y, steps=3)
    assert torch.equal(frozen.hidden[0][0].weight, first)
    # the trained net's layers are on 4-bit grids, and their information is exact
    model.eval()
    with torch.no_grad():
        layers = model(x)[1]
    for t in layers:
        assert all(len(torch.unique(t[:, j])) <= 16 for j in range(t.shape[1]))
        got = exact_information(t, y)
        want = _brute(_rows(t), y.tolist())
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-12)
    assert 0 < got["I_TY"] <= _h(y.tolist()) + 1e-12  # the 3-unit layer carries label information
