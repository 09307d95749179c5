"""Tests for infoflow.estimators.binning.binned_information."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoflow.estimators.binning import bin_codes, binned_information


def _entropy_of_rows(rows: np.ndarray) -> float:
    _, counts = np.unique(rows, axis=0, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def _h_and_i_ty(digitized: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    h_t = _entropy_of_rows(digitized)
    h_t_given_y = sum(
        np.mean(labels == y) * _entropy_of_rows(digitized[labels == y]) for y in np.unique(labels)
    )
    return h_t, h_t - h_t_given_y


def _original_rule(
    data: np.ndarray, labels: np.ndarray, n_bins: int, edge_dtype=np.float32
) -> tuple[float, float]:
    """Literal numpy port of Shwartz-Ziv & Tishby's binning + entropies (IDNNs'
    ``calc_information_sampling``: ``bins = bins.astype(np.float32)``; Saxe et al.'s ibsgd:
    ``np.linspace(-1, 1, num_of_bins, dtype='float32')``). ``edge_dtype=np.float64`` is the
    float64 rule infoflow used before, for the ties test."""
    bins = np.linspace(-1, 1, n_bins).astype(edge_dtype)
    digitized = bins[np.digitize(np.squeeze(data.reshape(1, -1)), bins) - 1].reshape(len(data), -1)
    return _h_and_i_ty(digitized, labels)


def _ibsgd_width_rule(data: np.ndarray, labels: np.ndarray, binsize: float) -> tuple[float, float]:
    """Literal numpy port of Saxe et al.'s ``bin_calc_information2``:
    ``np.floor(d / binsize).astype('int')`` on the layer's own array (float32 in their Keras runs:
    a float32 division by float32(binsize))."""
    return _h_and_i_ty(np.floor(data / binsize).astype("int"), labels)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.mark.parametrize("n_bins", [2, 5, 30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tishby_reproduces_original_rule(gen, n_bins, dtype):
    # scale 1.3 puts many values outside [-1, 1], exercising numpy digitize's wrap-around quirk
    acts = (torch.randn(500, 3, generator=gen) * 1.3).to(dtype)
    acts[0, 0], acts[1, 1], acts[2, 2] = -1.0, 1.0, 0.0  # values exactly on edges
    labels = torch.randint(0, 3, (500,), generator=gen)
    got = binned_information(acts, labels, n_bins=n_bins)
    h_t, i_ty = _original_rule(acts.numpy(), labels.numpy(), n_bins)
    assert got["H_T"] == pytest.approx(h_t, abs=1e-12)
    assert got["I_TY"] == pytest.approx(i_ty, abs=1e-12)
    assert got["I_XT"] == got["H_T"]  # distinct samples


def _ties_below_float64_edges() -> tuple[np.ndarray, np.ndarray]:
    """One unit, two samples per float32 edge of linspace(-1, 1, 30) that lies below its float64
    value (and whose lower neighbour does not, so that pairs never share a bin): one exactly at
    the float32 edge (label 0), one in the middle of the bin below (label 1). The float32 rule
    (the original) separates each of the 10 pairs: H(T) = ln 20, I(T;Y) = ln 2; a float64 rule
    puts both in the lower bin: H(T) = ln 10, I(T;Y) = 0."""
    e64 = np.linspace(-1, 1, 30)
    e32 = e64.astype(np.float32)
    low = np.flatnonzero(e32 < e64)
    assert len(low) == 14  # as papers.md says
    low = low[~np.isin(low - 1, low)]
    at_edge = e32[low]
    below = ((e64[low - 1] + e64[low]) / 2).astype(np.float32)
    acts = np.concatenate([at_edge, below])[:, None]
    labels = np.repeat([0, 1], len(low))
    return acts, labels


def test_tishby_ties_at_float32_edges_follow_the_original_rule():
    acts, labels = _ties_below_float64_edges()
    assert len(acts) == 2 * 10
    original = _original_rule(acts, labels, 30)
    float64_rule = _original_rule(acts, labels, 30, edge_dtype=np.float64)
    assert original == pytest.approx((math.log(20), math.log(2)), abs=1e-12)
    assert float64_rule == pytest.approx((math.log(10), 0.0), abs=1e-12)
    for dtype in (torch.float32, torch.float64):  # float32 and float64 data: same exact test
        x = torch.from_numpy(acts).to(dtype)
        got = binned_information(x, torch.from_numpy(labels), n_bins=30)
        assert (got["H_T"], got["I_TY"]) == pytest.approx(original, abs=1e-12)
        assert got["I_TY"] - float64_rule[1] == pytest.approx(math.log(2))  # ΔI = ln 2 nats
        # the codes are the original's bins, one for one
        codes = bin_codes(x, n_bins=30).squeeze(1).numpy()
        e32 = np.linspace(-1, 1, 30).astype(np.float32)
        assert np.array_equal(codes, np.digitize(acts[:, 0], e32) - 1)


def test_tishby_ties_mixed_into_a_layer(gen):
    # tanh activations in float32 with a third of the values set exactly to float32 edges
    acts = torch.tanh(torch.randn(600, 4, generator=gen) * 1.5)
    e32 = torch.from_numpy(np.linspace(-1, 1, 30).astype(np.float32))
    mask = torch.rand(600, 4, generator=gen) < 1 / 3
    acts[mask] = e32[torch.randint(0, 30, (int(mask.sum()),), generator=gen)]
    labels = torch.randint(0, 2, (600,), generator=gen)
    original = _original_rule(acts.numpy(), labels.numpy(), 30)
    float64_rule = _original_rule(acts.numpy(), labels.numpy(), 30, edge_dtype=np.float64)
    got = binned_information(acts, labels, n_bins=30)
    assert (got["H_T"], got["I_TY"]) == pytest.approx(original, abs=1e-12)
    assert got["H_T"] != pytest.approx(float64_rule[0], abs=1e-6)  # the ties matter here


def _ties_at_multiples_of(binsize: float, n: int = 200) -> np.ndarray:
    """float32 values next to k * binsize where float32 and float64 division disagree."""
    near = np.array([np.float32(k * binsize) for k in range(-n, n)], dtype=np.float32)
    cand = np.concatenate([near, np.nextafter(near, np.float32(np.inf))])
    differ = np.floor(cand / binsize) != np.floor(cand.astype(np.float64) / binsize)
    return cand[differ]


def test_width_float32_division_matches_ibsgd():
    ties = _ties_at_multiples_of(0.07)
    # each tie (label 0) beside a value (label 1) in the bin float64 division gives the tie; keep
    # the ties whose float32 bin is no other tie's float64 bin, so that pairs never share a bin
    f64_bin = np.floor(ties.astype(np.float64) / 0.07)
    keep = ~np.isin(np.floor(ties / 0.07), f64_bin)
    ties, f64_bin = ties[keep], f64_bin[keep]
    assert len(np.unique(f64_bin)) == len(ties) > 20
    partner = ((f64_bin + 0.5) * 0.07).astype(np.float32)
    acts = np.concatenate([ties, partner])[:, None]
    labels = np.repeat([0, 1], len(ties))
    ibsgd = _ibsgd_width_rule(acts, labels, 0.07)
    float64_rule = _ibsgd_width_rule(acts.astype(np.float64), labels, 0.07)
    got = binned_information(
        torch.from_numpy(acts), torch.from_numpy(labels), bin_size=0.07, scheme="width"
    )
    assert (got["H_T"], got["I_TY"]) == pytest.approx(ibsgd, abs=1e-12)
    # float32 division separates every pair, float64 joins them: ΔI = ln 2 nats
    assert got["I_TY"] - float64_rule[1] == pytest.approx(math.log(2), abs=1e-12)
    codes = bin_codes(torch.from_numpy(acts), bin_size=0.07, scheme="width")
    assert np.array_equal(codes.numpy(), np.floor(acts / 0.07).astype(np.int64))
    # float64 activations keep a float64 division
    got64 = binned_information(
        torch.from_numpy(acts).double(), torch.from_numpy(labels), bin_size=0.07, scheme="width"
    )
    assert (got64["H_T"], got64["I_TY"]) == pytest.approx(float64_rule, abs=1e-12)


def test_tishby_quirk_below_range_joins_last_bin():
    codes = bin_codes(torch.tensor([[-5.0, 1.0, 7.0, -1.0]]), n_bins=3)
    assert codes[0, 0] == codes[0, 1] == codes[0, 2] != codes[0, 3]


def test_tishby_bin_size_means_edge_count():
    acts = torch.linspace(-1.2, 1.2, 97)[:, None]
    labels = torch.zeros(97, dtype=torch.long)
    assert binned_information(acts, labels, bin_size=0.1) == binned_information(
        acts, labels, n_bins=21
    )


def test_permutation_invariance(gen):
    acts = torch.tanh(torch.randn(300, 6, generator=gen) * 2)
    labels = torch.randint(0, 4, (300,), generator=gen)
    ref = binned_information(acts, labels, n_bins=8)
    rows, cols = torch.randperm(300, generator=gen), torch.randperm(6, generator=gen)
    for a, y in ((acts[rows], labels[rows]), (acts[:, cols], labels)):
        got = binned_information(a, y, n_bins=8)
        assert got == pytest.approx(ref, abs=1e-12)


def test_closed_forms():
    n = 64
    labels = torch.arange(n) % 4
    same = binned_information(torch.full((n, 5), 0.3), labels, n_bins=30)
    assert same == {"H_T": 0.0, "I_XT": 0.0, "I_TY": 0.0}
    distinct = torch.arange(n, dtype=torch.float64)[:, None]
    got = binned_information(distinct, labels, bin_size=1.0, scheme="width")
    assert got["H_T"] == pytest.approx(math.log(n), abs=1e-12)
    assert got["I_TY"] == pytest.approx(math.log(4), abs=1e-12)  # labels a function of bins
    # 4 bins, labels a function of the bin (2 bins per label): I_TY = H(Y) = ln 2
    acts = (torch.arange(n) % 4).double()[:, None] + 0.5
    got = binned_information(acts, (torch.arange(n) % 4) // 2, bin_size=1.0, scheme="width")
    assert got["H_T"] == pytest.approx(math.log(4), abs=1e-12)
    assert got["I_TY"] == pytest.approx(math.log(2), abs=1e-12)


def test_width_matches_floor_rule(gen):
    acts = torch.relu(torch.randn(400, 4, generator=gen, dtype=torch.float64) * 3)
    labels = torch.randint(0, 2, (400,), generator=gen)
    codes = np.floor(acts.numpy() / 0.07)
    got = binned_information(acts, labels, bin_size=0.07, scheme="width")
    h = _entropy_of_rows(codes)
    hy = sum(
        np.mean(labels.numpy() == y) * _entropy_of_rows(codes[labels.numpy() == y]) for y in (0, 1)
    )
    assert got["H_T"] == pytest.approx(h, abs=1e-12)
    assert got["I_TY"] == pytest.approx(h - hy, abs=1e-12)


def test_width_with_n_bins_spans_layer_range():
    acts = torch.tensor([[0.0], [0.24], [0.26], [0.74], [1.0]])
    codes = bin_codes(acts, n_bins=4, scheme="width").squeeze(1).tolist()
    assert codes == [0, 0, 1, 2, 3]


def test_adaptive_equal_counts(gen):
    acts = torch.randn(1000, 3, generator=gen) ** 3  # heavy-tailed, distinct values
    codes = bin_codes(acts, n_bins=10, scheme="adaptive")
    counts = torch.bincount(codes.reshape(-1), minlength=10)
    assert counts.min() >= 299 and counts.max() <= 301


def test_list_of_sizes_equals_separate_calls(gen):
    acts = torch.tanh(torch.randn(256, 5, generator=gen))
    labels = torch.randint(0, 3, (256,), generator=gen)
    for key, sizes, scheme in (
        ("bin_size", [0.01, 0.05, 0.1], "width"),
        ("n_bins", [5, 30], "tishby"),
        ("n_bins", [4, 16], "adaptive"),
    ):
        many = binned_information(acts, labels, scheme=scheme, **{key: sizes})
        assert list(many) == sizes
        for s in sizes:
            assert many[s] == binned_information(acts, labels, scheme=scheme, **{key: s})


def test_sample_ids_repeated_inputs():
    # two inputs, each seen 4 times with noisy copies in distinct bins: H(T)=ln 8, H(T|X)=ln 4
    acts = torch.arange(8, dtype=torch.float64)[:, None]
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    got = binned_information(acts, ids, bin_size=1.0, scheme="width", sample_ids=ids)
    assert got["H_T"] == pytest.approx(math.log(8))
    assert got["I_XT"] == pytest.approx(math.log(2))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_bins": 5, "bin_size": 0.1}, "exactly one"),
        ({}, "exactly one"),
        ({"n_bins": 5, "scheme": "magic"}, "scheme"),
        ({"bin_size": 0.0, "scheme": "width"}, "bin_size"),
        ({"bin_size": [0.1, -1.0], "scheme": "width"}, "bin_size"),
        ({"n_bins": 0}, "n_bins"),
        ({"bin_size": 0.1, "scheme": "adaptive"}, "adaptive"),
        ({"n_bins": 5, "value_range": (1.0, -1.0)}, "value_range"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        binned_information(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), **kwargs)


def test_bad_tensors():
    y = torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="activations"):
        binned_information(torch.tensor([[0.0], [float("nan")], [0.0], [0.0]]), y, n_bins=3)
    with pytest.raises(ValueError, match="activations"):
        binned_information(torch.tensor([[0.0], [float("inf")], [0.0], [0.0]]), y, n_bins=3)
    with pytest.raises(ValueError, match="labels"):
        binned_information(torch.zeros(5, 2), y, n_bins=3)
    with pytest.raises(ValueError, match="labels"):
        binned_information(torch.zeros(4, 2), y.float(), n_bins=3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(gen):
    acts = torch.randn(512, 6, generator=gen) * 1.2
    labels = torch.randint(0, 3, (512,), generator=gen)
    for kw in (
        {"n_bins": 30},
        {"bin_size": 0.1, "scheme": "width"},
        {"n_bins": 8, "scheme": "adaptive"},
    ):
        cpu = binned_information(acts, labels, **kw)
        gpu = binned_information(acts.cuda(), labels.cuda(), **kw)
        assert gpu == pytest.approx(cpu, abs=1e-12)
