r"""The optimal information-bottleneck curve of an exact joint p(x, y), in nats.

The IB curve is :math:`F(r) = \max\{I(T;Y) : I(X;T) \le r,\ T - X - Y\}`, the frontier drawn
beside the layers' trajectories in the information plane (Shwartz-Ziv & Tishby 2017). It is
found with the iterative IB algorithm (Tishby, Pereira & Bialek 1999): for each trade-off β the
self-consistent equations

.. math::
    p(t) = \sum_x p(x) p(t|x),\quad p(y|t) = \frac{1}{p(t)}\sum_x p(x) p(t|x) p(y|x),\quad
    p(t|x) \propto p(t)\, e^{-\beta\, \mathrm{KL}[p(y|x)\,\|\,p(y|t)]}

are iterated to a fixed point, with deterministic annealing: β grows along a grid, every
cluster is split in two (small random perturbation) before each β, and clusters whose p(y|t)
coincide are merged after it. A second, reverse sweep starts from T = X' at the largest β and
lowers β: where the trivial solution stays locally stable past the point where a non-trivial
one is better (a first-order transition; the curve's slope at the origin can exceed what the
forward sweep detects), the reverse sweep still follows the non-trivial branch down.

Exact facts used, so that the returned curve is right at its ends:

* Inputs with identical p(y|x) are merged first (X' = the minimal sufficient statistic of X for
  Y): the IB curves of (X, Y) and (X', Y) coincide, and the problem shrinks (SZT: 4096 → 2).
* (0, 0) (constant T), (H(X'), I(X;Y)) (T = X') and (H(X), I(X;Y)) (T = X) are achievable.
* Time-sharing between two encoders achieves every point of the chord between them, so the
  curve is the upper concave envelope of all points found; that envelope is returned.

For deterministic labels Y = f(X) (SZT), X' ≅ Y and any T gives I(T;Y) = I(X';T): the curve is
the diagonal I(T;Y) = I(X;T) up to H(Y), then flat at H(Y) up to H(X).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["IBCurve", "ib_curve", "joint_from_samples"]

_TINY = 1e-300


class IBCurve(NamedTuple):
    """Vertices of the IB curve, sorted by I(X;T): piecewise-linear, non-decreasing, concave.

    ``i_xt`` and ``i_ty`` in nats; ``beta`` is the trade-off at which each point was found
    (0 for the origin, inf for the exact end points T = X' and T = X).
    """

    i_xt: np.ndarray
    i_ty: np.ndarray
    beta: np.ndarray


def _as_numpy(a, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def _check_joint(p_x, p_y_given_x) -> tuple[np.ndarray, np.ndarray]:
    p_x, p_yx = _as_numpy(p_x, "p_x"), _as_numpy(p_y_given_x, "p_y_given_x")
    if p_x.ndim != 1 or p_x.size == 0 or np.any(p_x < 0) or abs(p_x.sum() - 1) > 1e-6:
        raise ValueError("p_x must be a non-empty 1-D probability vector (>= 0, summing to 1)")
    if p_yx.ndim != 2 or p_yx.shape[0] != p_x.size:
        raise ValueError(f"p_y_given_x must have shape ({p_x.size}, k), got {p_yx.shape}")
    if np.any(p_yx < 0) or np.any(np.abs(p_yx.sum(axis=1) - 1) > 1e-6):
        raise ValueError("p_y_given_x rows must be probability vectors (>= 0, summing to 1)")
    keep = p_x > 0
    return p_x[keep] / p_x[keep].sum(), p_yx[keep] / p_yx[keep].sum(axis=1, keepdims=True)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x * np.log(np.where(x > 0, y, 1.0)), 0.0)


def _informations(p_x, p_yx, q) -> tuple[float, float]:
    """I(X;T) and I(T;Y) of the encoder q = p(t|x), shape (n, m)."""
    p_t = p_x @ q
    p_y = p_x @ p_yx
    joint_ty = (q * p_x[:, None]).T @ p_yx  # (m, k)
    i_xt = float((p_x[:, None] * _xlogy(q, q / np.maximum(p_t, _TINY))).sum())
    i_ty = float(_xlogy(joint_ty, joint_ty / np.maximum(np.outer(p_t, p_y), _TINY)).sum())
    return max(i_xt, 0.0), max(i_ty, 0.0)


def _ib_iterate(p_x, p_yx, q, beta: float, n_iter: int, tol: float) -> np.ndarray:
    neg_h = _xlogy(p_yx, p_yx).sum(axis=1, keepdims=True)  # Σ_y p(y|x) ln p(y|x)
    for _ in range(n_iter):
        p_t = p_x @ q
        p_yt = ((q * p_x[:, None]).T @ p_yx) / np.maximum(p_t, _TINY)[:, None]
        kl = neg_h - p_yx @ np.log(np.maximum(p_yt, _TINY)).T  # (n, m)
        logits = np.log(np.maximum(p_t, _TINY)) - beta * kl
        new = np.exp(logits - logits.max(axis=1, keepdims=True))
        new /= new.sum(axis=1, keepdims=True)
        done = np.abs(new - q).max() < tol
        q = new
        if done:
            break
    return q


def _split(q: np.ndarray, cap: int, rng: np.random.Generator, eps: float) -> np.ndarray:
    n_new = min(q.shape[1], cap - q.shape[1])
    if n_new <= 0:
        return q
    u = rng.uniform(-1.0, 1.0, size=(q.shape[0], n_new))
    half = q[:, :n_new] / 2
    return np.concatenate([half * (1 + eps * u), half * (1 - eps * u), q[:, n_new:]], axis=1)


def _merge(p_x, p_yx, q, tol: float = 1e-6) -> np.ndarray:
    """Drop empty clusters and merge clusters with (nearly) equal p(y|t)."""
    p_t = p_x @ q
    q = q[:, p_t > 1e-12]
    p_t = p_t[p_t > 1e-12]
    p_yt = ((q * p_x[:, None]).T @ p_yx) / p_t[:, None]
    close = np.abs(p_yt[:, None, :] - p_yt[None, :, :]).max(axis=2) < tol
    rep = close.argmax(axis=1)  # first cluster close to each one
    groups, inv = np.unique(rep, return_inverse=True)
    merged = np.zeros((q.shape[0], groups.size))
    np.add.at(merged.T, inv, q.T)
    return merged / merged.sum(axis=1, keepdims=True)


def _upper_concave_envelope(pts: np.ndarray, x_tol: float = 1e-9) -> np.ndarray:
    """Rows (x, y, beta) of the vertices of the upper concave hull of ``pts``, x ascending.

    Points closer than ``x_tol`` in x count as one (the highest); collinear points are dropped.
    The first row must be the origin, which is kept (points within ``x_tol`` of it are dropped).
    """
    pts = np.concatenate([pts[:1], pts[1:][pts[1:, 0] >= x_tol]])
    pts = pts[np.lexsort((-pts[:, 1], pts[:, 0]))]
    hull: list[np.ndarray] = []
    for p in pts:  # Andrew's monotone chain over the few hundred points found
        if hull and p[0] - hull[-1][0] < x_tol:
            if p[1] <= hull[-1][1]:
                continue
            hull.pop()
        while len(hull) >= 2:
            (ox, oy), (ax, ay) = hull[-2][:2], hull[-1][:2]
            if (ax - ox) * (p[1] - oy) - (ay - oy) * (p[0] - ox) < 0:
                break
            hull.pop()  # hull[-1] lies on or below the chord from hull[-2] to p
        hull.append(p)
    return np.array(hull)


def _default_betas() -> np.ndarray:
    return np.geomspace(1.0, 1e3, 150)


def ib_curve(
    p_x,
    p_y_given_x,
    *,
    betas=None,
    n_clusters: int | None = None,
    n_iter: int = 1000,
    tol: float = 1e-8,
    seed: int = 0,
) -> IBCurve:
    r"""Optimal IB curve of p(x, y) = p(x) p(y|x) by annealed iterative IB, in nats.

    Args:
        p_x: (n,) probabilities of the inputs (numpy array, torch tensor or sequence).
        p_y_given_x: (n, k) rows p(y|x).
        betas: increasing trade-off values to anneal through (default: 150 values
            geometrically spaced in [1, 1000]; β ≤ 1 only gives the trivial T).
        n_clusters: cap on |T| (default: the number of distinct rows of p(y|x), at most 64).
        n_iter: maximum fixed-point iterations per β; tol: their stopping tolerance on p(t|x).
        seed: seed of the cluster-splitting perturbations.

    Returns:
        :class:`IBCurve` (i_xt, i_ty, beta): the vertices of the upper concave envelope of the
        points found and of the exact points (0, 0), (H(X'), I(X;Y)), (H(X), I(X;Y)); it starts
        at (0, 0), is non-decreasing and concave, never exceeds min(I(X;T), I(X;Y)), and is
        flat at I(X;Y) from I(X;T) = H(X') (H(Y) for deterministic labels) on.

    Example:
        >>> c = ib_curve([0.25] * 4, [[1, 0], [1, 0], [0, 1], [0, 1]])  # Y = f(X)
        >>> [round(float(v), 4) for v in np.interp([0.3, 0.6931, 1.2], c.i_xt, c.i_ty)]
        [0.3, 0.6931, 0.6931]
    """
    p_x, p_yx = _check_joint(p_x, p_y_given_x)
    betas = _default_betas() if betas is None else np.sort(_as_numpy(betas, "betas").ravel())
    if betas.size and betas[0] < 0:
        raise ValueError("betas must be >= 0")
    rows, inv = np.unique(p_yx, axis=0, return_inverse=True)
    p_xm = np.bincount(inv.ravel(), weights=p_x, minlength=len(rows))  # p(x'), X' = p(y|x)
    cap = min(len(rows), 64) if n_clusters is None else int(n_clusters)
    if cap < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    i_xy = _informations(p_xm, rows, np.eye(len(rows)))[1]
    pts = [(0.0, 0.0, 0.0), (_entropy(p_xm), i_xy, np.inf), (_entropy(p_x), i_xy, np.inf)]
    rng = np.random.default_rng(seed)
    q = np.ones((len(rows), 1))
    for beta in betas:  # forward: split clusters as β grows (second-order transitions)
        q = _ib_iterate(p_xm, rows, _split(q, cap, rng, 1e-2), float(beta), n_iter, tol)
        q = _merge(p_xm, rows, q)
        pts.append((*_informations(p_xm, rows, q), float(beta)))
    if len(rows) <= cap:
        q = np.eye(len(rows))  # T = X', the exact solution as β → ∞
    for beta in betas[::-1]:  # reverse: follow branches the forward sweep jumps past
        q = _merge(p_xm, rows, _ib_iterate(p_xm, rows, q, float(beta), n_iter, tol))
        pts.append((*_informations(p_xm, rows, q), float(beta)))
    pts = [(x, min(y, x, i_xy), b) for x, y, b in pts]
    env = _upper_concave_envelope(np.array(pts, dtype=np.float64))
    return IBCurve(i_xt=env[:, 0], i_ty=env[:, 1], beta=env[:, 2])


def joint_from_samples(x, y) -> tuple[np.ndarray, np.ndarray]:
    """Empirical p(x) and p(y|x) of a data set: rows of ``x`` (n, ...) and integer labels (n,).

    Identical rows of x are one input value; returns p_x (m,) over the m distinct rows and
    p_y_given_x (m, k) over the k distinct labels (sorted).
    """
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x).reshape(len(x), -1)
    y = np.asarray(y.detach().cpu() if isinstance(y, torch.Tensor) else y).ravel()
    if len(y) != len(x) or len(x) == 0:
        raise ValueError(f"x and y must have the same non-zero length, got {len(x)} and {len(y)}")
    _, xi = np.unique(x, axis=0, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    xi, yi = xi.ravel(), yi.ravel()
    counts = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(counts, (xi, yi), 1.0)
    n_x = counts.sum(axis=1)
    return n_x / n_x.sum(), counts / n_x[:, None]
