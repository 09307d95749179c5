"""Entropy of Gaussian mixtures with shared isotropic covariance, by Monte Carlo integration.

The mixture is ĝ(t) = (1/n) Σ_k φ_σ(t − c_k), φ_σ the density of N(0, σ² I_d). All results are in
nats. Densities are evaluated exactly in float64 — every centre enters — up to a truncation of
negligible centres whose error is bounded by ``tol`` (1e-6) nats and certified query by query (see
:func:`mixture_log_density`). Memory stays bounded whatever the number of centres: kernel values
are materialised in tiles of at most ``chunk_elements`` entries and summed per query.

Public functions:

* :func:`gaussian_entropy` — closed form (d/2) ln(2πeσ²).
* :func:`mixture_log_density` — log ĝ at given query points.
* :func:`batched_mixture_log_density` — the same for B independent mixtures at once.
* :func:`gaussian_mixture_entropy` — h(ĝ) with its Monte Carlo standard error.
* :func:`mean_mixture_entropy` — (1/B) Σ_b h(ĝ_b) over B mixtures of equal size (h(T|X) in SP).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from infoflow.estimators.result import Estimate

__all__ = [
    "batched_mixture_log_density",
    "gaussian_entropy",
    "gaussian_mixture_entropy",
    "mean_mixture_entropy",
    "mixture_log_density",
]

_F64 = torch.float64
DEFAULT_CHUNK_ELEMENTS = 1 << 18  # kernel values in one tile on CPU: 2 MiB in float64
DEFAULT_CHUNK_ELEMENTS_GPU = 1 << 23  # on GPUs: 64 MiB (fewer, larger kernels)
DEFAULT_TOL = 1e-6  # nats: bound on the truncation error of each log ĝ(q)
DEFAULT_TARGET_STDERR = 5e-3  # nats: Monte Carlo standard error the default n_mc aims at
MAX_DEFAULT_N_MC = 1_000_000
_PILOT = 1000  # pilot queries for the default n_mc (kept as part of the estimate)
_LEAF_CENTERS = 64  # fewest centres per block of the pruned path
_MIN_PRUNED_CENTERS = 4096  # below: every centre enters every query
_MAX_PRUNED_DIM = 16  # above: every centre enters every query (pruning would not pay)
_MIN_CHUNK = 1024  # ≥ the largest centre block (512), so one block always fits a tile
_LEAF_QUERIES = 256  # most queries per block of the pruned path
_QUERY_SPAN = 16.0  # query blocks wider than this many σ are split further (down to 8 queries)
_LEAF_QUERIES_GPU, _QUERY_SPAN_GPU = 512, 32.0


# --------------------------------------------------------------------------------------- checks
def _check_sigma(sigma: float | Tensor) -> float:
    s = float(sigma)
    if not math.isfinite(s) or s <= 0.0:
        raise ValueError(f"sigma must be a finite positive number, got {s}")
    return s


def _check_points(x: Tensor, name: str, ndim: int) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[-1] == 0 or x.shape[-2] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")


def _check_chunk(chunk_elements: int | None, ref: object) -> int:
    """The tile size: as given, or the device's default (2^18 on CPU, 2^23 on GPUs)."""
    if chunk_elements is None:
        on_cpu = not isinstance(ref, Tensor) or ref.device.type == "cpu"
        return DEFAULT_CHUNK_ELEMENTS if on_cpu else DEFAULT_CHUNK_ELEMENTS_GPU
    if int(chunk_elements) != chunk_elements or chunk_elements < _MIN_CHUNK:
        raise ValueError(f"chunk_elements must be an integer >= {_MIN_CHUNK}, got {chunk_elements}")
    return int(chunk_elements)


def _check_n_mc(n_mc: int | None, name: str = "n_mc") -> None:
    if n_mc is not None and (int(n_mc) != n_mc or n_mc < 2):
        raise ValueError(f"{name} must be an integer >= 2 or None, got {n_mc}")


# ------------------------------------------------------------------------------------- helpers
def gaussian_entropy(d: int, sigma: float) -> float:
    """Differential entropy of N(μ, σ² I_d) in nats: h = (d/2) ln(2π e σ²).

    Example:
        >>> round(gaussian_entropy(1, 1.0), 4)
        1.4189
    """
    return 0.5 * d * math.log(2.0 * math.pi * math.e * _check_sigma(sigma) ** 2)


def _log_norm(n: int, d: int, sigma: float) -> float:
    """log of the mixture's constant factor: −ln n − (d/2) ln(2πσ²)."""
    return -math.log(n) - 0.5 * d * math.log(2.0 * math.pi * sigma**2)


def _randn(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> Tensor:
    """Standard normal float64 draws on `device`, from `generator` wherever that generator lives."""
    if generator is None:
        return torch.randn(shape, dtype=_F64, device=device)
    return torch.randn(shape, dtype=_F64, device=generator.device, generator=generator).to(device)


def _rand(
    shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None
) -> Tensor:
    if generator is None:
        return torch.rand(shape, dtype=_F64, device=device)
    return torch.rand(shape, dtype=_F64, device=generator.device, generator=generator).to(device)


def _randperm(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, device=generator.device, generator=generator).to(device)


# ----------------------------------------------------------------------------------- kernels
# Unnormalised log-kernel E = −‖q − c‖²/(2σ²) + log w_c from ONE matmul of augmented points:
#   q̃ = [2s·q, −s‖q‖², 1],  c̃ = [c, 1, −s‖c‖² + log w_c],  E = q̃·c̃,  s = 1/(2σ²).
# Callers centre q and c on a nearby origin first; the rounding error of E is then ~1e-16·s·(‖q‖² +
# ‖c‖²) relative to that origin (1e-10 nats for points within ±2 of it at σ = 0.005).
# Sums Σ exp(E) need no max-shift: E ≤ 0 up to rounding, so nothing overflows; a query whose sum
# falls below _TINY (nearest centre ≳ 36σ away) is redone with a max-shifted log-sum-exp.
_TINY = 1e-280
_EXP_FLOOR = -700.0
_NO_WEIGHT = -1e30  # log-weight of a padded (absent) centre: clamped to e^-700, like far ones


def _augment_queries(q: Tensor, s: float) -> Tensor:
    sq = (q * q).sum(-1, keepdim=True)
    return torch.cat([q * (2.0 * s), sq.mul_(-s), torch.ones_like(sq)], dim=-1)


def _augment_centers(c: Tensor, s: float, log_w: Tensor | None = None) -> Tensor:
    last = (c * c).sum(-1, keepdim=True).mul_(-s)
    if log_w is not None:
        last = last + log_w.unsqueeze(-1)
    return torch.cat([c, torch.ones_like(last), last], dim=-1)


def _tile_sums(ca: Tensor, qa_t: Tensor) -> Tensor:
    """Σ_k exp(max(E_kj, −700)) for augmented centres (..., n, d+2), queries (..., d+2, m): (..., m).

    The only place kernel values are materialised (one (..., n, m) tile). The clamp keeps exp
    off its slow underflow path (25-50× slower on CPU); it adds at most n·e^-700 < n·1e-304 to a
    sum that is either ≥ _TINY (relative error ≤ n·1e-24) or redone by :func:`_tile_lse`.
    """
    return torch.matmul(ca, qa_t).clamp_min_(_EXP_FLOOR).exp_().sum(-2)


def _tile_lse(ca: Tensor, qa_t: Tensor) -> Tensor:
    """logsumexp_k E_kj, max-shifted (robust to underflow; same −700 floor after the shift)."""
    e = torch.matmul(ca, qa_t)
    top = e.amax(-2, keepdim=True)
    return e.sub_(top).clamp_min_(_EXP_FLOOR).exp_().sum(-2).log_().add_(top.squeeze(-2))


# ---------------------------------------------------------------------------------- dense path
def batched_mixture_log_density(
    queries: Tensor,
    centers: Tensor,
    sigma: float,
    *,
    chunk_elements: int | None = None,
) -> Tensor:
    r"""Log-density of B Gaussian mixtures, each at its own query points, over all its centres.

    .. math::
        \log \hat g_b(q) = \operatorname{logsumexp}_k\Big(-\frac{\|q - c_{bk}\|^2}{2\sigma^2}\Big)
        - \ln n - \frac{d}{2}\ln(2\pi\sigma^2)

    Exact (every centre enters), float64, tiled over mixtures, queries and centres so that no tile
    holds more than ``chunk_elements`` kernel values; tiles are summed per query. Each tile of
    queries and the centres it meets are centred on those queries' mean before the matmul.

    Args:
        queries: (B, m, d) query points, any float dtype, on the centres' device.
        centers: (B, n, d) centres.
        sigma: common standard deviation σ > 0 of the components.
        chunk_elements: most kernel values materialised at once (memory bound; default 2^18 on
            CPU, 2^23 on GPUs).

    Returns:
        (B, m) float64 tensor of log ĝ_b(q) in nats, on the input device.

    Example:
        >>> c = torch.zeros(1, 1, 2); q = torch.zeros(1, 1, 2)
        >>> round(float(batched_mixture_log_density(q, c, 1.0)), 6)  # −ln(2π)
        -1.837877
    """
    sigma = _check_sigma(sigma)
    chunk_elements = _check_chunk(chunk_elements, queries)
    _check_points(queries, "queries", 3)
    _check_points(centers, "centers", 3)
    if queries.shape[0] != centers.shape[0] or queries.shape[2] != centers.shape[2]:
        raise ValueError(
            f"queries {tuple(queries.shape)} and centers {tuple(centers.shape)} disagree in B or d"
        )
    _, _, d = queries.shape
    n = centers.shape[1]
    return _dense_lse(queries, centers, sigma, chunk_elements) + _log_norm(n, d, sigma)


def _dense_lse(queries: Tensor, centers: Tensor, sigma: float, chunk_elements: int) -> Tensor:
    """logsumexp_k(−‖q − c_bk‖²/(2σ²)) for queries (B, m, d), centres (B, n, d): (B, m) float64."""
    b, m, _ = queries.shape
    n = centers.shape[1]
    nc = min(n, max(1, chunk_elements // min(m, 256)))
    mq = min(m, max(1, chunk_elements // nc))
    bb = max(1, chunk_elements // (mq * nc))
    out = torch.empty(b, m, dtype=_F64, device=queries.device)
    for i in range(0, b, bb):
        for j in range(0, m, mq):
            out[i : i + bb, j : j + mq] = _dense_tile_row(
                queries[i : i + bb, j : j + mq], centers[i : i + bb], sigma, nc
            )
    return out


def _dense_tile_row(q: Tensor, centers: Tensor, sigma: float, nc: int) -> Tensor:
    s = 0.5 / sigma**2
    q = q.to(_F64)
    origin = q.mean(1, keepdim=True)
    qa_t = _augment_queries(q - origin, s).transpose(1, 2)
    total = torch.zeros(q.shape[:2], dtype=_F64, device=q.device)
    for k in range(0, centers.shape[1], nc):
        total += _tile_sums(_augment_centers(centers[:, k : k + nc].to(_F64) - origin, s), qa_t)
    if bool((total >= _TINY).all()):
        return total.log()
    lse = torch.full(q.shape[:2], -math.inf, dtype=_F64, device=q.device)
    for k in range(0, centers.shape[1], nc):
        ca = _augment_centers(centers[:, k : k + nc].to(_F64) - origin, s)
        lse = torch.logaddexp(lse, _tile_lse(ca, qa_t))
    return lse


# --------------------------------------------------------------------------------- pruned path
# Centres and queries are grouped into blocks with bounding boxes. For a query block a and a centre
# block b, every centre of b is at least gap_ab from every query of a (box-to-box distance), so b
# adds at most count_b · exp(−gap_ab²/2σ²) to any of a's unnormalised densities: "upper_ab".
# Pass 1 evaluates, for each query block, the blocks whose upper is within _PASS1_NATS of its best
# one; the smallest resulting sum over a's queries, kept_a, is a sure lower bound on their final
# sums. Pass 2 skips the blocks whose uppers add up to at most tol·kept_a / 2 (all blocks below
# tol·kept_a/(2·n_blocks), then among the M others those below tol·kept_a/(4·M)) and evaluates the
# rest. The bound on the skipped mass is kept per query block and checked per query afterwards.
_PASS1_NATS = 3.0


class _Blocks:
    """Points grouped into blocks of `leaf` slots (padded slots are invalid), with bounding boxes.

    `index` (n_blocks, leaf) holds row numbers into the points, `valid` marks real slots, `points`
    the gathered coordinates (input dtype), `lo`/`hi` the float64 boxes of the valid points.
    """

    def __init__(self, x: Tensor, index: Tensor, valid: Tensor) -> None:
        self.index, self.valid = index, valid
        self.n_blocks, self.leaf = index.shape
        self.points = x.index_select(0, index.view(-1)).view(*index.shape, -1)
        self.lo = self.points.amin(1).to(_F64)
        self.hi = self.points.amax(1).to(_F64)
        partial = (~valid).any(1).nonzero()[:, 0]  # boxes of padded blocks: valid points only
        if partial.numel():
            v = valid[partial].unsqueeze(-1)
            pts = self.points[partial].to(_F64)
            self.lo[partial] = torch.where(v, pts, math.inf).amin(1)
            self.hi[partial] = torch.where(v, pts, -math.inf).amax(1)
        self.count = valid.sum(1)


def _zorder_blocks(x: Tensor, leaf: int) -> _Blocks:
    """Blocks of `leaf` consecutive points in Z-order (Morton order) of the data's bounding box.

    Coordinates are quantised to ⌊62/d⌋ bits each (at most 21) and their bits interleaved into one
    int64 key; one sort orders the points so that near points mostly share blocks. The last block
    is padded with invalid repeats of the last point.
    """
    n, d = x.shape
    bits = min(21, 62 // d)
    lo = x.amin(0).to(_F64)
    cells = (1 << bits) / (x.amax(0).to(_F64) - lo).clamp_min(1e-300)
    # spread[v] puts bit j of v at position j·d: key = Σ_i spread[v_i] << i
    v = torch.arange(1 << bits, device=x.device)
    spread = torch.zeros_like(v)
    for j in range(bits):
        spread |= ((v >> j) & 1) << (j * d)
    key = torch.zeros(n, dtype=torch.long, device=x.device)
    for i in range(d):
        cell = ((x[:, i].to(_F64) - lo[i]) * cells[i]).long().clamp_(0, (1 << bits) - 1)
        key |= spread[cell] << i
    order = key.argsort()
    n_pad = -(-n // leaf) * leaf
    index = torch.cat([order, order[-1:].expand(n_pad - n)]).view(-1, leaf)
    valid = torch.arange(n_pad, device=x.device).view(-1, leaf) < n
    return _Blocks(x, index, valid)


class _QueryBlocks:
    """Queries grouped into blocks of unequal size (rows `order[start:start + count]`), with boxes."""

    def __init__(self, x: Tensor, order: Tensor, seg: Tensor, counts: Tensor) -> None:
        d = x.shape[1]
        self.order, self.n_blocks = order, counts.numel()
        self.bounds = list(zip((counts.cumsum(0) - counts).tolist(), counts.tolist(), strict=True))
        pts, idx = x[order].to(_F64), seg[:, None].expand(-1, d)
        self.lo = pts.new_full((self.n_blocks, d), math.inf).scatter_reduce(0, idx, pts, "amin")
        self.hi = pts.new_full((self.n_blocks, d), -math.inf).scatter_reduce(0, idx, pts, "amax")


def _gap_blocks(x: Tensor, leaf: int, max_span: float, min_leaf: int = 8) -> _QueryBlocks:
    """k-d blocks that follow the data's gaps: a node is cut at the widest gap of its sorted
    widest coordinate within the central half of its points while it holds more than `leaf`
    points, or more than `min_leaf` points spread over more than `max_span`.

    Clusters thus stay together and boxes stay tight even where queries are sparse. One global
    sort per level.
    """
    n = x.shape[0]
    dev = x.device
    order = torch.arange(n, device=dev)
    seg = torch.zeros(n, dtype=torch.long, device=dev)
    counts = torch.tensor([n], device=dev)
    while True:
        order, key, span = _sort_within(x, order, seg, counts.numel())
        active = (counts > leaf) | ((counts > min_leaf) & (span > max_span))
        if not bool(active.any()):
            return _QueryBlocks(x, order, seg, counts)
        seg = _split_segments(seg, counts, key, active)
        counts = torch.bincount(seg)


def _sort_within(
    x: Tensor, order: Tensor, seg: Tensor, n_seg: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Sort the points of every segment along that segment's widest coordinate (+ that width)."""
    d = x.shape[1]
    pts = x[order].to(_F64)
    idx = seg[:, None].expand(-1, d)
    lo = pts.new_full((n_seg, d), math.inf).scatter_reduce(0, idx, pts, "amin")
    hi = pts.new_full((n_seg, d), -math.inf).scatter_reduce(0, idx, pts, "amax")
    span, dim = (hi - lo).max(1)
    key = pts.gather(1, dim[seg, None]).squeeze(1)
    low = lo.gather(1, dim[:, None]).squeeze(1)
    perm = torch.argsort(seg * 2.0 + (key - low[seg]) / span.clamp_min(1e-300)[seg])
    return order[perm], key[perm], span


def _split_segments(seg: Tensor, counts: Tensor, key: Tensor, active: Tensor) -> Tensor:
    """New segment ids: each active segment is cut at its widest central gap."""
    n = seg.numel()
    start = counts.cumsum(0) - counts
    left = torch.arange(1, n, device=seg.device) - start[seg[:-1]]  # left size if cut after i
    size = counts[seg[:-1]]
    ok = (seg[1:] == seg[:-1]) & (4 * left >= size) & (4 * left <= 3 * size)
    gap = torch.where(ok, key[1:] - key[:-1], -1.0)
    best = gap.new_full((counts.numel(),), -1.0).scatter_reduce(0, seg[:-1], gap, "amax")
    at_best = ok & (gap == best[seg[:-1]])
    cut = torch.full_like(counts, n).scatter_reduce(0, seg[:-1][at_best], left[at_best], "amin")
    cut = torch.where(best >= 0, cut, counts // 2)
    pos = torch.arange(n, device=seg.device) - start[seg]
    right = (pos >= cut[seg]) & active[seg]
    return torch.unique_consecutive(seg * 2 + right, return_inverse=True)[1]


def _uppers(qb: _QueryBlocks, cb: _Blocks, s: float, rows: slice) -> Tensor:
    """upper_ab = log count_b − s·gap²_ab for query blocks `rows` × all centre blocks."""
    lo, hi = qb.lo[rows], qb.hi[rows]
    gap = (cb.lo[None] - hi[:, None]).clamp_min_(0) + (lo[:, None] - cb.hi[None]).clamp_min_(0)
    return cb.count.to(_F64).log()[None] - (gap * gap).sum(-1).mul_(s)


class _BlockSums:
    """Σ exp(−‖q − c‖²/2σ²) of one query block's queries over the centres of given centre blocks.

    One (centres × queries) matmul of augmented points per tile, centred on the query block's box
    centre; no padding is evaluated on the query side.
    """

    def __init__(
        self, queries: Tensor, qb: _QueryBlocks, cb: _Blocks, s: float, chunk: int
    ) -> None:
        self.queries, self.qb, self.cb, self.s, self.chunk = queries, qb, cb, s, chunk
        self.c_logw = torch.zeros(cb.valid.shape, dtype=_F64, device=queries.device)
        self.c_logw.masked_fill_(~cb.valid, _NO_WEIGHT)

    def query_block(self, a: int) -> tuple[Tensor, Tensor, Tensor]:
        """(row numbers of a's queries, their origin-centred augmented transpose, origin)."""
        start, count = self.qb.bounds[a]
        rows = self.qb.order[start : start + count]
        origin = 0.5 * (self.qb.lo[a] + self.qb.hi[a])
        qa = _augment_queries(self.queries[rows].to(_F64) - origin, self.s)
        return rows, qa.T.contiguous(), origin

    def sums(self, qa_t: Tensor, origin: Tensor, blocks: Tensor) -> Tensor:
        d, leaf = self.cb.points.shape[-1], self.cb.leaf
        m = qa_t.shape[1]
        cols = max(1, min(m, self.chunk // leaf))  # queries per tile
        per = max(1, self.chunk // (cols * leaf))  # centre blocks per tile
        total = torch.zeros(m, dtype=_F64, device=qa_t.device)
        for i in range(0, blocks.numel(), per):
            b = blocks[i : i + per]
            c = self.cb.points[b].reshape(-1, d).to(_F64) - origin
            ca = _augment_centers(c, self.s, self.c_logw[b].reshape(-1))
            for j in range(0, m, cols):
                total[j : j + cols] += _tile_sums(ca, qa_t[:, j : j + cols])
        return total


def _pruned_lse(
    queries: Tensor, cb: _Blocks, sigma: float, tol: float, chunk_elements: int
) -> tuple[Tensor, Tensor]:
    """log Σ over kept centres of exp(−‖q − c‖²/2σ²) per query, and log of the skipped-mass bound."""
    m = queries.shape[0]
    s = 0.5 / sigma**2
    on_cpu = queries.device.type == "cpu"  # GPUs: fewer, larger query blocks (launch-bound)
    leaf, span = (_LEAF_QUERIES, _QUERY_SPAN) if on_cpu else (_LEAF_QUERIES_GPU, _QUERY_SPAN_GPU)
    qb = _gap_blocks(queries, leaf, span * sigma)
    ev = _BlockSums(queries, qb, cb, s, chunk_elements)
    lse = torch.empty(m, dtype=_F64, device=queries.device)
    bound = torch.empty(m, dtype=_F64, device=queries.device)
    n_rows = max(1, chunk_elements // (cb.n_blocks * queries.shape[1]))
    for r0 in range(0, qb.n_blocks, n_rows):
        up = _uppers(qb, cb, s, slice(r0, r0 + n_rows))
        first = up >= up.amax(1, keepdim=True) - _PASS1_NATS
        for i in range(up.shape[0]):
            rows, qa_t, origin = ev.query_block(r0 + i)
            total = ev.sums(qa_t, origin, first[i].nonzero()[:, 0])
            # sure lower bound on every final sum of this block → allowed skipped mass
            budget = float(total.min().log()) + math.log(tol / 2)
            rest = up[i].masked_fill(first[i], -math.inf)
            keep = _keep_rule(rest, budget) & ~first[i]
            total += ev.sums(qa_t, origin, keep.nonzero()[:, 0])
            lse[rows] = total.log()
            bound[rows] = torch.logsumexp(rest.masked_fill(keep, -math.inf), dim=0)
    return lse, bound


def _keep_rule(up: Tensor, budget: float) -> Tensor:
    """Blocks to evaluate so that the skipped uppers add up to at most exp(budget)."""
    candidate = up >= budget - math.log(2 * up.numel())  # the others sum to ≤ budget/2
    n_cand = max(1, int(candidate.sum()))
    return candidate & (up >= budget - math.log(2 * n_cand))


class _MixtureIndex:
    """Centres prepared once for many density evaluations (the pruned path's blocks, if used)."""

    def __init__(self, centers: Tensor, sigma: float, tol: float, chunk_elements: int) -> None:
        self.centers, self.sigma, self.tol = centers, sigma, tol
        self.chunk_elements = chunk_elements
        n, d = centers.shape
        self.blocks = None
        if tol > 0 and n > _MIN_PRUNED_CENTERS and d <= _MAX_PRUNED_DIM:
            # ~n/8192 centres per block (64 to 512): fine boxes, yet a cheap block-pair selection
            leaf = min(512, max(_LEAF_CENTERS, 1 << max(0, round(math.log2(n / 8192)))))
            self.blocks = _zorder_blocks(centers, leaf)

    def log_density(self, queries: Tensor) -> Tensor:
        n, d = self.centers.shape
        if self.blocks is None or queries.shape[0] < _LEAF_QUERIES:
            lse = _dense_lse(queries[None], self.centers[None], self.sigma, self.chunk_elements)
            return lse[0] + _log_norm(n, d, self.sigma)
        lse, skipped = _pruned_lse(queries, self.blocks, self.sigma, self.tol, self.chunk_elements)
        # log ĝ_true − log ĝ_kept = log(1 + skipped/kept) ≤ skipped/kept: redo failures exactly
        bad = ((skipped - lse > math.log(self.tol)) | (lse < math.log(_TINY))).nonzero()[:, 0]
        if bad.numel():
            exact = _dense_lse(
                queries[bad][None], self.centers[None], self.sigma, self.chunk_elements
            )
            lse[bad] = exact[0]
        return lse + _log_norm(n, d, self.sigma)


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

    Float64 throughout, computed on the tensors' device. With ``tol = 0``, few centres (≤ 4096),
    few queries (< 256) or wide layers (d > 16) every centre enters every query (tiled matmuls).
    Otherwise centres are cut into blocks of 64-512 consecutive points in Z-order, queries into
    blocks of ≤ 256 by a k-d split at the widest gaps, each block with its bounding box; a centre
    block b adds at most count_b·exp(−gap²/(2σ²)) to any query of a query block at box distance
    gap. Per query block, the most promising centre blocks are evaluated first; their smallest
    sum S over the block's queries fixes the budget: centre blocks whose bounds add up to at most
    tol·S/2 are skipped, all others evaluated. Every query is then certified: its error
    log(1 + skipped_q / kept_q) ≤ skipped_q / kept_q must be ≤ ``tol``, else it is recomputed over
    all centres. Hence the truncation error is ≤ tol nats for every query and for any mean of them
    (rounding adds ~1e-10 at σ = 0.005). Memory: the centres once more in blocks, plus tiles.

    Args:
        queries: (m, d) points.
        centers: (n, d) centres, same device; NaN/inf rejected.
        sigma: component standard deviation σ > 0.
        tol: bound on each query's truncation error in nats (0: exact over all centres).
        chunk_elements: most kernel values materialised at once (memory bound; default 2^18 on
            CPU, 2^23 on GPUs).

    Returns:
        (m,) float64 tensor of log ĝ(q), nats.

    Example:
        >>> c = torch.tensor([[0.0], [10.0]])
        >>> round(float(mixture_log_density(torch.tensor([[0.0]]), c, 1.0)[0]), 4)  # ln(φ(0)/2)
        -1.6121
    """
    sigma = _check_sigma(sigma)
    chunk_elements = _check_chunk(chunk_elements, centers)
    _check_points(queries, "queries", 2)
    _check_points(centers, "centers", 2)
    if queries.shape[1] != centers.shape[1]:
        raise ValueError(f"queries have d={queries.shape[1]} but centers have d={centers.shape[1]}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    return _MixtureIndex(centers, sigma, tol, chunk_elements).log_density(queries)


# ------------------------------------------------------------------------------------- entropy
def _mc_estimate(values: Tensor, offset: float = 0.0) -> Estimate:
    """offset + the mean of ``values``, with the standard error std / √M."""
    n = values.numel()
    return Estimate(offset + float(values.mean()), float(values.std() / math.sqrt(n)))


def _log_own_kernel(z: Tensor, sigma: float) -> Tensor:
    r"""log φ_σ(σz) = −(d/2) ln(2πσ²) − ‖z‖²/2: the log density of a query's own component.

    The control variate of both estimators. With q = c_k + σz,

    .. math::
        h(\hat g) = \underbrace{\mathbb E[-\log\varphi_\sigma(\sigma z)]}_{=(d/2)\ln(2\pi e\sigma^2)}
        + \mathbb E[\log\varphi_\sigma(\sigma z) - \log\hat g(q)],

    and only the second term is integrated by Monte Carlo. It is unbiased like the plain average,
    but its integrand is nearly constant (≈ ln n) where the components barely overlap and exactly 0
    where they coincide, so it needs orders of magnitude fewer queries than −log ĝ(q), whose
    variance is ≈ d/2 however the centres lie.
    """
    d = z.shape[-1]
    return -0.5 * d * math.log(2 * math.pi * sigma**2) - 0.5 * (z * z).sum(-1)


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
        h(\hat g) = -\mathbb E_{T\sim\hat g}\log\hat g(T)
        \approx -\frac{1}{M}\sum_{j=1}^{M}\log\hat g(c_{\pi(j \bmod n)} + \sigma z_j),
        \quad z_j \sim N(0, I_d)

    Queries are spread evenly over the centres (π a random permutation; with M < n a random subset
    of M distinct centres). log ĝ is evaluated by :func:`mixture_log_density` (error ≤ ``tol``).
    The query's own component is a control variate with a known mean (see :func:`_log_own_kernel`):
    the estimate is (d/2) ln(2πeσ²) + mean_j[log φ_σ(σz_j) − log ĝ(q_j)], and the standard error
    is the std of that bracket / √M (conservative for this stratified design).

    Default ``n_mc``: 1000 pilot queries estimate v, the variance of the bracket; then
    M = clip(⌈v / target_stderr²⌉, 1000, 10⁶), the pilot queries counting towards M. Without the
    control variate v ≈ d/2 whatever the centres (M ≈ 2·10⁵ for d = 10 at 0.005 nats); with it,
    v is small wherever the components are well separated or coincide.

    Args:
        centers: (n, d) centres (CPU or CUDA; computed on that device).
        sigma: component standard deviation σ > 0.
        n_mc: total number of queries M (default: see above).
        generator: torch.Generator for the queries (any device).
        target_stderr: standard error the default M aims at, nats.
        tol: per-query bound on the density truncation error, nats (0: exact).
        chunk_elements: most kernel values materialised at once (default: see above).

    Returns:
        Estimate(value, stderr) in nats.

    Example:
        >>> c = torch.tensor([[0.0], [100.0]])  # two far-apart unit Gaussians: ln 2 + h(N(0, 1))
        >>> e = gaussian_mixture_entropy(c, 1.0, n_mc=20000, generator=torch.Generator().manual_seed(0))
        >>> abs(e.value - (math.log(2) + 1.4189385)) < 1e-6  # the control variate is exact here
        True
    """
    sigma = _check_sigma(sigma)
    chunk_elements = _check_chunk(chunk_elements, centers)
    _check_points(centers, "centers", 2)
    _check_n_mc(n_mc)
    n, d = centers.shape
    index = _MixtureIndex(centers, sigma, tol, chunk_elements)
    order = _randperm(n, centers.device, generator)

    def neg_log(start: int, stop: int) -> Tensor:
        k = order[torch.arange(start, stop, device=centers.device) % n]
        z = _randn((stop - start, d), centers.device, generator)
        return _log_own_kernel(z, sigma) - index.log_density(centers[k].to(_F64) + sigma * z)

    h_own = gaussian_entropy(d, sigma)
    if n_mc is not None:
        return _mc_estimate(neg_log(0, int(n_mc)), h_own)
    pilot = neg_log(0, _PILOT)
    total = int(
        min(max(math.ceil(float(pilot.var()) / target_stderr**2), _PILOT), MAX_DEFAULT_N_MC)
    )
    if total > _PILOT:
        pilot = torch.cat([pilot, neg_log(_PILOT, total)])
    return _mc_estimate(pilot, h_own)


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

    .. math::
        \frac1B\sum_b h(\hat g_b) \approx \frac d2\ln(2\pi e\sigma^2) + \frac{1}{B\,m}
        \sum_{b}\sum_{j=1}^{m}\big[\log\varphi_\sigma(\sigma z_{bj}) - \log\hat g_b(q_{bj})\big],
        \quad q_{bj} = c_{b,\pi_b(j \bmod R)} + \sigma z_{bj}

    This is h(T|X) of the SP estimator (mixture b = the R samples of input b), with the same
    own-component control variate as :func:`gaussian_mixture_entropy`. All mixtures are evaluated
    together, exactly over their R centres, as a (B, m, R) computation in tiles. The standard error
    pools the within-mixture variances of the bracket: sqrt(Σ_b s_b² / m) / B.

    Default ``n_mc`` (total queries B·m): a pilot of 8 queries per mixture estimates the pooled
    within variance v; then m = clip(⌈v / (B · target_stderr²)⌉, 8, ⌊10⁶ / B⌋) (at least 8).

    Args:
        centers: (B, R, d) centres, R ≥ 1.
        sigma: component standard deviation σ > 0.
        n_mc: total number of queries, spread evenly as m = ⌈n_mc / B⌉ per mixture (m ≥ 2).
        generator: torch.Generator for the queries.
        target_stderr: standard error the default n_mc aims at, nats.
        chunk_elements: most kernel values materialised at once (default: see above).

    Returns:
        Estimate(value, stderr) in nats.

    Example:
        >>> c = torch.zeros(5, 3, 2)  # every mixture is one Gaussian: h = ln(2πe)
        >>> e = mean_mixture_entropy(c, 1.0, n_mc=5000, generator=torch.Generator().manual_seed(0))
        >>> abs(e.value - math.log(2 * math.pi * math.e)) < 1e-9
        True
    """
    sigma = _check_sigma(sigma)
    chunk_elements = _check_chunk(chunk_elements, centers)
    _check_points(centers, "centers", 3)
    _check_n_mc(n_mc)
    b, r, d = centers.shape
    dev = centers.device
    order = _rand((b, r), dev, generator).argsort(dim=1)  # one random permutation per mixture

    def neg_log(start: int, stop: int) -> Tensor:
        j = order[:, torch.arange(start, stop, device=dev) % r]
        pts = centers.gather(1, j[..., None].expand(-1, -1, d)).to(_F64)
        z = _randn((b, stop - start, d), dev, generator)
        q = pts + sigma * z
        log_g = batched_mixture_log_density(q, centers, sigma, chunk_elements=chunk_elements)
        return _log_own_kernel(z, sigma) - log_g

    h_own = gaussian_entropy(d, sigma)
    if n_mc is not None:
        return _pooled_estimate(neg_log(0, max(2, math.ceil(n_mc / b))), h_own)
    pilot = neg_log(0, 8)
    within = float(pilot.var(dim=1).mean())
    per = int(
        min(max(math.ceil(within / (b * target_stderr**2)), 8), max(8, MAX_DEFAULT_N_MC // b))
    )
    if per > 8:
        pilot = torch.cat([pilot, neg_log(8, per)], dim=1)
    return _pooled_estimate(pilot, h_own)


def _pooled_estimate(values: Tensor, offset: float = 0.0) -> Estimate:
    """offset + mean over (B, m) values, and the stratified standard error sqrt(Σ_b s_b²/m)/B."""
    b, m = values.shape
    stderr = float((values.var(dim=1).sum() / m).sqrt() / b)
    return Estimate(offset + float(values.mean()), stderr)
