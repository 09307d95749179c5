r"""Entropies and densities of Gaussian mixtures with shared isotropic covariance, in nats.

The mixture is ĝ(t) = (1/n) Σ_k φ_σ(t − c_k), φ_σ the density of N(0, σ² I_d). Densities come from
:func:`make_index` (k-d trees on the CPU, :mod:`.kdtree`; block pairs on a GPU, :mod:`.index`):
each log ĝ(q) within ``tol`` nats (default 1e-4: pruning and float32 rounding together, certified
query by query, with a float64 fallback), or exact in float64 with
``tol = 0``. Entropies are Monte Carlo integrals with the query's own component as a control
variate (:func:`_log_own_kernel`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow.estimators.mixture.checks import (
    check_chunk,
    check_n_mc,
    check_points,
    check_sigma,
    check_tol,
)
from infoflow.estimators.mixture.index import MixtureIndex
from infoflow.estimators.mixture.kdtree import KDTreeSums
from infoflow.estimators.mixture.kernels import F64, dense_lse, log_norm
from infoflow.estimators.result import Estimate

DEFAULT_TOL = 1e-4  # nats: bound on the error of each log ĝ(q)
DEFAULT_TARGET_STDERR = 5e-3  # nats: Monte Carlo standard error the default n_mc aims at
MAX_DEFAULT_N_MC = 1_000_000
_PILOT = 1000  # pilot queries for the default n_mc (kept as part of the estimate)
_MIN_INDEXED = 8192  # fewer centres × queries / 1000 on a GPU: every centre enters every query
_MIN_TREE = 512  # on the CPU: fewer centres, or centres × queries / 1000, sum densely


def gaussian_entropy(d: int, sigma: float) -> float:
    """Differential entropy of N(μ, σ² I_d) in nats: h = (d/2) ln(2π e σ²).

    Example:
        >>> round(gaussian_entropy(1, 1.0), 4)
        1.4189
    """
    return 0.5 * d * math.log(2.0 * math.pi * math.e * check_sigma(sigma) ** 2)


def random_draws(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None, kind: str
) -> Tensor:
    """Float64 normal (``kind="randn"``) or uniform draws on ``device``, from ``generator``
    wherever that generator lives (so CPU and GPU runs see the same numbers)."""
    fn = torch.randn if kind == "randn" else torch.rand
    if generator is None:
        return fn(shape, dtype=F64, device=device)
    return fn(shape, dtype=F64, device=generator.device, generator=generator).to(device)


def use_index(n: int, m: int, d: int, tol: float, device: torch.device | None = None) -> bool:
    """Prune only where it can pay: a tolerance, a moderate width, and enough centres × queries
    (the CPU's k-d trees cost milliseconds to build; the GPU's blocks need more to pay)."""
    if not (tol > 0 and d <= 16):
        return False
    if device is None or torch.device(device).type == "cpu":
        return n >= _MIN_TREE and n * m >= _MIN_TREE * 1000
    return n > 4096 and n * m > _MIN_INDEXED * 1000


def make_index(
    centers: Tensor,
    sigma: float,
    *,
    tol: float,
    chunk_elements: int,
    groups: Tensor | None = None,
) -> KDTreeSums | MixtureIndex:
    """The certified kernel-sum engine for ``centers``' device: the compiled k-d tree walk on the
    CPU (:mod:`.kdtree`), batched float32 block pairs on a GPU (:mod:`.index`)."""
    if centers.device.type == "cpu":
        return KDTreeSums(centers, sigma, tol=tol, chunk_elements=chunk_elements, groups=groups)
    return MixtureIndex(centers, sigma, tol=tol, chunk_elements=chunk_elements, groups=groups)


def mixture_log_density(
    queries: Tensor,
    centers: Tensor,
    sigma: float,
    *,
    tol: float = DEFAULT_TOL,
    chunk_elements: int | None = None,
) -> Tensor:
    r"""Log-density of the mixture ĝ = (1/n) Σ_k N(c_k, σ² I) at query points, in nats.

    .. math::
        \log \hat g(q) = \operatorname{logsumexp}_k\Big(-\frac{\|q - c_k\|^2}{2\sigma^2}\Big)
        - \ln n - \frac{d}{2}\ln(2\pi\sigma^2)

    With ``tol > 0``, many centres and queries and d ≤ 16, far centres are pruned and near ones
    summed in float32 (:func:`make_index`: k-d trees on the CPU, block pairs on a GPU); every query's
    error bound is checked and a query over ``tol`` is recomputed exactly. Otherwise every centre
    enters every query in float64 tiles. Either way each value is within ``tol`` nats (rounding
    of the float64 path: ~1e-10 at σ = 0.005).

    Args:
        queries: (m, d) points.
        centers: (n, d) centres, same device; NaN/inf rejected.
        sigma: component standard deviation σ > 0.
        tol: bound on each value's error in nats (0: exact float64 over all centres).
        chunk_elements: most kernel values materialised at once (default 2^20 on CPU, 2^24 on
            GPUs).

    Returns:
        (m,) float64 tensor of log ĝ(q), nats.

    Example:
        >>> c = torch.tensor([[0.0], [10.0]])
        >>> round(float(mixture_log_density(torch.tensor([[0.0]]), c, 1.0)[0]), 4)  # ln(φ(0)/2)
        -1.6121
    """
    sigma = check_sigma(sigma)
    chunk_elements = check_chunk(chunk_elements, centers)
    check_points(queries, "queries", 2)
    check_points(centers, "centers", 2)
    if queries.shape[1] != centers.shape[1]:
        raise ValueError(f"queries have d={queries.shape[1]} but centers have d={centers.shape[1]}")
    tol = check_tol(tol)
    n, d = centers.shape
    if not use_index(n, queries.shape[0], d, tol, centers.device):
        return dense_lse(queries[None], centers[None], sigma, chunk_elements)[0] + log_norm(
            n, d, sigma
        )
    index = make_index(centers, sigma, tol=tol, chunk_elements=chunk_elements)
    return certified_log_sums(index, queries)[0] + log_norm(n, d, sigma)


def certified_log_sums(
    index: KDTreeSums | MixtureIndex,
    queries: Tensor,
    log_lower: Tensor | None = None,
    group_needed: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """log S(q) (m,) and log S_g(q) (m, G) from ``index``, each within the index's tol where it
    is needed — the total, and the group ``group_needed[q]`` when given; queries over it are
    recomputed exactly (float64, every centre)."""
    res = index.sums(queries, log_lower, group_needed)
    log_total, log_group = res.log_total.clone(), res.log_group.clone()
    bad = ~(res.bound <= index.tol)
    if group_needed is not None:
        bad |= ~(res.bound_group.gather(1, group_needed[:, None])[:, 0] <= index.tol)
    rows = bad.nonzero()[:, 0]
    if rows.numel():
        log_total[rows], log_group[rows] = index.exact(queries[rows])
    return log_total, log_group


def _log_own_kernel(z: Tensor, sigma: float) -> Tensor:
    r"""log φ_σ(σz) = −(d/2) ln(2πσ²) − ‖z‖²/2: the log density of a query's own component.

    The control variate of every estimator here. With q = c_k + σz,

    .. math::
        h(\hat g) = \underbrace{\mathbb E[-\log\varphi_\sigma(\sigma z)]}_{=(d/2)\ln(2\pi e\sigma^2)}
        + \mathbb E[\log\varphi_\sigma(\sigma z) - \log\hat g(q)],

    and only the second term is integrated by Monte Carlo: unbiased like the plain average, but
    nearly constant (≈ ln n) where the components barely overlap and exactly 0 where they coincide.
    """
    d = z.shape[-1]
    return -0.5 * d * math.log(2 * math.pi * sigma**2) - 0.5 * (z * z).sum(-1)


def mc_estimate(values: Tensor, offset: float = 0.0) -> Estimate:
    """offset + the mean of ``values``, with the standard error std / √M (inf for one value)."""
    m = values.numel()
    stderr = float(values.std() / math.sqrt(m)) if m > 1 else math.inf
    return Estimate(offset + float(values.mean()), stderr)


def gaussian_mixture_entropy(
    centers: Tensor,
    sigma: float,
    *,
    n_mc: int | None = None,
    generator: torch.Generator | None = None,
    target_stderr: float = DEFAULT_TARGET_STDERR,
    tol: float = DEFAULT_TOL,
    chunk_elements: int | None = None,
) -> Estimate:
    r"""Differential entropy of ĝ = (1/n) Σ_k N(c_k, σ² I_d) by Monte Carlo integration, in nats.

    .. math::
        h(\hat g) = \frac d2\ln(2\pi e\sigma^2)
        + \frac{1}{M}\sum_{j=1}^{M}\big[\log\varphi_\sigma(\sigma z_j) - \log\hat g(q_j)\big],
        \quad q_j = c_{\pi(j \bmod n)} + \sigma z_j,\ z_j \sim N(0, I_d)

    Queries are spread evenly over the centres (π a random permutation); the query's own component
    is the control variate (:func:`_log_own_kernel`) and also the lower bound that lets the index
    prune. Standard error: std of the bracket / √M (conservative for this stratified design).

    Default ``n_mc``: 1000 pilot queries estimate the bracket's variance v; then
    M = clip(⌈v / target_stderr²⌉, 1000, 10⁶), the pilot counting towards M.

    Args:
        centers: (n, d) centres (CPU or CUDA; computed on that device).
        sigma: component standard deviation σ > 0.
        n_mc: total number of queries M (default: see above).
        generator: torch.Generator for the queries (any device).
        target_stderr: standard error the default M aims at, nats.
        tol: bound on each log ĝ(q)'s error, nats (0: exact float64).
        chunk_elements: most kernel values materialised at once.

    Returns:
        Estimate(value, stderr) in nats.

    Example:
        >>> c = torch.tensor([[0.0], [100.0]])  # two far-apart unit Gaussians: ln 2 + h(N(0, 1))
        >>> e = gaussian_mixture_entropy(c, 1.0, n_mc=20000, generator=torch.Generator().manual_seed(0))
        >>> abs(e.value - (math.log(2) + 1.4189385)) < 1e-6  # the control variate is exact here
        True
    """
    sigma = check_sigma(sigma)
    chunk_elements = check_chunk(chunk_elements, centers)
    check_points(centers, "centers", 2)
    check_n_mc(n_mc)
    tol = check_tol(tol)
    n, d = centers.shape
    dev = centers.device
    index = None
    if use_index(n, n_mc or _PILOT, d, tol, dev):
        index = make_index(centers, sigma, tol=tol, chunk_elements=chunk_elements)
    order = torch.argsort(random_draws((n,), dev, generator, "rand"))

    def bracket(start: int, stop: int) -> Tensor:
        k = order[torch.arange(start, stop, device=dev) % n]
        z = random_draws((stop - start, d), dev, generator, "randn")
        q = centers[k].to(F64) + sigma * z
        own = _log_own_kernel(z, sigma)
        if index is None:
            lse = dense_lse(q[None], centers[None], sigma, chunk_elements)[0]
        else:
            lse = certified_log_sums(index, q, -0.5 * (z * z).sum(-1))[0]
        return own - lse - log_norm(n, d, sigma)

    h_own = gaussian_entropy(d, sigma)
    if n_mc is not None:
        return mc_estimate(bracket(0, int(n_mc)), h_own)
    values = bracket(0, _PILOT)
    total = int(
        min(max(math.ceil(float(values.var()) / target_stderr**2), _PILOT), MAX_DEFAULT_N_MC)
    )
    if total > _PILOT:
        values = torch.cat([values, bracket(_PILOT, total)])
    return mc_estimate(values, h_own)


def batched_mixture_log_density(
    queries: Tensor, centers: Tensor, sigma: float, *, chunk_elements: int | None = None
) -> Tensor:
    r"""Log-density of B Gaussian mixtures, each at its own query points, over all its centres.

    Exact float64 (every centre enters), tiled so that no tile holds more than
    ``chunk_elements`` kernel values.

    Args:
        queries: (B, m, d) query points, on the centres' device.
        centers: (B, n, d) centres.
        sigma: common standard deviation σ > 0.
        chunk_elements: most kernel values materialised at once.

    Returns:
        (B, m) float64 log ĝ_b(q), nats.

    Example:
        >>> c = torch.zeros(1, 1, 2); q = torch.zeros(1, 1, 2)
        >>> round(float(batched_mixture_log_density(q, c, 1.0)), 6)  # −ln(2π)
        -1.837877
    """
    sigma = check_sigma(sigma)
    chunk_elements = check_chunk(chunk_elements, queries)
    check_points(queries, "queries", 3)
    check_points(centers, "centers", 3)
    if queries.shape[0] != centers.shape[0] or queries.shape[2] != centers.shape[2]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and centers {tuple(centers.shape)} disagree in B or d"
        )
    _, n, d = centers.shape
    return dense_lse(queries, centers, sigma, chunk_elements) + log_norm(n, d, sigma)


def mean_mixture_entropy(
    centers: Tensor,
    sigma: float,
    *,
    n_mc: int | None = None,
    generator: torch.Generator | None = None,
    target_stderr: float = DEFAULT_TARGET_STDERR,
    chunk_elements: int | None = None,
) -> Estimate:
    r"""Mean entropy of B mixtures of equal size: (1/B) Σ_b h(ĝ_b), ĝ_b = (1/R) Σ_r N(c_br, σ² I).

    The same own-component control variate as :func:`gaussian_mixture_entropy`; every mixture is
    evaluated exactly over its R centres. Standard error: sqrt(Σ_b s_b² / m) / B (pooled within
    mixtures). Default ``n_mc``: a pilot of 8 queries per mixture estimates the pooled variance v;
    then m = clip(⌈v / (B · target_stderr²)⌉, 8, ⌊10⁶ / B⌋) per mixture.

    Args:
        centers: (B, R, d) centres.
        sigma: component standard deviation σ > 0.
        n_mc: total queries, spread evenly as m = ⌈n_mc / B⌉ per mixture (m ≥ 2).
        generator: torch.Generator for the queries.
        target_stderr: standard error the default n_mc aims at, nats.
        chunk_elements: most kernel values materialised at once.

    Returns:
        Estimate(value, stderr) in nats.

    Example:
        >>> c = torch.zeros(5, 3, 2)  # every mixture is one Gaussian: h = ln(2πe)
        >>> e = mean_mixture_entropy(c, 1.0, n_mc=5000, generator=torch.Generator().manual_seed(0))
        >>> abs(e.value - math.log(2 * math.pi * math.e)) < 1e-9
        True
    """
    sigma = check_sigma(sigma)
    chunk_elements = check_chunk(chunk_elements, centers)
    check_points(centers, "centers", 3)
    check_n_mc(n_mc)
    b, r, d = centers.shape
    dev = centers.device
    order = random_draws((b, r), dev, generator, "rand").argsort(dim=1)

    def bracket(start: int, stop: int) -> Tensor:
        j = order[:, torch.arange(start, stop, device=dev) % r]
        pts = centers.gather(1, j[..., None].expand(-1, -1, d)).to(F64)
        z = random_draws((b, stop - start, d), dev, generator, "randn")
        log_g = batched_mixture_log_density(
            pts + sigma * z, centers, sigma, chunk_elements=chunk_elements
        )
        return _log_own_kernel(z, sigma) - log_g

    h_own = gaussian_entropy(d, sigma)
    if n_mc is not None:
        return _pooled_estimate(bracket(0, max(2, math.ceil(n_mc / b))), h_own)
    values = bracket(0, 8)
    within = float(values.var(dim=1).mean())
    per = int(
        min(max(math.ceil(within / (b * target_stderr**2)), 8), max(8, MAX_DEFAULT_N_MC // b))
    )
    if per > 8:
        values = torch.cat([values, bracket(8, per)], dim=1)
    return _pooled_estimate(values, h_own)


def _pooled_estimate(values: Tensor, offset: float = 0.0) -> Estimate:
    """offset + mean over (B, m) values, and the stratified standard error sqrt(Σ_b s_b²/m)/B."""
    b, m = values.shape
    return Estimate(offset + float(values.mean()), float((values.var(dim=1).sum() / m).sqrt() / b))
