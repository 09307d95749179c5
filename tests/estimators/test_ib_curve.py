"""Tests for infoflow.estimators.ib_curve."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from infoflow.estimators.ib_curve import (
    IBCurve,
    _informations,
    ib_curve,
    joint_from_samples,
)

FAST_BETAS = np.geomspace(1.0, 300.0, 70)


def _h(p: np.ndarray) -> float:
    p = np.asarray(p, dtype=float)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _i_xy(p_x: np.ndarray, p_yx: np.ndarray) -> float:
    return _informations(p_x, p_yx, np.eye(len(p_x)))[1]


def _assert_valid_curve(c: IBCurve, h_x: float, i_xy: float) -> None:
    x, y = c.i_xt, c.i_ty
    assert len(x) == len(y) == len(c.beta) >= 2
    assert (x[0], y[0]) == (0.0, 0.0)  # starts at the origin
    assert np.all(np.diff(x) > 0)  # sorted by I(X;T)
    assert np.all(np.diff(y) >= -1e-12)  # non-decreasing
    slopes = np.diff(y) / np.diff(x)
    assert np.all(np.diff(slopes) <= 1e-7)  # concave
    assert np.all(y <= x + 1e-12)  # never above the diagonal
    assert np.all(y <= i_xy + 1e-12)  # never above I(X;Y)
    assert x[-1] == pytest.approx(h_x, abs=1e-9)
    assert y[-1] == pytest.approx(i_xy, abs=1e-9)


def _curve_at(c: IBCurve, r) -> np.ndarray:
    return np.interp(r, c.i_xt, c.i_ty)


def _bin_entropy(p: float) -> float:
    return _h(np.array([p, 1 - p]))


def _bin_entropy_inverse(v: float) -> float:
    lo, hi = 0.0, 0.5
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _bin_entropy(mid) < v else (lo, mid)
    return (lo + hi) / 2


def test_doubly_symmetric_binary_source_closed_form():
    # X ~ Bern(1/2), Y = X xor Bern(eps). Optimal T: X through a BSC(d) (Mrs Gerber's lemma):
    # I(X;T) = ln2 - h(d), I(T;Y) = ln2 - h(d * eps), d * eps = d(1 - eps) + eps(1 - d).
    eps = 0.1
    c = ib_curve([0.5, 0.5], [[1 - eps, eps], [eps, 1 - eps]])
    _assert_valid_curve(c, math.log(2), math.log(2) - _bin_entropy(eps))

    def truth(r: float) -> float:
        d = _bin_entropy_inverse(math.log(2) - r)
        return math.log(2) - _bin_entropy(d * (1 - eps) + eps * (1 - d))

    for r, v in zip(c.i_xt, c.i_ty, strict=True):  # every vertex achievable: never above the truth
        assert v <= truth(min(r, math.log(2))) + 1e-9
    grid = np.linspace(0.0, math.log(2), 40)
    assert np.max([truth(r) for r in grid] - _curve_at(c, grid)) < 2e-3


def _random_joint(seed: int, n: int = 5, k: int = 3):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(k) * 0.5, size=n)


def _set_partitions(n: int):
    for labels in itertools.product(range(n), repeat=n):  # restricted growth strings only
        if all(labels[i] <= max(labels[:i], default=-1) + 1 for i in range(n)):
            yield labels


@pytest.mark.parametrize("seed", [1, 4])
def test_random_joint_beats_every_encoder_we_can_try(seed):
    p_x, p_yx = _random_joint(seed)
    c = ib_curve(p_x, p_yx, betas=FAST_BETAS)
    _assert_valid_curve(c, _h(p_x), _i_xy(p_x, p_yx))
    rng = np.random.default_rng(seed + 100)
    encoders = [np.eye(5)[list(lab)] for lab in _set_partitions(5)]  # all 52 deterministic
    for _ in range(1500):
        m = int(rng.integers(2, 7))
        encoders.append(rng.dirichlet(np.ones(m) * rng.choice([0.05, 0.3, 1.0, 5.0]), size=5))
    pts = np.array([_informations(p_x, p_yx, q) for q in encoders])
    assert np.max(pts[:, 1] - _curve_at(c, pts[:, 0])) < 1e-6


def test_torch_inputs_and_duplicate_rows_give_same_curve():
    p_x, p_yx = _random_joint(7, n=3, k=2)
    c = ib_curve(torch.as_tensor(p_x), torch.as_tensor(p_yx), betas=FAST_BETAS)
    # split input 0 into two inputs with the same p(y|x): the curve only extends flat to H(X)
    p_x2 = np.r_[p_x[0] / 2, p_x[0] / 2, p_x[1:]]
    p_yx2 = np.r_[p_yx[:1], p_yx]
    c2 = ib_curve(p_x2, p_yx2, betas=FAST_BETAS)
    grid = np.linspace(0, _h(p_x), 25)
    assert _curve_at(c2, grid) == pytest.approx(_curve_at(c, grid), abs=1e-9)
    assert c2.i_xt[-1] == pytest.approx(_h(p_x2))


def _check_deterministic_label_picture(c: IBCurve, h_x: float, h_y: float) -> None:
    _assert_valid_curve(c, h_x, h_y)
    grid = np.linspace(0.0, h_x, 200)
    assert _curve_at(c, grid) == pytest.approx(np.minimum(grid, h_y), abs=1e-9)
    assert _curve_at(c, h_y) == pytest.approx(h_y, abs=1e-12)  # reaches H(Y) by I(X;T) = H(Y)


def test_deterministic_labels_small_szt_like():
    x = np.array(list(itertools.product([0, 1], repeat=6)), dtype=np.uint8)  # 64 inputs
    y = (x.sum(axis=1) >= 4).astype(np.int64)  # unbalanced: 22 of 64
    p_x, p_yx = joint_from_samples(x, y)
    assert p_x == pytest.approx(np.full(64, 1 / 64))
    c = ib_curve(p_x, p_yx, betas=FAST_BETAS)
    _check_deterministic_label_picture(c, math.log(64), _h(np.bincount(y) / 64))


def test_joint_from_samples_merges_duplicates():
    x = torch.tensor([[0, 1], [0, 1], [1, 1], [0, 1]])
    y = torch.tensor([3, 5, 5, 3])
    p_x, p_yx = joint_from_samples(x, y)
    assert p_x == pytest.approx([0.75, 0.25])
    assert p_yx == pytest.approx(np.array([[2 / 3, 1 / 3], [0.0, 1.0]]))


def test_szt_curve():
    szt = pytest.importorskip("infoflow.data.szt")
    x, y = szt.make_szt_dataset()[:2]
    h_y = _h(np.bincount(np.asarray(y)) / len(y))
    c = ib_curve(*joint_from_samples(x, y))
    _check_deterministic_label_picture(c, math.log(4096), h_y)


@pytest.mark.parametrize(
    ("p_x", "p_yx", "kwargs", "match"),
    [
        ([0.5, 0.6], [[1, 0], [0, 1]], {}, "p_x"),
        ([0.5, 0.5], [[1, 0]], {}, "p_y_given_x"),
        ([0.5, 0.5], [[0.7, 0.2], [0, 1]], {}, "p_y_given_x"),
        ([0.5, math.nan], [[1, 0], [0, 1]], {}, "p_x"),
        ([0.5, 0.5], [[1, 0], [0, 1]], {"betas": [-1.0, 2.0]}, "betas"),
        ([0.5, 0.5], [[1, 0], [0, 1]], {"n_clusters": 0}, "n_clusters"),
    ],
)
def test_bad_inputs(p_x, p_yx, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ib_curve(p_x, p_yx, **kwargs)
