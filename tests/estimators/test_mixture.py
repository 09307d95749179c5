"""Gaussian-mixture entropy and densities against independent references (quadrature, numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, simpson
from scipy.special import logsumexp
from scipy.stats import norm

from infoflow.estimators.mixture import (
    MixtureIndex,
    batched_mixture_log_density,
    gaussian_entropy,
    gaussian_mixture_entropy,
    mean_mixture_entropy,
    mixture_log_density,
)
from infoflow.estimators.mixture.entropy import certified_log_sums
from infoflow.estimators.mixture.kdtree import KDTreeSums
from infoflow.estimators.result import Estimate
from tests.estimators.conftest import gen

LN2, LN4 = math.log(2.0), math.log(4.0)


# ------------------------------------------------------------------------ independent references
def entropy_quad_1d(centers: np.ndarray, sigma: float) -> float:
    """−∫ g log g for g = mean_k N(c_k, σ²), by adaptive quadrature between the centres."""
    c = np.sort(np.asarray(centers, dtype=np.float64))

    def integrand(t: float) -> float:
        log_g = logsumexp(norm.logpdf(t, c, sigma)) - math.log(c.size)
        return -math.exp(log_g) * log_g

    edges = np.unique(np.concatenate([c - 12 * sigma, c, c + 12 * sigma]))
    pieces = zip(edges[:-1], edges[1:], strict=True)
    return sum(quad(integrand, a, b, epsabs=1e-12, limit=200)[0] for a, b in pieces)


def entropy_grid(centers: np.ndarray, sigma: float, step: float = 0.35) -> float:
    """−∫ g log g in 1-3 dims by a Riemann sum on a grid of spacing step·σ over the centres' box
    ± 7σ (spectrally accurate for smooth, rapidly decaying integrands)."""
    c = np.asarray(centers, dtype=np.float64)
    d = c.shape[1]
    h = step * sigma
    lo, hi = c.min(0) - 7 * sigma, c.max(0) + 7 * sigma
    axes = [np.arange(lo[i], hi[i] + h, h) for i in range(d)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    total = 0.0
    for i in range(0, grid.shape[0], 20000):
        g = grid[i : i + 20000]
        sq = ((g[:, None, :] - c[None]) ** 2).sum(-1)
        log_g = logsumexp(-sq / (2 * sigma**2), axis=1) - math.log(len(c))
        log_g -= 0.5 * d * math.log(2 * math.pi * sigma**2)
        total += -(np.exp(log_g) * log_g).sum()
    return total * h**d


def log_density_numpy(queries: np.ndarray, centers: np.ndarray, sigma: float) -> np.ndarray:
    """Brute-force float64 log ĝ by direct differences (no matmul expansion)."""
    q, c = np.asarray(queries, np.float64), np.asarray(centers, np.float64)
    out = np.empty(len(q))
    step = max(1, 2_000_000 // c.size)
    for i in range(0, len(q), step):
        sq = ((q[i : i + step, None, :] - c[None]) ** 2).sum(-1)
        out[i : i + step] = logsumexp(-sq / (2 * sigma**2), axis=1)
    d = c.shape[1]
    return out - math.log(len(c)) - 0.5 * d * math.log(2 * math.pi * sigma**2)


# Floor under the k-stderr test: with the own-component control variate the integrand is tiny
# except on rare queries between barely overlapping components, so a sample's std can understate
# errors of order 1e-5 nats.
FLOOR = 1e-4


def assert_close(est, truth: float, atol: float = 0.01, k: float = 3.0) -> None:
    err = abs(est.value - truth)
    assert err < atol, f"{est} vs {truth}: error {err:.4g} ≥ {atol}"
    assert err < k * est.stderr + FLOOR, f"{est} vs {truth}: error {err:.4g} ≥ {k} stderr"


# ------------------------------------------------------------------------------------ entropy
def test_gaussian_entropy_closed_form():
    assert gaussian_entropy(1, 1.0) == pytest.approx(0.5 * math.log(2 * math.pi * math.e))
    assert gaussian_entropy(3, 0.1) == pytest.approx(1.5 * math.log(2 * math.pi * math.e * 0.01))


@pytest.mark.parametrize(
    ("centers", "sigma"),
    [([0.0, 0.3, 1.0, 3.0], 0.2), ([0.0, 0.05], 0.1), ([-1.0, 0.0, 0.0, 2.5, 2.6], 0.5)],
)
def test_entropy_1d_against_quadrature(centers, sigma):
    c = torch.tensor(centers, dtype=torch.float64)[:, None]
    est = gaussian_mixture_entropy(c, sigma, n_mc=40_000, generator=gen(1))
    assert_close(est, entropy_quad_1d(np.array(centers), sigma))


def test_entropy_2d_against_quadrature():
    centers = np.array([[0.0, 0.0], [0.5, 0.2], [0.1, 0.6], [0.12, 0.58]])
    sigma = 0.25
    h = 0.2 * sigma  # Simpson quadrature on a grid, box ± 8σ
    lo, hi = centers.min(0) - 8 * sigma, centers.max(0) + 8 * sigma
    axes = [np.arange(lo[i], hi[i] + h, h) for i in (0, 1)]
    xx, yy = np.meshgrid(*axes, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], -1)
    log_g = log_density_numpy(pts, centers, sigma).reshape(xx.shape)
    truth = simpson(simpson(-np.exp(log_g) * log_g, x=axes[1], axis=1), x=axes[0])
    est = gaussian_mixture_entropy(torch.tensor(centers), sigma, n_mc=40_000, generator=gen(2))
    assert_close(est, truth)
    assert truth == pytest.approx(entropy_grid(centers, sigma), abs=1e-6)  # two quadratures agree


def tanh_neuron_centers(w: float, b: float = 0.0) -> torch.Tensor:
    x = torch.tensor([-3.0, -1.0, 1.0, 3.0], dtype=torch.float64)
    return torch.tanh(w * x + b)[:, None]


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
@pytest.mark.parametrize("w", [0.01, 0.1, 0.3, 1.0, 2.0, 5.0, 10.0])
def test_tanh_neuron_information_against_quadrature(w, sigma):
    """I(X;T) for T = tanh(wX) + σZ, X uniform on {−3, −1, 1, 3} (Goldfeld et al., Fig. 4)."""
    c = tanh_neuron_centers(w)
    truth = entropy_quad_1d(c[:, 0].numpy(), sigma) - gaussian_entropy(1, sigma)
    h = gaussian_mixture_entropy(c, sigma, n_mc=40_000, generator=gen(3))
    est = h - Estimate(gaussian_entropy(1, sigma), 0.0)
    assert_close(est, truth)


def test_tanh_neuron_rises_to_ln4_then_falls_to_ln2():
    sigma = 0.01
    info = {}
    for w in (0.01, 1.0, 10.0):
        truth = entropy_quad_1d(tanh_neuron_centers(w)[:, 0].numpy(), sigma)
        info[w] = truth - gaussian_entropy(1, sigma)
    assert info[0.01] < 1.0  # the four Gaussians overlap
    assert info[1.0] == pytest.approx(LN4, abs=1e-3)  # well separated
    assert info[10.0] == pytest.approx(LN2, abs=1e-3)  # merged in pairs by saturation


def test_well_separated_and_coincident_limits():
    sigma, d = 0.1, 3
    far = torch.arange(7, dtype=torch.float64)[:, None].repeat(1, d) * 50 * sigma
    est = gaussian_mixture_entropy(far, sigma, n_mc=30_000, generator=gen(4))
    assert_close(est, math.log(7) + gaussian_entropy(d, sigma))
    assert est.stderr < 1e-6  # control variate: log φ(σz) − log ĝ(q) ≈ ln 7 for every query
    same = torch.full((7, d), 0.3, dtype=torch.float64)
    est = gaussian_mixture_entropy(same, sigma, n_mc=30_000, generator=gen(5))
    assert est.value == pytest.approx(gaussian_entropy(d, sigma), abs=1e-9)  # integrand ≡ 0


def test_default_n_mc_reaches_the_target_stderr():
    c = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.12]])  # overlapping at σ = 0.1
    est = gaussian_mixture_entropy(torch.tensor(c), 0.1, generator=gen(6), target_stderr=0.005)
    assert 0.004 < est.stderr < 0.006
    assert_close(est, entropy_grid(c, 0.1))


def test_generator_makes_it_reproducible_and_float32_input_works():
    c = torch.randn(50, 2, generator=gen(7))
    a = gaussian_mixture_entropy(c, 0.2, n_mc=2000, generator=gen(8))
    b = gaussian_mixture_entropy(c, 0.2, n_mc=2000, generator=gen(8))
    c64 = gaussian_mixture_entropy(c.double(), 0.2, n_mc=2000, generator=gen(8))
    assert a == b
    assert a.value == pytest.approx(c64.value, abs=1e-12)


def test_mean_mixture_entropy_against_quadrature():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 3, 1)) * np.array([0.1, 0.5, 1.0, 2.0, 0.0])[:, None, None]
    sigma = 0.3
    truth = np.mean([entropy_quad_1d(c[:, 0], sigma) for c in centers])
    est = mean_mixture_entropy(torch.tensor(centers), sigma, n_mc=50_000, generator=gen(9))
    assert_close(est, truth)


# ------------------------------------------------------------------------------------ densities
def test_batched_log_density_against_numpy():
    g = gen(10)
    centers = torch.randn(3, 40, 2, generator=g, dtype=torch.float64)
    queries = torch.randn(3, 25, 2, generator=g, dtype=torch.float64)
    got = batched_mixture_log_density(queries, centers, 0.3)
    for b in range(3):
        ref = log_density_numpy(queries[b].numpy(), centers[b].numpy(), 0.3)
        np.testing.assert_allclose(got[b].numpy(), ref, rtol=0, atol=1e-10)


def test_far_queries_use_the_underflow_safe_path():
    sigma = 0.005
    c = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    q = torch.tensor([[0.5, -0.5], [0.0, 100 * sigma]], dtype=torch.float64)  # E ≈ −1e4, −5000
    got = mixture_log_density(q, c, sigma)
    np.testing.assert_allclose(got.numpy(), log_density_numpy(q.numpy(), c.numpy(), sigma))


def clustered_centers(n_clusters: int, per: int, d: int, sigma: float, seed: int) -> torch.Tensor:
    """Like a trained tanh layer: saturated cluster points, inputs and replicas jittered by ~σ."""
    g = gen(seed)
    pts = torch.sign(torch.randn(n_clusters, d, generator=g))
    pts = pts * torch.tanh(1.5 + 3.5 * torch.rand(n_clusters, d, generator=g))
    c = pts.repeat_interleave(per, 0)
    return c + sigma * torch.randn(c.shape, generator=g)


@pytest.mark.parametrize("d", [3, 10])
def test_pruned_path_is_within_tol_of_brute_force(d):
    sigma = 0.005
    centers = clustered_centers(40, 250, d, sigma, seed=11).float()  # 10 000 > pruning threshold
    g = gen(12)
    pick = torch.randint(0, len(centers), (1000,), generator=g)
    queries = centers[pick].double() + sigma * torch.randn(
        1000, d, generator=g, dtype=torch.float64
    )
    queries[:5] += 0.03  # a few queries off the clusters
    ref = log_density_numpy(queries.numpy(), centers.double().numpy(), sigma)
    for tol in (1e-4, 1e-6):  # float32 tiles with a certified bound; float64 fallback beyond it
        got = mixture_log_density(queries, centers, sigma, tol=tol)
        assert np.abs(got.numpy() - ref).max() <= tol
    exact = mixture_log_density(queries, centers, sigma, tol=0.0)
    assert np.abs(exact.numpy() - ref).max() < 1e-8


def test_pruned_entropy_matches_exact_entropy():
    sigma = 0.005
    centers = clustered_centers(30, 300, 5, sigma, seed=13)
    a = gaussian_mixture_entropy(centers, sigma, n_mc=5000, generator=gen(14))
    b = gaussian_mixture_entropy(centers, sigma, n_mc=5000, generator=gen(14), tol=0.0)
    assert abs(a.value - b.value) < 1e-6
    assert a.stderr == pytest.approx(b.stderr, rel=1e-4)


@pytest.mark.parametrize("n", [300, 9000])  # dense path, pruned path
def test_small_chunks_give_the_same_densities(n):
    centers = clustered_centers(30, n // 30, 3, 0.01, seed=15)
    queries = centers[:700].double() + 0.01
    ref = mixture_log_density(queries, centers, 0.01, tol=0.0)
    small = mixture_log_density(queries, centers, 0.01, chunk_elements=4096)
    torch.testing.assert_close(small, ref, rtol=0, atol=1e-4)


def geometry(kind: str, seed: int) -> tuple[torch.Tensor, float]:
    """Centres (float32) as SP sees them: N inputs × R replicas, in several regimes."""
    g = gen(seed)
    n_in, r, d, sigma = 400, 25, 4, 0.01
    x = torch.tanh(2 * torch.randn(n_in, d, generator=g))
    spread = {"coincident": 0.0, "tight": 0.5, "spread": 3.0, "dense": 1.0}[kind]
    if kind == "dense":  # an untrained deep layer: everything within a few σ of the origin
        x = 0.02 * x
    c = x.repeat_interleave(r, 0) + spread * sigma * torch.randn(n_in * r, d, generator=g)
    return c.float(), sigma


ENGINES = {"tree": KDTreeSums, "blocks": MixtureIndex}


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", ["coincident", "tight", "spread", "dense"])
def test_index_bounds_hold_against_brute_force_with_groups(kind, engine):
    centers, sigma = geometry(kind, 20)
    groups = (torch.arange(len(centers)) // 25) % 3  # three classes of inputs
    g = gen(21)
    pick = torch.randint(0, len(centers), (600,), generator=g)
    z = torch.randn(600, centers.shape[1], generator=g, dtype=torch.float64)
    queries = centers[pick].double() + sigma * z
    index = ENGINES[engine](centers, sigma, tol=1e-4, chunk_elements=1 << 16, groups=groups)
    res = index.sums(queries, -0.5 * (z * z).sum(-1))  # own component: a sure lower bound
    c64 = centers.double().numpy()
    d = centers.shape[1]
    const = math.log(len(c64)) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    ref = log_density_numpy(queries.numpy(), c64, sigma) + const
    assert np.all(np.abs(res.log_total.numpy() - ref) <= res.bound.numpy() + 1e-12)
    assert float((res.bound <= 1e-4).double().mean()) > 0.95  # few queries need the fallback
    fixed, _ = certified_log_sums(index, queries, -0.5 * (z * z).sum(-1))
    assert np.abs(fixed.numpy() - ref).max() <= 1e-4
    own = groups[pick]  # the query's class, as SP asks for it
    _, need_fixed = certified_log_sums(index, queries, None, own)
    for k in range(3):
        members = c64[(groups == k).numpy()]
        ref_k = log_density_numpy(queries.numpy(), members, sigma)
        ref_k += math.log(len(members)) + 0.5 * d * math.log(2 * math.pi * sigma**2)
        got = res.log_group[:, k].numpy()
        ok = res.bound_group[:, k].numpy() <= 1e-4
        assert ok.mean() > 0.3  # the queries near class k
        assert np.all(np.abs(got[ok] - ref_k[ok]) <= res.bound_group[:, k].numpy()[ok] + 1e-12)
        mine = (own == k).numpy()
        assert np.abs(need_fixed[mine, k].numpy() - ref_k[mine]).max() <= 1e-4


def test_tree_leaves_hold_every_centre_inside_their_boxes():
    """The k-d tree of :class:`KDTreeSums`: leaves partition each group, boxes contain them."""
    centers, sigma = geometry("spread", 22)
    groups = (torch.arange(len(centers)) // 25) % 2
    tree = KDTreeSums(centers, sigma, tol=1e-4, chunk_elements=1 << 16, groups=groups, leaf=16)
    ct = tree.ct.T  # centres in leaf order
    for g in range(2):
        first_leaf = tree.roots[g] + 2 ** tree.depths[g] - 1
        leaves = range(first_leaf, first_leaf + 2 ** tree.depths[g])
        sizes = [tree.stop[k] - tree.start[k] for k in leaves]
        assert sum(sizes) == int((groups == g).sum()) and sum(sizes) / len(sizes) <= 16
        for k in range(tree.roots[g], first_leaf):  # splits near the median, within the quartiles
            size = tree.stop[k] - tree.start[k]
            left = 2 * (k - tree.roots[g]) + 1 + tree.roots[g]
            parts = [tree.stop[c] - tree.start[c] for c in (left, left + 1)]
            assert sum(parts) == size and min(parts) >= size // 4
        for k in leaves:
            pts = ct[tree.start[k] : tree.stop[k]]
            assert np.all(pts >= tree.lo[k]) and np.all(pts <= tree.hi[k])
    expect = np.sort(centers.double().numpy(), axis=0)
    assert np.array_equal(np.sort(ct, axis=0), expect)  # a permutation of the centres


def test_tree_keeps_each_stored_centres_original_row():
    centers, sigma = geometry("spread", 26)
    groups = (torch.arange(len(centers)) // 25) % 3
    tree = KDTreeSums(centers, sigma, tol=1e-4, chunk_elements=1 << 16, groups=groups, leaf=16)
    assert np.array_equal(tree.ct.T, centers.numpy()[tree.perm])
    assert np.array_equal(np.sort(tree.perm), np.arange(len(centers)))


def owner_log_sums_numpy(queries: np.ndarray, centers: np.ndarray, r: int, sigma: float):
    """log Σ_r e^{−‖q − c_or‖²/2σ²} per query and owner o (centres in rows of r), float64."""
    sq = ((queries[:, None, :] - centers[None]) ** 2).sum(-1) / (2 * sigma**2)
    return logsumexp(-sq.reshape(len(queries), -1, r), axis=2)


@pytest.mark.parametrize("kind", ["coincident", "tight", "spread", "dense"])
def test_posterior_draws_against_the_exact_posterior(kind):
    """Draws of the centre behind a query, the query's own owner left out: p_own ln p_own plus
    the other owners' mass times the draws' weighted mean of ln p(owner) is the posterior's
    Σ_o p_o ln p_o (within Monte Carlo error and the reported bounds); the sums and each drawn
    owner's log sum are as certified."""
    centers, sigma = geometry(kind, 27)
    r, n_in = 25, len(centers) // 25
    owner_of = torch.arange(n_in).repeat_interleave(r)
    groups = owner_of % 3
    tree = KDTreeSums(centers, sigma, tol=1e-4, chunk_elements=1 << 16, groups=groups, leaf=32)
    rows = centers.double().numpy().reshape(n_in, r, -1)
    owned = tree.owners(owner_of.numpy(), rows)
    g = gen(28)
    pick = torch.randint(0, len(centers), (12,), generator=g)
    q0 = centers[pick].double() + sigma * torch.randn(12, centers.shape[1], generator=g)
    many = 200  # systematic offsets per query
    queries, own = q0.repeat_interleave(many, 0), owner_of[pick].repeat_interleave(many)
    u = torch.rand(len(queries), generator=g, dtype=torch.float64)
    res = tree.posterior_draws(queries, owned, own, u, 16, skip=2.5e-6)
    assert bool(res.ok.all())
    ref_owner = owner_log_sums_numpy(q0.numpy(), rows.reshape(-1, rows.shape[-1]), r, sigma)
    ref_total = logsumexp(ref_owner, axis=1)
    log_p = ref_owner - ref_total[:, None]  # the exact posterior over owners
    first = np.arange(0, len(queries), many)
    assert np.all(np.abs(res.log_total.numpy()[first] - ref_total) <= res.tv.numpy()[first] + 1e-12)
    at = np.arange(len(queries))[:, None] // many
    drawn = res.weight.numpy() > 0
    assert np.abs(res.log_owner.numpy() - ref_owner[at, res.owner.numpy()])[drawn].max() < 1e-9
    assert not np.any(res.owner.numpy()[drawn] == own.numpy()[:, None].repeat(16, 1)[drawn])
    # the other owners' mass, as summed, within its rounding bound and the skipped mass
    p_own = np.exp(log_p[np.arange(12), owner_of[pick].numpy()])
    other = np.exp(ref_total) * (1 - p_own)
    err = (
        res.other_err.numpy()[first]
        + np.exp(res.log_total.numpy()[first]) * res.unseen.numpy()[first]
    )
    assert np.all(np.abs(res.other.numpy()[first] - other) <= err + 1e-12 * np.exp(ref_total))
    f = np.where(drawn, res.weight.numpy() * log_p[at, res.owner.numpy()], 0.0).sum(1)
    est = p_own.repeat(many) * np.log(p_own.repeat(many)) + (1 - p_own.repeat(many)) * f
    per_q = est.reshape(12, many)
    mean, se = per_q.mean(1), per_q.std(1, ddof=1) / math.sqrt(many)
    want = (np.exp(log_p) * log_p).sum(1)
    slack = (res.missed + 10 * res.unseen + 10 * res.tv).numpy()[first]
    assert np.all(np.abs(mean - want) <= 4.5 * se + slack + 1e-12), (mean - want, se)
    assert np.allclose(res.weight.sum(1).numpy()[res.other.numpy() > 0], 1.0)


@pytest.mark.parametrize(
    "centers",
    [
        torch.zeros(5000, 3),  # every centre the same point
        torch.randn(20, 2, generator=gen(23)),  # fewer centres than a leaf
        torch.randn(4097, 1, generator=gen(24)),  # d = 1, an odd count
    ],
)
def test_tree_sums_in_degenerate_geometries(centers):
    sigma = 0.3
    queries = centers[:50].double() + 0.1
    tree = KDTreeSums(centers, sigma, tol=1e-4, chunk_elements=1 << 16)
    got, _ = certified_log_sums(tree, queries)
    ref = log_density_numpy(queries.numpy(), centers.double().numpy(), sigma)
    ref += math.log(len(centers)) + 0.5 * centers.shape[1] * math.log(2 * math.pi * sigma**2)
    assert np.abs(got.numpy() - ref).max() <= 1e-4


def test_tree_sums_with_an_empty_group():
    centers, sigma = geometry("tight", 25)
    groups = torch.where(torch.arange(len(centers)) < 5000, 0, 2)  # group 1 has no centres
    tree = KDTreeSums(centers, sigma, tol=1e-4, chunk_elements=1 << 16, groups=groups)
    res = tree.sums(centers[:100].double())
    assert torch.isinf(res.log_group[:, 1]).all() and bool((res.log_group[:, 1] < 0).all())
    ref = log_density_numpy(centers[:100].double().numpy(), centers.double().numpy(), sigma)
    ref += math.log(len(centers)) + 2 * math.log(2 * math.pi * sigma**2)
    assert np.abs(res.log_total.numpy() - ref).max() <= 1e-4


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("centers", "sigma", "match"),
    [
        (torch.tensor([[0.0], [float("nan")]]), 1.0, "centers"),
        (torch.tensor([[0.0], [float("inf")]]), 1.0, "centers"),
        (torch.zeros(3), 1.0, "centers"),
        (torch.zeros(2, 2, 2), 1.0, "centers"),
        (torch.zeros(3, 2, dtype=torch.long), 1.0, "centers"),
        (torch.zeros(3, 2), 0.0, "sigma"),
        (torch.zeros(3, 2), -1.0, "sigma"),
        (torch.zeros(3, 2), float("nan"), "sigma"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(centers, sigma, match):
    with pytest.raises(ValueError, match=match):
        gaussian_mixture_entropy(centers, sigma)


def test_bad_n_mc_and_queries_raise():
    with pytest.raises(ValueError, match="n_mc"):
        gaussian_mixture_entropy(torch.zeros(3, 2), 1.0, n_mc=1)
    with pytest.raises(ValueError, match="queries"):
        mixture_log_density(torch.zeros(2, 3), torch.zeros(3, 2), 1.0)
    with pytest.raises(ValueError, match="centers"):
        mean_mixture_entropy(torch.zeros(3, 2), 1.0)


# --------------------------------------------------------------------------------------- device
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    centers = clustered_centers(20, 400, 4, 0.01, seed=16)
    queries = centers[::7].double() + 0.005
    cpu = mixture_log_density(queries, centers, 0.01)
    gpu = mixture_log_density(queries.cuda(), centers.cuda(), 0.01)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=2e-4)  # two engines, each within 1e-4
    a = gaussian_mixture_entropy(centers.cuda(), 0.01, n_mc=3000, generator=gen(17))
    b = gaussian_mixture_entropy(centers, 0.01, n_mc=3000, generator=gen(17))
    assert a.value == pytest.approx(b.value, abs=2e-4)


def test_pruned_path_between_4096_and_8192_centres():
    """Regression: 5120 centres (N=512, R=10) made the block size a negative shift."""
    c = torch.randn(5120, 3, dtype=torch.float64, generator=gen(9))
    q = c[:300] + 0.05 * torch.randn(300, 3, dtype=torch.float64, generator=gen(10))
    pruned = mixture_log_density(q, c, 0.05)
    exact = torch.from_numpy(log_density_numpy(q.numpy(), c.numpy(), 0.05))
    assert torch.allclose(pruned, exact, atol=1e-6)


def test_tree_exponentials_are_within_the_bounds_the_engine_uses():
    """The float32 exp's error (in units of 2⁻²⁴) is what each leaf's rounding bound assumes, and
    the float64 one is well below 1e-14; both against numpy's float64 exp on a fine grid."""
    import numba

    from infoflow.estimators.mixture import kdtree

    @numba.njit
    def both(x):
        out32, out64 = np.empty(x.size), np.empty(x.size)
        for i in range(x.size):
            out32[i] = kdtree._exp32(np.float32(x[i]))
            out64[i] = kdtree._exp(x[i])
        return out32, out64

    x = -np.linspace(0.0, 87.0, 400_001).astype(np.float32).astype(np.float64)  # exact in float32
    got32, got64 = both(x)
    ref = np.exp(x)
    assert np.abs(got32 / ref - 1).max() <= kdtree._EXP32_ERR * 2.0**-24
    assert np.abs(got64 / ref - 1).max() <= 1e-14
