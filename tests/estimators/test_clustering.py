"""Tests for infoflow.estimators.clustering against brute-force numpy double loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from infoflow.estimators.clustering import (
    clustering_scores,
    cosine_similarity_distributions,
    cosine_similarity_stats,
    distance_ratio,
    kmeans,
    kmeans_scores,
    silhouette_score,
)


def _data(n: int = 23, d: int = 3, classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=g)
    y[:classes] = torch.arange(classes)  # every class present
    return x, y


def _pairs(x: np.ndarray, y: np.ndarray, f):
    within, between = [], []
    for i in range(len(x)):
        for j in range(len(x)):
            if i != j:
                (within if y[i] == y[j] else between).append(f(x[i], x[j]))
    return np.array(within), np.array(between)


def _cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _silhouette_brute(x: np.ndarray, y: np.ndarray) -> float:
    s = []
    for i in range(len(x)):
        d = np.linalg.norm(x - x[i], axis=1)
        own = (y == y[i]) & (np.arange(len(x)) != i)
        if not own.any():
            s.append(0.0)
            continue
        a = d[own].mean()
        b = min(d[y == c].mean() for c in np.unique(y) if c != y[i])
        s.append((b - a) / max(a, b))
    return float(np.mean(s))


@pytest.mark.parametrize("chunk", [1, 5, 1024])
def test_distance_ratio_brute_force(chunk):
    x, y = _data()
    w, b = _pairs(x.numpy(), y.numpy(), lambda a, c: np.linalg.norm(a - c))
    got = distance_ratio(x, y, chunk_size=chunk)
    assert got == pytest.approx(w.mean() / b.mean(), rel=1e-10)


@pytest.mark.parametrize("chunk", [1, 4, 1024])
def test_silhouette_brute_force(chunk):
    x, y = _data()
    y[5] = 3  # a singleton class: s_i = 0
    got = silhouette_score(x, y, chunk_size=chunk)
    assert got == pytest.approx(_silhouette_brute(x.numpy(), y.numpy()), rel=1e-8, abs=1e-9)


def test_silhouette_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    x, y = _data(n=60, d=4, classes=4, seed=2)
    expected = metrics.silhouette_score(x.numpy(), y.numpy())
    assert silhouette_score(x, y) == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_silhouette_subsample_is_seeded():
    x, y = _data(n=200, d=2, classes=3, seed=4)
    a = silhouette_score(x, y, max_samples=50, generator=torch.Generator().manual_seed(7))
    b = silhouette_score(x, y, max_samples=50, generator=torch.Generator().manual_seed(7))
    assert a == b
    assert silhouette_score(x, y, max_samples=50) == silhouette_score(x, y, max_samples=50)


@pytest.mark.parametrize("chunk", [1, 6, 1024])
def test_cosine_stats_brute_force(chunk):
    x, y = _data()
    x[3] = 0.0  # a zero row: similarity 0 with everything
    w, b = _pairs(x.numpy(), y.numpy(), _cos)
    got = cosine_similarity_stats(x, y, chunk_size=chunk)
    expected = [w.mean(), w.std(), b.mean(), b.std()]
    keys = ["cos_within_mean", "cos_within_std", "cos_between_mean", "cos_between_std"]
    assert [got[k] for k in keys] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_cosine_distributions_brute_force():
    x, y = _data(n=15)
    w, b = cosine_similarity_distributions(x, y)
    ew, eb = _pairs(x.numpy(), y.numpy(), _cos)  # ordered pairs: each value twice
    assert np.sort(np.repeat(w.numpy(), 2)) == pytest.approx(np.sort(ew), abs=1e-12)
    assert np.sort(np.repeat(b.numpy(), 2)) == pytest.approx(np.sort(eb), abs=1e-12)
    w2, b2 = cosine_similarity_distributions(x, y, max_samples=6)
    assert len(w2) + len(b2) == 15


def _separated(n_per: int = 40, classes: int = 4, spread: float = 1e-3):
    g = torch.Generator().manual_seed(1)
    centres = torch.eye(classes, dtype=torch.float64) * 10.0
    y = torch.arange(classes).repeat_interleave(n_per)
    x = centres[y] + spread * torch.randn(len(y), classes, generator=g, dtype=torch.float64)
    perm = torch.randperm(len(y), generator=g)
    return x[perm], y[perm]


def test_perfectly_separated_clusters():
    x, y = _separated()
    s = clustering_scores(x, y)
    assert set(s) == {
        "distance_ratio",
        "silhouette",
        "cos_within_mean",
        "cos_within_std",
        "cos_between_mean",
        "cos_between_std",
        "kmeans_nmi",
        "kmeans_ari",
        "davies_bouldin",
        "calinski_harabasz",
    }
    assert s["distance_ratio"] < 1e-3
    assert s["silhouette"] > 0.999
    assert s["kmeans_nmi"] == pytest.approx(1.0, abs=1e-6)
    assert s["kmeans_ari"] == pytest.approx(1.0, abs=1e-6)
    assert s["cos_within_mean"] == pytest.approx(1.0, abs=1e-6)
    assert s["cos_between_mean"] == pytest.approx(0.0, abs=1e-3)
    assert s["davies_bouldin"] < 1e-3
    assert s["calinski_harabasz"] > 1e6
    assert all(isinstance(v, float) for v in s.values())


def test_unstructured_representation():
    x, _ = _data(n=400, d=5, seed=9)
    y = torch.arange(400) % 2  # labels unrelated to the representation
    s = clustering_scores(x, y)
    assert s["distance_ratio"] == pytest.approx(1.0, abs=0.05)
    assert abs(s["silhouette"]) < 0.05
    assert s["kmeans_nmi"] < 0.05


def test_kmeans_inertia_and_determinism():
    x, y = _separated(classes=3, spread=0.5)
    a1, c1 = kmeans(x, 3, generator=torch.Generator().manual_seed(3))
    a2, c2 = kmeans(x, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a1, a2) and torch.equal(c1, c2)
    # Lloyd fixed point: each point at its nearest centre; centres are their cluster means
    d = torch.cdist(x, c1)
    assert torch.equal(d.argmin(dim=1), a1)
    for k in range(3):
        assert torch.allclose(c1[k], x[a1 == k].mean(dim=0))
    # torchmetrics computes in float32
    assert kmeans_scores(x, y) == pytest.approx({"kmeans_nmi": 1.0, "kmeans_ari": 1.0}, abs=1e-6)


def test_kmeans_degenerate_points():
    x = torch.zeros(10, 2)
    a, c = kmeans(x, 3)
    assert a.shape == (10,) and c.shape == (3, 2)


def test_bad_inputs():
    x, y = _data()
    with pytest.raises(ValueError, match="activations"):
        distance_ratio(torch.full((4, 2), math.nan), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        silhouette_score(x, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        distance_ratio(x, torch.zeros(len(x), dtype=torch.long))  # one class
    with pytest.raises(ValueError, match="max_samples"):
        clustering_scores(x, y, max_samples=0)
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans(x, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    x, y = _separated(spread=0.7)
    cpu = clustering_scores(x, y)
    gpu = clustering_scores(x.cuda(), y.cuda())
    assert gpu == pytest.approx(cpu, rel=1e-6, abs=1e-9)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_generator_is_accepted_and_a_cpu_one_gives_the_cpu_sample():
    x, y = _separated(spread=0.7)
    cpu = clustering_scores(x, y, max_samples=20, generator=torch.Generator().manual_seed(3))
    same = clustering_scores(
        x.cuda(), y.cuda(), max_samples=20, generator=torch.Generator().manual_seed(3)
    )
    assert same == pytest.approx(cpu, rel=1e-6, abs=1e-9)
    cuda_gen = torch.Generator(device="cuda").manual_seed(3)
    scores = clustering_scores(x.cuda(), y.cuda(), max_samples=20, generator=cuda_gen)
    assert set(scores) == set(cpu)
