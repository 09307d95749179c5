"""Tests for infoflow.estimators.kde.kde_information (Kolchinsky–Tracey bounds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoflow.estimators.kde import kde_information

integrate = pytest.importorskip("scipy.integrate")


def _mixture_entropy_1d(means: np.ndarray, var: float) -> float:
    sd = math.sqrt(var)

    def neg_p_log_p(t: float) -> float:
        p = np.mean(np.exp(-((t - means) ** 2) / (2 * var))) / math.sqrt(2 * math.pi * var)
        return -p * math.log(p) if p > 0 else 0.0

    lo, hi = means.min() - 12 * sd, means.max() + 12 * sd
    pts = np.unique(means)[:50]
    return integrate.quad(neg_p_log_p, lo, hi, points=pts, limit=1000, epsabs=1e-11)[0]


def _mixture_entropy_2d(means: np.ndarray, var: float) -> float:
    # tensor-product trapezoid rule, spectrally accurate for Gaussians at step sd/8
    sd = math.sqrt(var)
    axes = [
        np.arange(means[:, k].min() - 10 * sd, means[:, k].max() + 10 * sd, sd / 8) for k in (0, 1)
    ]
    gx, gy = np.meshgrid(*axes, indexing="ij")
    d2 = (gx[..., None] - means[:, 0]) ** 2 + (gy[..., None] - means[:, 1]) ** 2
    p = np.exp(-d2 / (2 * var)).mean(axis=-1) / (2 * math.pi * var)
    integrand = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
    return float(integrate.trapezoid(integrate.trapezoid(integrand, axes[1], axis=1), axes[0]))


def _true_i_xt(means: np.ndarray, var: float) -> float:
    d = means.shape[1]
    h = _mixture_entropy_1d(means[:, 0], var) if d == 1 else _mixture_entropy_2d(means, var)
    return h - 0.5 * d * math.log(2 * math.pi * math.e * var)


def _configs() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [
        ("1d-separated", np.array([[0.0], [10.0], [20.0], [30.0]])),
        ("1d-overlapping", np.array([[0.0], [0.7], [1.5], [1.6], [3.0]])),
        ("1d-coincident", np.zeros((4, 1))),
        ("1d-two-plus-one", np.array([[0.0], [0.0], [2.0]])),
        ("1d-random", rng.normal(0, 2.0, (12, 1))),
        ("2d-overlapping", np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.5], [1.2, 1.2]])),
        ("2d-random", rng.normal(0, 1.5, (8, 2))),
        ("2d-clusters", np.array([[0.0, 0.0], [0.1, 0.0], [4.0, 4.0], [4.0, 4.2], [8.0, 0.0]])),
    ]


@pytest.mark.parametrize(("name", "means"), _configs(), ids=[c[0] for c in _configs()])
def test_bounds_bracket_quadrature_truth(name, means):
    var = 1.0
    truth = _true_i_xt(means, var)
    labels = torch.zeros(len(means), dtype=torch.long)
    r = kde_information(torch.as_tensor(means), labels, noise_var=var)
    assert r["I_XT_lower"] <= truth + 1e-7
    assert truth <= r["I_XT_upper"] + 1e-7
    assert 0.0 <= r["I_XT_lower"] <= r["I_XT_upper"] <= math.log(len(means)) + 1e-12


def test_limits():
    labels = torch.tensor([0, 1, 0, 1, 2])
    same = kde_information(torch.ones(5, 3), labels, noise_var=1e-3)
    assert same == pytest.approx(dict.fromkeys(same, 0.0), abs=1e-12)
    far = torch.arange(5, dtype=torch.float64)[:, None] * 100.0
    r = kde_information(far, labels, noise_var=1e-3)
    assert r["I_XT_upper"] == pytest.approx(math.log(5), abs=1e-12)
    assert r["I_XT_lower"] == pytest.approx(math.log(5), abs=1e-12)
    # I_TY = H(T) - H(T|Y): ln 5 - (2/5 ln 2 + 2/5 ln 2 + 0)
    expected = math.log(5) - 0.8 * math.log(2)
    assert r["I_TY_upper"] == pytest.approx(expected, abs=1e-12)
    assert r["I_TY_lower"] == pytest.approx(expected, abs=1e-12)


def test_classes_as_far_clusters_give_h_y():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    acts = labels.double()[:, None].repeat(1, 2) * 50.0  # coincident within class
    r = kde_information(acts, labels, noise_var=0.1)
    h_y = -sum(p * math.log(p) for p in (3 / 8, 2 / 8, 3 / 8))
    for key in r:
        assert r[key] == pytest.approx(h_y, abs=1e-12)


def _saxe_reference(h: np.ndarray, y: np.ndarray, var: float) -> dict[str, float]:
    """Literal numpy version of Saxe et al.'s kde.py estimators and their I(T;Y) convention."""

    def h_kl(x, v):
        dims, n = x.shape[1], x.shape[0]
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1) / (2 * v)
        lprobs = np.log(np.exp(-d).sum(1)) - np.log(n) - (dims / 2) * np.log(2 * np.pi * v)
        return dims / 2 - lprobs.mean()

    def h_bd(x, v):
        return h_kl(x, 4 * v) + np.log(0.25) * x.shape[1] / 2

    h_cond = (h.shape[1] / 2) * (np.log(2 * np.pi * var) + 1)
    out = {"I_XT_upper": h_kl(h, var) - h_cond, "I_XT_lower": h_bd(h, var) - h_cond}
    for key, f in (("I_TY_upper", h_kl), ("I_TY_lower", h_bd)):
        cond = sum(np.mean(y == c) * f(h[y == c], var) for c in np.unique(y))
        out[key] = f(h, var) - cond
    return out


@pytest.mark.parametrize("var", [1e-3, 1e-1, 1.0])
def test_matches_saxe_reference_and_chunking(var):
    g = torch.Generator().manual_seed(3)
    h = torch.tanh(torch.randn(61, 4, generator=g, dtype=torch.float64)) * 0.3
    y = torch.randint(0, 3, (61,), generator=g)
    ref = _saxe_reference(h.numpy(), y.numpy(), var)
    full = kde_information(h, y, noise_var=var, chunk_size=4096)
    for chunk in (3, 7, 32):
        assert kde_information(h, y, noise_var=var, chunk_size=chunk) == pytest.approx(
            full, rel=1e-12, abs=1e-12
        )
    assert full == pytest.approx(ref, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_var": 0.0}, "noise_var"),
        ({"noise_var": -1.0}, "noise_var"),
        ({"noise_var": float("nan")}, "noise_var"),
        ({"noise_var": 1.0, "chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kde_information(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), **kwargs)


def test_bad_tensors():
    y = torch.zeros(3, dtype=torch.long)
    with pytest.raises(ValueError, match="activations"):
        kde_information(torch.tensor([[0.0], [float("nan")], [1.0]]), y, noise_var=1.0)
    with pytest.raises(ValueError, match="labels"):
        kde_information(torch.zeros(4, 2), y, noise_var=1.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(5)
    h, y = torch.randn(300, 5, generator=g), torch.randint(0, 4, (300,), generator=g)
    cpu = kde_information(h, y, noise_var=0.1, chunk_size=64)
    gpu = kde_information(h.cuda(), y.cuda(), noise_var=0.1, chunk_size=64)
    assert gpu == pytest.approx(cpu, rel=1e-9, abs=1e-9)
