"""Binned information of K networks at once: each member's values are exact counts, checked against
a brute-force count in float64 and against the one-network estimator."""

import math
from collections import Counter

import pytest
import torch

from infoflow.estimators import bin_codes, binned_information


def brute_force(codes: torch.Tensor, y: torch.Tensor) -> dict:
    """H(T), I(T;Y) of rows of integer codes with labels, by counting tuples in plain Python."""
    n = len(y)
    rows = [tuple(r) for r in codes.tolist()]

    def h(items) -> float:
        return -sum(c / n * math.log(c / n) for c in Counter(items).values())

    h_t = h(rows)
    return {"H_T": h_t, "I_TY": h_t + h(y.tolist()) - h(list(zip(rows, y.tolist(), strict=True)))}


@pytest.mark.parametrize(
    ("scheme", "sizes"),
    [("tishby", {"n_bins": 5}), ("width", {"bin_size": 0.3}), ("width", {"n_bins": 4}),
     ("adaptive", {"n_bins": 3})],
)  # fmt: skip
def test_each_member_matches_a_brute_force_count(scheme, sizes):
    gen = torch.Generator().manual_seed(0)
    acts = torch.rand(4, 200, 3, generator=gen) * 2 - 1
    acts[2] *= 0.1  # a member squeezed near 0: few bins
    acts[3, :100] = acts[3, 100:]  # duplicated rows
    labels = torch.randint(0, 3, (4, 200), generator=gen)
    got = binned_information(acts, labels, scheme=scheme, **sizes)
    for k in range(4):
        codes = bin_codes(acts[k], scheme=scheme, **sizes)
        expected = brute_force(codes, labels[k])
        assert got[k]["H_T"] == pytest.approx(expected["H_T"], abs=1e-12)
        assert got[k]["I_XT"] == got[k]["H_T"]
        assert got[k]["I_TY"] == pytest.approx(max(expected["I_TY"], 0), abs=1e-12)
        single = binned_information(acts[k], labels[k], scheme=scheme, **sizes)
        assert got[k] == pytest.approx(single, abs=1e-12)


def test_wide_codes_fall_back_to_an_exact_row_unique():
    """Spans too wide for one int64 key: the lexicographic path gives the same counts."""
    gen = torch.Generator().manual_seed(1)
    acts = torch.randn(2, 300, 12, generator=gen) * 1e6
    labels = torch.randint(0, 2, (2, 300), generator=gen)
    got = binned_information(acts, labels, scheme="width", bin_size=[1.0, 1e7])
    for k in range(2):
        single = binned_information(acts[k], labels[k], scheme="width", bin_size=[1.0, 1e7])
        for size in (1.0, 1e7):
            assert got[k][size] == pytest.approx(single[size], abs=1e-12)
    assert got[0][1.0]["H_T"] == pytest.approx(math.log(300))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r"labels must be \(10,\) or \(2, 10\)"):
        binned_information(torch.rand(2, 10, 3), torch.zeros(3, 10, dtype=torch.long), n_bins=3)
    with pytest.raises(ValueError, match=r"\(n, d\) or \(K, n, d\)"):
        binned_information(torch.rand(2, 2, 10, 3), torch.zeros(10, dtype=torch.long), n_bins=3)
