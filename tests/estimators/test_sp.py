"""SP estimator against brute-force float64 plug-in values computed from the same samples."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from infoflow.estimators.mixture import gaussian_entropy
from infoflow.estimators.sp import SampleComplexityWarning, sp_information, sp_width_limit
from tests.estimators.conftest import gen
from tests.estimators.test_mixture import FLOOR, entropy_grid, entropy_quad_1d

KEYS = {"I_XT", "I_TY", "h_T", "h_T_given_X", "h_T_given_Y"}


def within(est, truth: float, k: float = 3.5, atol: float = 2e-3) -> bool:
    return abs(est.value - truth) <= k * est.stderr + atol


# ------------------------------------------------------------------ a small noisy 2→3→2 network
W1 = torch.tensor([[1.5, -2.0], [0.7, 1.2], [-1.0, 0.4]], dtype=torch.float64)
B1 = torch.tensor([0.1, -0.3, 0.2], dtype=torch.float64)
W2 = torch.tensor([[2.0, -1.0, 0.5], [-0.5, 1.5, 1.0]], dtype=torch.float64)
B2 = torch.tensor([0.0, 0.1], dtype=torch.float64)


def noisy_net(sigma: float, seed: int, record: list):
    g = gen(seed)

    def sample_fn(x: torch.Tensor) -> list[torch.Tensor]:
        s1 = torch.tanh(x @ W1.T + B1)
        t1 = s1 + sigma * torch.randn(s1.shape, generator=g, dtype=s1.dtype)
        s2 = torch.tanh(t1 @ W2.T + B2)
        record.append((s1, s2))
        return [s1, s2]

    return sample_fn


def test_two_layer_network_against_brute_force_plug_in():
    sigma, r = 0.1, 40
    inputs = torch.tensor(
        [[0.0, 0.0], [1.0, 0.5], [-1.0, 0.5], [0.3, -1.0], [2.0, 2.0], [0.5, 0.5]]
    )
    labels = torch.tensor([0, 0, 1, 1, 1, 0])
    record: list = []
    out = sp_information(
        noisy_net(sigma, 1, record),
        inputs.double(),
        labels,
        sigma=sigma,
        n_replicas=r,
        n_mc=40_000,
        n_mc_conditional=40_000,
        chunk_size=4,
        generator=gen(2),
    )
    assert set(out) == {0, 1} and all(set(v) == KEYS for v in out.values())
    lab = labels.numpy()
    for layer in (0, 1):
        s = torch.cat([rec[layer] for rec in record]).numpy().reshape(len(inputs), r, -1)
        d = s.shape[-1]
        # brute-force plug-in: grid integration of each mixture's −g log g, float64 numpy
        h_t = entropy_grid(
            np.unique(s.reshape(-1, d), axis=0) if layer == 0 else s.reshape(-1, d), sigma
        )
        if layer == 0:  # replicas coincide: exact Gaussian entropy
            h_tx = gaussian_entropy(d, sigma)
            h_y = {
                y: entropy_grid(np.unique(s[lab == y].reshape(-1, d), axis=0), sigma)
                for y in (0, 1)
            }
        else:
            h_tx = np.mean([entropy_grid(s[i], sigma) for i in range(len(inputs))])
            h_y = {y: entropy_grid(s[lab == y].reshape(-1, d), sigma) for y in (0, 1)}
        h_ty = sum((lab == y).mean() * h_y[y] for y in (0, 1))
        got = out[layer]
        assert within(got["h_T"], h_t), (layer, got["h_T"], h_t)
        assert within(got["h_T_given_X"], h_tx), (layer, got["h_T_given_X"], h_tx)
        assert within(got["h_T_given_Y"], h_ty), (layer, got["h_T_given_Y"], h_ty)
        assert within(got["I_XT"], h_t - h_tx), (layer, got["I_XT"], h_t - h_tx)
        assert within(got["I_TY"], h_t - h_ty), (layer, got["I_TY"], h_t - h_ty)
        assert got["I_XT"].stderr < 0.01
    assert out[0]["h_T_given_X"].stderr == 0.0  # first hidden layer: closed form
    assert out[1]["h_T_given_X"].stderr > 0.0


@pytest.mark.parametrize(("w", "sigma"), [(0.3, 0.05), (2.0, 0.01), (10.0, 0.01), (1.0, 0.1)])
def test_tanh_neuron_against_quadrature(w, sigma):
    x = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]], dtype=torch.float64)
    out = sp_information(
        lambda v: [torch.tanh(w * v)], x, sigma=sigma, n_replicas=2, n_mc=50_000, generator=gen(3)
    )
    truth = entropy_quad_1d(np.tanh(w * x[:, 0].numpy()), sigma) - gaussian_entropy(1, sigma)
    assert within(out[0]["I_XT"], truth, k=3.0, atol=FLOOR)
    assert abs(out[0]["I_XT"].value - truth) < 0.01
    assert math.isnan(out[0]["I_TY"].value) and math.isnan(out[0]["I_TY"].stderr)


def test_separated_inputs_give_ln_n_and_coincident_give_zero():
    x = torch.arange(6, dtype=torch.float64)[:, None]
    far = sp_information(lambda v: [v * 1.0], x, sigma=0.01, n_replicas=3, n_mc=20_000)
    assert within(far[0]["I_XT"], math.log(6))
    same = sp_information(lambda v: [v * 0.0], x, sigma=0.01, n_replicas=3, n_mc=20_000)
    assert within(same[0]["I_XT"], 0.0)
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    out = sp_information(lambda v: [v * 1.0], x, labels, sigma=0.01, n_replicas=3, n_mc=20_000)
    assert within(out[0]["I_TY"], math.log(2))  # T determines the class


def test_noise_of_earlier_layers_is_seen_and_conditional_entropy_is_batched():
    # layer 1 = layer 0 + noise of std 1 (≫ σ): replicas spread, so h(T|X) > Gaussian entropy
    x = torch.zeros(4, 1, dtype=torch.float64)
    g = gen(4)

    def fn(v):
        return [v, v + torch.randn(v.shape, generator=g, dtype=v.dtype)]

    out = sp_information(fn, x, sigma=0.05, n_replicas=200, n_mc=20_000, generator=gen(5))
    assert out[0]["h_T_given_X"] == out[0]["h_T_given_X"].__class__(gaussian_entropy(1, 0.05))
    # 200 samples of N(0, 1) blurred by σ: entropy close to that of N(0, 1 + σ²)
    target = 0.5 * math.log(2 * math.pi * math.e * (1 + 0.05**2))
    assert abs(out[1]["h_T_given_X"].value - target) < 0.15


def test_sample_fn_is_called_once_per_chunk_with_replicated_inputs():
    calls = []

    def fn(v):
        calls.append(v.clone())
        return [torch.tanh(v)]

    x = torch.arange(10, dtype=torch.float64)[:, None] / 10
    sp_information(fn, x, sigma=0.1, n_replicas=3, chunk_size=4, n_mc=2000)
    assert [c.shape[0] for c in calls] == [12, 12, 6]
    assert torch.equal(torch.cat(calls), x.repeat_interleave(3, 0))


def test_width_warning_flags_wide_layers_only():
    x = torch.randn(4, 8, generator=gen(6), dtype=torch.float64)
    assert sp_width_limit(8) == pytest.approx(2 * math.log(8))
    with pytest.warns(SampleComplexityWarning, match="layer 1"):
        sp_information(lambda v: [v[:, :2], v], x, sigma=0.1, n_replicas=2, n_mc=500)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SampleComplexityWarning)
        sp_information(lambda v: [v[:, :2]], x, sigma=0.1, n_replicas=2, n_mc=500)


def test_flattens_trailing_dimensions():
    x = torch.randn(3, 2, 2, generator=gen(7), dtype=torch.float64)
    with pytest.warns(SampleComplexityWarning):  # d = 4 > 2 ln 6
        out = sp_information(lambda v: [v], x, sigma=0.1, n_replicas=2, n_mc=500)
    assert out[0]["h_T_given_X"].value == pytest.approx(gaussian_entropy(4, 0.1))


# ----------------------------------------------------------------------------------- validation
def test_bad_input_raises_value_error_naming_the_argument():
    x = torch.zeros(4, 1)
    ok = {"sigma": 0.1, "n_replicas": 2, "n_mc": 100}
    with pytest.raises(ValueError, match="sample_fn"):
        sp_information(lambda v: [v * float("nan")], x, **ok)
    with pytest.raises(ValueError, match="sample_fn"):
        sp_information(lambda v: [v * float("inf")], x, **ok)
    with pytest.raises(ValueError, match="sample_fn"):
        sp_information(lambda v: v, x, **ok)
    with pytest.raises(ValueError, match="labels"):
        sp_information(lambda v: [v], x, torch.zeros(3), **ok)
    with pytest.raises(ValueError, match="sigma"):
        sp_information(lambda v: [v], x, **{**ok, "sigma": 0.0})
    with pytest.raises(ValueError, match="n_replicas"):
        sp_information(lambda v: [v], x, **{**ok, "n_replicas": 1})
    with pytest.raises(ValueError, match="inputs"):
        sp_information(lambda v: [v], torch.zeros(0, 1), **ok)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda():
    x = torch.randn(8, 2, generator=gen(8), dtype=torch.float64).cuda()
    labels = torch.tensor([0, 1] * 4).cuda()
    out = sp_information(
        lambda v: [torch.tanh(v), torch.tanh(2 * v + torch.randn_like(v))],
        x,
        labels,
        sigma=0.1,
        n_replicas=4,
        n_mc=4000,
        generator=gen(10),
    )
    assert all(math.isfinite(e.value) for layer in out.values() for e in layer.values())


def test_layers_wider_than_max_width_are_not_estimated():
    def sample_fn(x):
        return [x[:, :1], x.repeat(1, 3)]  # widths 1 and 6

    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [3.0, 3.0]])
    out = sp_information(sample_fn, x, sigma=0.1, n_replicas=2, n_mc=200, max_width=2)
    assert list(out) == [0]
    assert list(sp_information(sample_fn, x, sigma=0.1, n_replicas=2, n_mc=200)) == [0, 1]
    with pytest.raises(ValueError, match="max_width"):
        sp_information(sample_fn, x, sigma=0.1, n_replicas=2, max_width=0)


# --------------------------------------------------------------------- budget and stratification
def clustered_inputs(n: int, spread: float, seed: int) -> torch.Tensor:
    """(n, 1) inputs whose layer-0 samples overlap partly: the untrained-net regime."""
    return spread * torch.randn(n, 1, generator=gen(seed), dtype=torch.float64)


def test_default_budget_reaches_the_target_on_the_difference_itself():
    sigma, g = 0.1, gen(30)
    x = clustered_inputs(64, 0.15, 31)

    def fn(v):  # replicas spread by one σ around each input: partial overlap everywhere
        return [v + sigma * torch.randn(v.shape, generator=g, dtype=v.dtype)]

    labels = (x[:, 0] > 0).long()
    out = sp_information(
        fn, x, labels, sigma=sigma, n_replicas=20, generator=gen(32), target_stderr=0.01
    )[0]
    assert out["I_XT"].stderr <= 0.0105 and out["I_TY"].stderr <= 0.0105
    # the same plug-in quantity (same samples, replayed) from 20× the queries agrees
    samples: list[torch.Tensor] = []

    def record(v):
        out = fn(v)
        samples.append(out[0])
        return out

    first = sp_information(
        record, x, labels, sigma=sigma, n_replicas=20, generator=gen(36), target_stderr=0.01
    )[0]["I_XT"]
    replay = torch.cat(samples)
    many = sp_information(
        lambda v: [replay[: v.shape[0]]],
        x,
        labels,
        sigma=sigma,
        n_replicas=20,
        n_mc=64 * 200,
        chunk_size=64,
        generator=gen(37),
    )[0]["I_XT"]
    assert abs(first.value - many.value) < 4 * math.hypot(first.stderr, many.stderr)


def test_stratified_stderr_is_honest_over_repeats():
    """The reported standard error matches the spread of repeated estimates on fixed samples."""
    sigma = 0.1
    g = gen(33)
    s = clustered_inputs(40, 0.2, 34).repeat_interleave(10, 0)
    s = s + sigma * torch.randn(s.shape, generator=g, dtype=s.dtype)
    samples = s.view(40, 10, 1)

    def fn(v):  # replays the same samples: only the Monte Carlo queries vary between repeats
        return [samples.reshape(-1, 1)[: v.shape[0]]]

    x = torch.zeros(40, 1, dtype=torch.float64)
    values, errs = [], []
    for k in range(30):
        e = sp_information(
            fn, x, sigma=sigma, n_replicas=10, n_mc=400, chunk_size=40, generator=gen(100 + k)
        )[0]["I_XT"]
        values.append(e.value)
        errs.append(e.stderr)
    spread = float(np.std(values, ddof=1))
    assert 0.6 < np.mean(errs) / spread < 1.6


def test_fewer_queries_than_inputs_use_a_random_subset():
    x = torch.arange(50, dtype=torch.float64)[:, None]
    out = sp_information(
        lambda v: [v * 1.0], x, sigma=0.01, n_replicas=3, n_mc=20, generator=gen(35)
    )
    assert out[0]["I_XT"].value == pytest.approx(math.log(50), abs=1e-6)  # separated inputs


def test_estimates_never_exceed_their_ceilings():
    """Each query's I(T;Y) term is log ĝ_y − log ĝ ≤ −ln p(y) and its I(X;T) term ≤ ln N, and
    rounds weigh every input equally: the estimates stay below H(Y) and ln N whatever the noise
    (the separate-entropy estimator put 16 of 65 I(T;Y) values above ln 2)."""
    g = gen(40)
    labels = (torch.arange(30) % 3 == 0).long()  # p(y) = 1/3, 2/3
    # classes far apart, inputs within a class overlapping: I(T;Y) = H(Y) exactly, I(X;T) < ln N
    x = 10.0 * labels[:, None] + 0.05 * torch.randn(30, 1, generator=g, dtype=torch.float64)
    h_y = -(1 / 3 * math.log(1 / 3) + 2 / 3 * math.log(2 / 3))
    for seed in range(5):
        out = sp_information(
            lambda v: [v], x, labels, sigma=0.05, n_replicas=4, n_mc=60, generator=gen(50 + seed)
        )[0]
        assert out["I_TY"].value <= h_y + 1e-4
        assert out["I_TY"].value == pytest.approx(h_y, abs=1e-4)
        assert out["I_XT"].value <= math.log(30) + 1e-4
