"""Quantized networks (Lorenzen et al. 2022): layers that take at most 2^k values, trained with a
straight-through gradient, and their exact information equal to a brute-force count."""

import math
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from infoflow.callbacks.exact import ExactCallback
from infoflow.callbacks.measurement import measurement
from infoflow.callbacks.schedule import measuring
from infoflow.data.datamodule import SZTDataModule
from infoflow.models.mlp import MLPEnsemble
from infoflow.models.module import ClassifierModule
from infoflow.models.named_layers import NamedLayers


def _brute(rows: list[tuple], labels: list[int]) -> dict[str, float]:
    """H(T), I(T;Y) of the empirical distribution, by counting in plain Python (float64)."""
    n = len(rows)

    def h(items: list) -> float:
        return -sum(c / n * math.log(c / n) for c in Counter(items).values())

    h_t = h(rows)
    return {
        "H_T": h_t,
        "I_XT": h_t,
        "I_TY": h_t + h(labels) - h(list(zip(rows, labels, strict=True))),
    }


@pytest.mark.parametrize(("activation", "bits"), [("tanh", 4), ("relu", 3)])
def test_every_member_layer_takes_at_most_two_to_the_k_values(activation, bits):
    net = MLPEnsemble([0, 1], activation=activation, quantize_bits=bits).eval()
    x = torch.rand(2, 500, 12).round()
    for out in net.layer_outputs(x, noise=False):
        for k in range(2):
            assert torch.unique(out.pre_noise[k]).numel() <= 2**bits


def test_a_quantized_network_learns_through_the_straight_through_gradient():
    torch.manual_seed(0)
    net = MLPEnsemble([0], quantize_bits=4, init="glorot")
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    data = SZTDataModule(seeds=[0])
    data.setup()
    x, y = data.tensors["x_train"], data.tensors["y_train"]
    losses = []
    for _ in range(200):
        loss = nn.functional.cross_entropy(net(x)[0], y[0])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.6 * losses[0]


def test_noise_and_quantization_are_refused_together():
    with pytest.raises(ValueError, match=r"quantize_bits=8 needs beta=0"):
        MLPEnsemble([0], beta=0.01, quantize_bits=8)
    with pytest.raises(ValueError, match=r"quantize_bits=17: must be an integer in \[1, 16\]"):
        MLPEnsemble([0], quantize_bits=17)


def test_exact_callback_equals_a_brute_force_count_for_every_member(tmp_path):
    net = MLPEnsemble([3, 4], hidden=[6, 3], quantize_bits=3)
    module = ClassifierModule(net, torch.optim.Adam)
    data = SZTDataModule(seeds=[3, 4])
    data.setup()
    module.trainer = SimpleNamespace(datamodule=data)
    with measuring(module):
        m = measurement(module, 0)
        rows = ExactCallback(tmp_path, n_points=2).measure(m)
        reps = m.noiseless
    got = {(r[0], r[1], r[3]): r[4] for r in rows}
    for k, seed in enumerate((3, 4)):
        for layer, t in enumerate(reps, start=1):
            want = _brute([tuple(v) for v in t[k].tolist()], m.labels[k].tolist())
            for q, v in want.items():
                assert got[(seed, layer, q)] == pytest.approx(v, abs=1e-12)


def test_a_custom_network_quantized_at_its_named_layers():
    body = lambda: nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2))  # noqa: E731
    net = NamedLayers(body, ["1"], seeds=[0, 1], quantize_bits=2)
    out = net.layer_outputs(torch.randn(2, 300, 4), noise=False)[0].pre_noise
    assert all(torch.unique(out[k]).numel() <= 4 for k in range(2))
    with pytest.raises(ValueError, match="needs beta=0"):
        NamedLayers(body, ["1"], beta=0.1, quantize_bits=2)


def test_a_network_that_is_not_quantized_gets_no_exact_rows(tmp_path):
    module = ClassifierModule(MLPEnsemble([0]), torch.optim.Adam)
    data = SZTDataModule(seeds=[0])
    data.setup()
    module.trainer = SimpleNamespace(datamodule=data)
    with measuring(module):
        assert ExactCallback(tmp_path, n_points=2).measure(measurement(module, 0)) == []
