"""Exact float64 kernel sums over every centre: the reference path and the certified fallback.

Unnormalised log-kernel E = −‖q − c‖²/(2σ²) from ONE matmul of augmented points:
  q̃ = [2s·q, −s‖q‖², 1],  c̃ = [c, 1, −s‖c‖²],  E = q̃·c̃,  s = 1/(2σ²).
Points are centred on the queries' mean first, so the rounding error of E stays ~1e-16·s·‖·‖².
Sums Σ exp(E) need no max-shift (E ≤ 0 up to rounding); a query whose sum falls below _TINY
(nearest centre ≳ 36σ away) is redone with a max-shifted log-sum-exp.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

F64 = torch.float64
_TINY = 1e-280
_EXP_FLOOR = -700.0


def log_norm(n: int, d: int, sigma: float) -> float:
    """log of the mixture's constant factor: −ln n − (d/2) ln(2πσ²)."""
    return -math.log(n) - 0.5 * d * math.log(2.0 * math.pi * sigma**2)


def _augment_queries(q: Tensor, s: float) -> Tensor:
    sq = (q * q).sum(-1, keepdim=True)
    return torch.cat([q * (2.0 * s), sq.mul_(-s), torch.ones_like(sq)], dim=-1)


def _augment_centers(c: Tensor, s: float) -> Tensor:
    last = (c * c).sum(-1, keepdim=True).mul_(-s)
    return torch.cat([c, torch.ones_like(last), last], dim=-1)


def _tile_sums(ca: Tensor, qa_t: Tensor) -> Tensor:
    """Σ_k exp(max(E_kj, −700)) over augmented centres (..., n, d+2), queries (..., d+2, m).

    The clamp keeps exp off its slow underflow path; it adds at most n·e^-700 to a sum that is
    either ≥ _TINY or redone by :func:`_tile_lse`.
    """
    return torch.matmul(ca, qa_t).clamp_min_(_EXP_FLOOR).exp_().sum(-2)


def _tile_lse(ca: Tensor, qa_t: Tensor) -> Tensor:
    e = torch.matmul(ca, qa_t)
    top = e.amax(-2, keepdim=True)
    return e.sub_(top).clamp_min_(_EXP_FLOOR).exp_().sum(-2).log_().add_(top.squeeze(-2))


def dense_lse(queries: Tensor, centers: Tensor, sigma: float, chunk_elements: int) -> Tensor:
    """logsumexp_k(−‖q − c_bk‖²/(2σ²)) for queries (B, m, d), centres (B, n, d): (B, m) float64.

    Every centre enters; tiles of at most ``chunk_elements`` kernel values.
    """
    b, m, _ = queries.shape
    n = centers.shape[1]
    nc = min(n, max(1, chunk_elements // min(m, 256)))
    mq = min(m, max(1, chunk_elements // nc))
    bb = max(1, chunk_elements // (mq * nc))
    out = torch.empty(b, m, dtype=F64, device=queries.device)
    for i in range(0, b, bb):
        for j in range(0, m, mq):
            out[i : i + bb, j : j + mq] = _dense_tile_row(
                queries[i : i + bb, j : j + mq], centers[i : i + bb], sigma, nc
            )
    return out


def _dense_tile_row(q: Tensor, centers: Tensor, sigma: float, nc: int) -> Tensor:
    s = 0.5 / sigma**2
    q = q.to(F64)
    origin = q.mean(1, keepdim=True)
    qa_t = _augment_queries(q - origin, s).transpose(1, 2)
    total = torch.zeros(q.shape[:2], dtype=F64, device=q.device)
    for k in range(0, centers.shape[1], nc):
        total += _tile_sums(_augment_centers(centers[:, k : k + nc].to(F64) - origin, s), qa_t)
    if bool((total >= _TINY).all()):
        return total.log()
    lse = torch.full(q.shape[:2], -math.inf, dtype=F64, device=q.device)
    for k in range(0, centers.shape[1], nc):
        ca = _augment_centers(centers[:, k : k + nc].to(F64) - origin, s)
        lse = torch.logaddexp(lse, _tile_lse(ca, qa_t))
    return lse


def dense_owner_lse(queries: Tensor, centers: Tensor, sigma: float, chunk_elements: int) -> Tensor:
    """logsumexp_r(−‖q − c_or‖²/(2σ²)) per query and owner, centres (N, R, d) in rows of R per
    owner (SP: an input's replicas): (m, N) float64, every centre entering, in tiles of at most
    ``chunk_elements`` kernel values (a tile holds whole owners). An owner whose sum is below
    e^-700 times its tile's largest kernel gets −inf."""
    m = queries.shape[0]
    n, r, _ = centers.shape
    s = 0.5 / sigma**2
    owners = min(n, max(1, chunk_elements // (r * min(m, 256))))
    mq = min(m, max(1, chunk_elements // (owners * r)))
    out = torch.empty(m, n, dtype=F64, device=queries.device)
    for j in range(0, m, mq):
        q = queries[j : j + mq].to(F64)
        origin = q.mean(0, keepdim=True)
        qa_t = _augment_queries(q - origin, s).T
        for k in range(0, n, owners):
            c = centers[k : k + owners].reshape(-1, centers.shape[-1]).to(F64) - origin
            e = (_augment_centers(c, s) @ qa_t).T  # (mq, owners·R), ≤ 0 up to rounding
            top = e.amax(1, keepdim=True)  # owners 700 nats below the nearest: −inf (p ≈ 0)
            sums = e.sub_(top).clamp_min_(_EXP_FLOOR).exp_().view(q.shape[0], -1, r).sum(-1)
            sums = torch.where(sums > r * math.exp(_EXP_FLOOR), sums, 0.0)
            out[j : j + mq, k : k + owners] = sums.log_().add_(top)
    return out
