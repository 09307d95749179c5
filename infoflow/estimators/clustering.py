"""Representation-clustering diagnostics ("compression is clustering", Goldfeld et al. 2019).

All functions take a layer's representations ``activations`` (n, d) and class ``labels`` (n,)
as torch tensors (CPU or CUDA; computed in float64 on their device) and return plain floats,
except :func:`kmeans` and :func:`cosine_similarity_distributions`, which return tensors.
Pairwise quantities are accumulated over (chunk × chunk) blocks: no n × n matrix is formed (but
for the ≤ max_samples² similarities that :func:`cosine_similarity_distributions` returns anyway).
Pairs are ordered pairs (i, j) with i ≠ j; the means equal those over unordered pairs.
Random sub-sampling draws from ``generator`` on that generator's device: a CPU generator gives the
same sample whatever device the data are on. ``generator=None`` means a fresh CPU one seeded with
0, so results are reproducible by default.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.functional.clustering import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    normalized_mutual_info_score,
)

from infoflow.estimators.checks import check_activations, check_count, check_labels

__all__ = [
    "clustering_scores",
    "cosine_similarity_distributions",
    "cosine_similarity_stats",
    "distance_ratio",
    "kmeans",
    "kmeans_scores",
    "silhouette_score",
]


def _check(activations: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    x = check_activations(activations)
    check_labels(labels, len(x))
    y = torch.unique(labels.to(x.device), return_inverse=True)[1]
    return x, y


def _generator(generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator().manual_seed(0)


def _subsample(x: Tensor, y: Tensor, max_samples: int, generator) -> tuple[Tensor, Tensor]:
    check_count("max_samples", max_samples)
    if len(x) <= max_samples:
        return x, y
    gen = _generator(generator)
    idx = torch.randperm(len(x), generator=gen, device=gen.device)[:max_samples].to(x.device)
    return x[idx], torch.unique(y[idx], return_inverse=True)[1]


def _sqdist(a: Tensor, b: Tensor) -> Tensor:
    sa, sb = (a * a).sum(dim=1), (b * b).sum(dim=1)
    return torch.addmm(sa[:, None] + sb[None, :], a, b.T, alpha=-2.0).clamp_min_(0.0)


def _pair_moments(x: Tensor, y: Tensor, kernel, chunk: int) -> Tensor:
    """(2, 3) tensor: [within, between] × [count, Σ k_ij, Σ k_ij²] over ordered pairs i ≠ j.

    Per-class sums come from (block × n_classes) matrix products, not boolean masks.
    """
    n = len(x)
    onehot = F.one_hot(y).double()
    sums = torch.zeros(2, 2, dtype=torch.float64, device=x.device)  # [within, all] × [Σk, Σk²]
    for i0 in range(0, n, chunk):
        for j0 in range(i0, n, chunk):  # upper blocks only; off-diagonal blocks count twice
            k = kernel(x[i0 : i0 + chunk], x[j0 : j0 + chunk], i0 == j0)
            if i0 == j0:
                k.fill_diagonal_(0.0)  # self-pairs excluded
            w = 1.0 if i0 == j0 else 2.0
            oi, oj = onehot[i0 : i0 + chunk], onehot[j0 : j0 + chunk]
            for col, kk in ((0, k), (1, k * k)):
                sums[0, col] += w * ((kk @ oj) * oi).sum()
                sums[1, col] += w * kk.sum()
    n_c = onehot.sum(dim=0)
    n_within = float((n_c * n_c).sum()) - n
    n_between = float(n * n) - n_within - n
    within = torch.cat([sums.new_tensor([n_within]), sums[0]])
    between = torch.cat([sums.new_tensor([n_between]), sums[1] - sums[0]])
    return torch.stack([within, between])


def distance_ratio(activations: Tensor, labels: Tensor, *, chunk_size: int = 1024) -> float:
    r"""Mean within-class over mean between-class Euclidean distance (dimensionless).

    .. math::
        \rho = \frac{\operatorname{mean}_{i \ne j,\, y_i = y_j} \lVert h_i - h_j \rVert}
                    {\operatorname{mean}_{y_i \ne y_j} \lVert h_i - h_j \rVert}

    over all ordered pairs (self-pairs excluded), computed exactly in (chunk × chunk) blocks.
    ρ → 0 when classes collapse to separated points; ρ ≈ 1 when representations ignore the class.

    Example:
        >>> h = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> round(distance_ratio(h, torch.tensor([0, 0, 1, 1])), 4)  # 1 / mean(10, 11, 9, 10)
        0.1
    """
    x, y = _check(activations, labels)
    check_count("chunk_size", chunk_size)
    return _distance_ratio(_class_distance_sums(x, y, chunk_size), y)


def _class_distance_sums(x: Tensor, y: Tensor, chunk: int) -> Tensor:
    """(n, n_classes): row i holds Σ_{j: y_j = c} ‖x_i − x_j‖ for every class c (self excluded:
    its distance is exactly 0), computed in (chunk × n) blocks. Both the distance ratio and the
    silhouette are functions of these sums: one pass over the pairs serves both."""
    onehot = F.one_hot(y).double()
    return torch.cat(
        [_euclid_rows(x[i0 : i0 + chunk], x, i0) @ onehot for i0 in range(0, len(x), chunk)]
    )


def _euclid_rows(a: Tensor, x: Tensor, offset: int) -> Tensor:
    """Distances of rows ``a`` = x[offset : offset + len(a)] to every row of x; exact zeros for
    each row's distance to itself (the mm trick leaves round-off there)."""
    d = _sqdist(a, x)
    rows = torch.arange(len(a), device=x.device)
    d[rows, rows + offset] = 0.0
    return d.sqrt_()


def _distance_ratio(sums: Tensor, y: Tensor) -> float:
    within = float(sums.gather(1, y[:, None]).sum())
    between = float(sums.sum()) - within
    counts = torch.bincount(y).double()
    n = len(y)
    n_within = float((counts * counts).sum()) - n
    n_between = float(n * n) - n_within - n
    if n_within == 0 or n_between == 0:
        raise ValueError("labels must have >= 2 classes and a class with >= 2 samples")
    return (within / n_within) / (between / n_between)


def silhouette_score(
    activations: Tensor,
    labels: Tensor,
    *,
    max_samples: int = 4096,
    generator: torch.Generator | None = None,
    chunk_size: int = 1024,
) -> float:
    r"""Mean silhouette coefficient with the labels as clusters, on ≤ ``max_samples`` points.

    .. math::
        s_i = \frac{b_i - a_i}{\max(a_i, b_i)},\quad
        a_i = \operatorname{mean}_{j \ne i,\, y_j = y_i} d_{ij},\quad
        b_i = \min_{c \ne y_i} \operatorname{mean}_{y_j = c} d_{ij}

    with Euclidean d; s_i = 0 for a point alone in its class (scikit-learn's convention).
    Range [−1, 1]; 1 = tight, well separated classes. If n > max_samples, a uniform random
    subset (seeded by ``generator``) is used.

    Example:
        >>> h = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> round(silhouette_score(h, torch.tensor([0, 0, 1, 1])), 4)  # mean(9.5/10.5, 8.5/9.5)
        0.8997
    """
    x, y = _check(activations, labels)
    check_count("chunk_size", chunk_size)
    x, y = _subsample(x, y, max_samples, generator)
    if int(y.max()) < 1:
        raise ValueError("labels must have >= 2 classes")
    return _silhouette(_class_distance_sums(x, y, chunk_size), y)


def _silhouette(sums: Tensor, y: Tensor) -> float:
    counts = torch.bincount(y).double()
    own = counts[y]
    a = sums.gather(1, y[:, None]).squeeze(1) / (own - 1).clamp_min(1)
    b = (sums / counts).scatter(1, y[:, None], math.inf).min(dim=1).values
    denom = torch.maximum(a, b)
    s = torch.where(denom > 0, (b - a) / denom.clamp_min(1e-300), torch.zeros_like(a))
    return float(torch.where(own > 1, s, torch.zeros_like(s)).mean())


def _cosine_block(a: Tensor, b: Tensor, same_rows: bool) -> Tensor:
    return a @ b.T  # rows already unit-normalised


def cosine_similarity_stats(
    activations: Tensor, labels: Tensor, *, chunk_size: int = 1024
) -> dict[str, float]:
    r"""Mean and standard deviation of cosine similarities within and between classes.

    :math:`c_{ij} = \langle h_i, h_j \rangle / (\lVert h_i\rVert \lVert h_j\rVert)` over all
    ordered pairs i ≠ j (exact, chunked); an all-zero row has similarity 0 with everything.
    Std is the population standard deviation over pairs.

    Returns:
        ``{"cos_within_mean", "cos_within_std", "cos_between_mean", "cos_between_std"}``
        (dimensionless, in [−1, 1]; NaN where a group has no pair).

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])
        >>> cosine_similarity_stats(h, torch.tensor([0, 0, 1, 1]))["cos_between_mean"]
        0.0
    """
    x, y = _check(activations, labels)
    check_count("chunk_size", chunk_size)
    m = _pair_moments(F.normalize(x, dim=1), y, _cosine_block, chunk_size)
    out = {}
    for row, name in ((0, "within"), (1, "between")):
        count, s1, s2 = m[row].tolist()
        mean = s1 / count if count else math.nan
        var = max(s2 / count - mean * mean, 0.0) if count else math.nan
        out[f"cos_{name}_mean"], out[f"cos_{name}_std"] = mean, math.sqrt(var)
    return out


def cosine_similarity_distributions(
    activations: Tensor,
    labels: Tensor,
    *,
    max_samples: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """All within-class and between-class cosine similarities of a sample, for histograms.

    On a uniform random subset of at most ``max_samples`` points (seeded by ``generator``),
    returns two 1-D float64 tensors (on the input's device) holding c_ij for the unordered pairs
    i < j with equal and with different labels: about max_samples² / 2 values in all.

    Example:
        >>> h = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
        >>> w, b = cosine_similarity_distributions(h, torch.tensor([0, 0, 1]))
        >>> w.tolist(), b.tolist()
        ([1.0], [0.0, 0.0])
    """
    x, y = _check(activations, labels)
    x, y = _subsample(x, y, max_samples, generator)
    x = F.normalize(x.double(), dim=1)
    # The Gram matrix (m × m), not the pairs' rows (m²/2 × d): a conv layer has d in the thousands.
    i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
    c = (x @ x.T)[i, j]
    same = y[i] == y[j]
    return c[same], c[~same]


def _kmeans_pp(x: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding: each new centre drawn with probability ∝ squared distance to the set."""
    idx = [int(torch.randint(len(x), (1,), generator=gen, device=gen.device))]
    d2 = _sqdist(x, x[idx]).squeeze(1)
    for _ in range(1, k):
        w = d2.to(gen.device)
        if w.sum() > 0:
            i = torch.multinomial(w, 1, generator=gen)
        else:  # all points coincide with a centre already
            i = torch.randint(len(x), (1,), generator=gen, device=gen.device)
        idx.append(int(i))
        d2 = torch.minimum(d2, _sqdist(x, x[idx[-1:]]).squeeze(1))
    return x[idx].clone()


def _lloyd(x: Tensor, c: Tensor, n_iter: int) -> tuple[Tensor, Tensor, float]:
    assign = None
    for _ in range(n_iter):
        d2 = _sqdist(x, c)
        new = d2.argmin(dim=1)
        if assign is not None and bool((new == assign).all()):
            break
        assign = new
        counts = torch.bincount(assign, minlength=len(c)).double()
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)  # keep empty
    inertia = float(_sqdist(x, c).gather(1, assign[:, None]).sum())
    return assign, c, inertia


def kmeans(
    activations: Tensor,
    n_clusters: int,
    *,
    n_iter: int = 100,
    n_init: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Seeded k-means (k-means++ initialisation, vectorised Lloyd iterations).

    Minimises the inertia :math:`\sum_i \min_c \lVert h_i - \mu_c \rVert^2`; Lloyd iterations
    stop when assignments no longer change or after ``n_iter``; the best of ``n_init`` seedings
    is kept. An emptied cluster keeps its previous centre.

    Returns:
        ``(assignments, centres)``: (n,) int64 in [0, n_clusters) and (n_clusters, d) float64,
        on the input's device.

    Example:
        >>> h = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> a, c = kmeans(h, 2)
        >>> bool(a[0] == a[1] != a[2] == a[3])
        True
    """
    x = check_activations(activations)
    for name, v in (("n_clusters", n_clusters), ("n_iter", n_iter), ("n_init", n_init)):
        check_count(name, v)
    if n_clusters > len(x):
        raise ValueError(f"n_clusters must be <= n = {len(x)}, got {n_clusters}")
    gen = _generator(generator)
    best = None
    for _ in range(n_init):
        run = _lloyd(x, _kmeans_pp(x, n_clusters, gen), n_iter)
        if best is None or run[2] < best[2]:
            best = run
    return best[0], best[1]


def _metric(fn, *args) -> float:
    with warnings.catch_warnings():  # torch >= 2.13: torchmetrics' sparse contingency matrix
        warnings.filterwarnings("ignore", message=".*sparse invariant checks.*")
        return float(fn(*args))


def kmeans_scores(
    activations: Tensor, labels: Tensor, *, generator: torch.Generator | None = None
) -> dict[str, float]:
    """Agreement of a k-means partition (k = number of classes) with the labels.

    Uses torchmetrics' ``normalized_mutual_info_score`` (arithmetic normalisation; 1 = the
    partition is the labelling up to renaming) and ``adjusted_rand_score`` (0 = chance, 1 = same).

    Returns:
        ``{"kmeans_nmi", "kmeans_ari"}`` (dimensionless).

    Example:
        >>> h = torch.tensor([[0.0], [0.1], [5.0], [5.1]])
        >>> kmeans_scores(h, torch.tensor([1, 1, 0, 0]))
        {'kmeans_nmi': 1.0, 'kmeans_ari': 1.0}
    """
    x, y = _check(activations, labels)
    assign, _ = kmeans(x, int(y.max()) + 1, generator=generator)
    return {
        "kmeans_nmi": _metric(normalized_mutual_info_score, assign, y),
        "kmeans_ari": _metric(adjusted_rand_score, assign, y),
    }


def clustering_scores(
    activations: Tensor,
    labels: Tensor,
    *,
    max_samples: int = 4096,
    generator: torch.Generator | None = None,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """All scalar clustering diagnostics of one layer, on one seeded sample of ≤ max_samples.

    Keys: ``distance_ratio`` (:func:`distance_ratio`), ``silhouette`` (:func:`silhouette_score`),
    ``cos_within_mean``, ``cos_within_std``, ``cos_between_mean``, ``cos_between_std``
    (:func:`cosine_similarity_stats`), ``kmeans_nmi``, ``kmeans_ari`` (:func:`kmeans_scores`),
    and torchmetrics' intrinsic ``davies_bouldin`` (lower = tighter classes) and
    ``calinski_harabasz`` (between/within dispersion ratio, higher = tighter), both with the
    labels as clusters. All dimensionless floats.

    Example:
        >>> h = torch.tensor([[0.0, 1.0], [0.1, 1.0], [5.0, 0.0], [5.1, 0.0]])
        >>> s = clustering_scores(h, torch.tensor([0, 0, 1, 1]))
        >>> s["kmeans_nmi"], round(s["silhouette"], 3)
        (1.0, 0.98)
    """
    x, y = _check(activations, labels)
    check_count("chunk_size", chunk_size)
    x, y = _subsample(x, y, max_samples, generator)
    gen = _generator(generator)
    if int(y.max()) < 1:
        raise ValueError("labels must have >= 2 classes")
    sums = _class_distance_sums(x, y, chunk_size)  # one pass over the pairs for both scores
    scores = {
        "distance_ratio": _distance_ratio(sums, y),
        "silhouette": _silhouette(sums, y),
        **cosine_similarity_stats(x, y, chunk_size=chunk_size),
        **kmeans_scores(x, y, generator=gen),
    }
    scores["davies_bouldin"] = _metric(davies_bouldin_score, x, y)
    scores["calinski_harabasz"] = _metric(calinski_harabasz_score, x, y)
    return scores
