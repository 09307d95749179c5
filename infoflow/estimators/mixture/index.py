r"""Certified Gaussian kernel sums over many centres: far blocks pruned, near ones in float32.

For queries q and centres c_k (optionally in groups, e.g. classes), :class:`MixtureIndex` computes

.. math::
    S(q) = \sum_k e^{-\|q - c_k\|^2 / 2\sigma^2}, \qquad S_g(q) = \sum_{k \in g} \dots

with a bound on the relative error of every sum, checked query by query; a query whose bound
exceeds ``tol`` is recomputed exactly in float64 over every centre (:func:`.kernels.dense_lse`).

How (cost follows the centres within a few σ of the queries):

1. Centres and queries are cut into blocks: the leaves of balanced k-d trees (scipy's cKDTree),
   tight in any dimension, each with a box, a centre and a radius (:mod:`.blocks`); query blocks
   wider than 3σ are cut finer. Centre blocks are kept in three buckets by width, each with a
   cKDTree over its block centres, so that a few wide blocks do not widen every search.
2. First pass: the centre blocks within 2σ of a query block are summed. Their sums, less their
   rounding bound, are a sure lower bound L on each query's sum (raised to the caller's bound if
   larger — in SP, the query's own input's replicas — and the nearest centre's kernel where the
   pass found nothing), and so an allowance tol/2·L of mass the query block may skip.
3. Second pass: centre blocks farther than r_cut, where all of a bucket's centres together weigh at
   most a quarter of its share of the allowance, are never visited (the cKDTree lists the others);
   of those listed, blocks whose bound count·e^{−gap²/2σ²} is below a share of a further quarter
   are skipped too. The rest are summed. The skipped mass is bounded per query block.
4. Block pairs are summed in batches. With a = q − o, b = c − o (o the query block's centre),
   e^{−s‖q−c‖²} = e^{−s‖a‖²} · e^{2s a·b − s‖b‖²}: the second factor from one float32 batched
   matmul and one exp, the first applied per query in float64. The exponent's rounding error is at
   most (2d + 10)·u·s·(‖a‖² + ‖b‖²), u = 2⁻²⁴ (the inputs' rounding, the dot product and the
   norms); its kernel-weighted sum and the float32 exp and summation error ((leaf + 4)·u) are
   accumulated per query beside the sums.

The relative error of S(q) is then at most (float32 error + skipped mass) / S(q), which is what
:attr:`KernelSums.bound` reports; log S is off by at most that much.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from infoflow.estimators.mixture.blocks import Blocks, box_gap2, leaf_blocks, tight_blocks
from infoflow.estimators.mixture.kernels import F64, dense_lse

U32 = 2.0**-24  # float32 unit roundoff
_MAX_CANDIDATES = 1 << 21  # block pairs listed at once (bounds the candidate lists' memory)
_QUERY_LEAVES = (32, 8, 2, 1)
_MAX_RADIUS = 3.0  # σ: query blocks wider than this are cut finer (keeps float32 exponents small)
_NEAR = 2.0  # σ: the first pass takes centre blocks this close to a query block


def _radius_buckets(radius: Tensor, sigma: float) -> list[Tensor]:
    """Centre blocks by width (≤ 4σ, ≤ 16σ, wider): each bucket's search reach adds only its own
    widest radius, so a few wide blocks in sparse regions do not widen every search."""
    edges = [0.0, 4 * sigma, 16 * sigma, math.inf]
    return [
        (radius >= lo) & (radius < hi) if lo else radius < hi
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


class _Level:
    """Centre blocks of one leaf size with a cKDTree over their centres (candidate search)."""

    def __init__(self, blocks: Blocks) -> None:
        self.blocks = blocks
        self.tree = cKDTree(blocks.center.cpu().numpy())
        self.max_radius = float(blocks.radius.max())


@dataclass(frozen=True)
class KernelSums:
    """log S(q) (m,) and per group log S_g(q) (m, G), with bounds on their errors (nats)."""

    log_total: Tensor
    log_group: Tensor
    bound: Tensor
    bound_group: Tensor


class MixtureIndex:
    """Centres prepared once for many kernel-sum queries.

    Args:
        centers: (n, d) centres, any float dtype, on any device.
        sigma: kernel width σ.
        tol: bound on each log-sum's error, nats (rounding and truncation together).
        chunk_elements: most kernel values materialised at once.
        groups: optional (n,) group ids 0..G−1 (e.g. class labels); sums are also kept per group.
        leaf: centres per block.
    """

    def __init__(
        self,
        centers: Tensor,
        sigma: float,
        *,
        tol: float,
        chunk_elements: int,
        groups: Tensor | None = None,
        leaf: int = 64,
    ) -> None:
        self.centers, self.sigma, self.tol, self.chunk = centers, sigma, tol, chunk_elements
        self.n, self.d = centers.shape
        self.s = 0.5 / sigma**2
        dev = centers.device
        self.groups = (
            torch.zeros(self.n, dtype=torch.long, device=dev) if groups is None else groups.long()
        )
        self.n_groups = int(self.groups.max()) + 1
        blocks = leaf_blocks(centers, leaf, self.groups)
        self.levels = [
            _Level(blocks.subset(sel, centers))
            for sel in _radius_buckets(blocks.radius, sigma)
            if bool(sel.any())
        ]
        self._point_tree: cKDTree | None = None

    # ------------------------------------------------------------------------------ public
    def sums(
        self, queries: Tensor, log_lower: Tensor | None = None, group_needed: Tensor | None = None
    ) -> KernelSums:
        """Kernel sums at ``queries`` (m, d); ``log_lower`` (m,) an optional sure lower bound on
        log S(q) (the first pass gives one; queries it leaves at zero ask the nearest centre).
        The skipped mass is held within tol of the total; ``group_needed`` is not used (group
        sums carry their own bounds).

        Two passes: the centre blocks within ~2σ of a query block first, whose sums (less their
        rounding bound) raise the lower bound and so shrink the cut-off radius of the second pass
        — by a lot where many centres crowd around the queries."""
        m = queries.shape[0]
        acc = _Accumulator(m, self.n_groups, queries.device)
        skipped = torch.zeros(m, dtype=F64, device=queries.device)
        query_levels = tight_blocks(queries, _QUERY_LEAVES, _MAX_RADIUS * self.sigma)
        for qb in query_levels:
            for level in self.levels:
                a, b = self._near_pairs(qb, level)
                self._evaluate(qb, level.blocks, a, b, acc)
        lower = (acc.total - acc.err).clamp_min(0).log()
        if log_lower is not None:
            lower = torch.maximum(lower, log_lower.to(F64))
        lost = torch.isinf(lower).nonzero()[:, 0]  # nothing within ~2σ: ask the nearest centre
        if lost.numel():
            lower[lost] = self.nearest_log_kernel(queries[lost])
        for qb in query_levels:
            low = torch.where(qb.valid, lower[qb.index], math.inf).amin(1)
            skip = torch.zeros(qb.n_blocks, dtype=F64, device=queries.device)
            for level in self.levels:
                for a, b, level_skip in self._pairs(qb, low, level):
                    self._evaluate(qb, level.blocks, a, b, acc)
                    skip += level_skip
            skipped[qb.index[qb.valid]] = skip[:, None].expand_as(qb.index)[qb.valid]
        return acc.result(skipped)

    def exact(self, queries: Tensor) -> tuple[Tensor, Tensor]:
        """log S(q) and log S_g(q) over every centre, float64 (the certified fallback)."""
        return exact_log_sums(
            queries, self.centers, self.groups, self.n_groups, self.sigma, self.chunk
        )

    def nearest_log_kernel(self, queries: Tensor) -> Tensor:
        """−‖q − c_nearest‖²/2σ² per query: a sure lower bound on log S(q)."""
        if self._point_tree is None:
            self._point_tree = cKDTree(self.centers.detach().cpu().double().numpy())
        dist, _ = self._point_tree.query(queries.detach().cpu().double().numpy(), k=1)
        return torch.as_tensor(-self.s * dist**2, dtype=F64, device=queries.device)

    # ----------------------------------------------------------------------------- pruning
    def _near_reach(self, qb: Blocks) -> Tensor:
        """Block-centre distance within which a pair belongs to the first pass."""
        return qb.radius + _NEAR * self.sigma

    def _is_near(self, qb: Blocks, cb: Blocks, a: Tensor, b: Tensor) -> Tensor:
        """The first pass's pairs, decided by one formula in both passes (no pair twice or never)."""
        dist = (qb.center[a] - cb.center[b]).norm(dim=1)
        return dist <= self._near_reach(qb)[a] + cb.radius[b]

    def _candidates(self, qb: Blocks, level: _Level, reach: Tensor):
        """Yield (query blocks a, centre blocks b, first row, stop row): the pairs whose block
        centres lie within ``reach`` of each other, a bounded number of rows at a time."""
        centers = qb.center.cpu().numpy()
        reach_np = (reach * (1 + 1e-6)).cpu().numpy()
        lens = level.tree.query_ball_point(
            centers, reach_np, return_length=True, workers=_workers()
        )
        dev = qb.center.device
        start = 0
        for stop in _row_chunks(lens, _MAX_CANDIDATES):
            lists = level.tree.query_ball_point(
                centers[start:stop], reach_np[start:stop], workers=_workers()
            )
            counts = lens[start:stop]
            b = np.fromiter(itertools.chain.from_iterable(lists), np.int64, int(counts.sum()))
            a = np.repeat(np.arange(start, stop), counts)
            yield torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev), start, stop
            start = stop

    def _near_pairs(self, qb: Blocks, level: _Level) -> tuple[Tensor, Tensor]:
        reach = self._near_reach(qb) + level.max_radius
        a_parts, b_parts = [], []
        for a, b, _, _ in self._candidates(qb, level, reach):
            near = self._is_near(qb, level.blocks, a, b)
            a_parts.append(a[near])
            b_parts.append(b[near])
        return torch.cat(a_parts), torch.cat(b_parts)

    def _pairs(self, qb: Blocks, low: Tensor, level: _Level):
        """Yield (query blocks a, centre blocks b, skipped mass per query block) in batches."""
        cb = level.blocks
        n_level = int(cb.count.sum())
        # allowance per level ∝ its centres; beyond r_cut they weigh ≤ a quarter of it
        log_allow = low + math.log(self.tol / 2 * n_level / self.n)
        r_cut2 = ((math.log(4 * n_level) - log_allow) / self.s).clamp_min(0)
        reach = (qb.radius + level.max_radius + r_cut2.sqrt()) * (1 + 1e-9)
        dev = qb.center.device
        far_mass = (n_level * torch.exp(-self.s * r_cut2)).to(dev)
        for a_t, b_t, start, stop in self._candidates(qb, level, reach):
            rest = ~self._is_near(qb, cb, a_t, b_t)  # the first pass has the near ones
            a_t, b_t = a_t[rest], b_t[rest]
            up = cb.count[b_t].to(F64).log() - self.s * box_gap2(
                qb.lo[a_t], qb.hi[a_t], cb.lo[b_t], cb.hi[b_t]
            )
            n_cand = torch.bincount(a_t - start, minlength=stop - start).clamp_min(1)
            n_cand = n_cand.to(F64)[a_t - start]
            keep = up > log_allow[a_t] - math.log(4) - n_cand.log()  # the rest: ≤ allowance / 4
            skipped = torch.zeros(qb.n_blocks, dtype=F64, device=dev)
            skipped.index_add_(0, a_t[~keep], up[~keep].exp())
            skipped[start:stop] += far_mass[start:stop]
            yield a_t[keep], b_t[keep], skipped

    # -------------------------------------------------------------------------- evaluation
    def _evaluate(self, qb: Blocks, cb: Blocks, a: Tensor, b: Tensor, acc: _Accumulator) -> None:
        """Add the kernel sums of block pairs (a, b), in float32 with a rounding bound per query.

        With a = q − o, b = c − o (o the query block's centre, ‖a‖ ≤ 3σ):
        e^{−s‖q−c‖²} = e^{−s‖a‖²} · e^{2s a·b − s‖b‖²}; the second factor comes from one batched
        matmul and one exp (few passes over the tile), the first is applied per query in float64.
        The exponent's rounding error is at most (2d + 10)·u·s·(‖a‖² + ‖b‖²) per term; its
        kernel-weighted sum Σ_c k_c·‖b_c‖² comes from one more batched product.
        """
        s, d = self.s, self.d
        coef = (2 * d + 10) * U32 * s
        per = max(1, self.chunk // (qb.leaf * cb.leaf))
        for i in range(0, a.numel(), per):
            aa, bb = a[i : i + per], b[i : i + per]
            delta = cb.center[bb] - qb.center[aa]
            qa = qb.rel[aa]
            cp = cb.rel[bb] + delta.float().unsqueeze(1)
            cn = cp.square().sum(-1)
            bias = (cn * -s).masked_fill_(~cb.valid[bb], -math.inf).unsqueeze(1)
            k = torch.baddbmm(bias, qa, cp.transpose(1, 2), alpha=2 * s).exp_()
            part = k.sum(-1).to(F64)
            weighted = torch.bmm(k, cn.unsqueeze(2)).squeeze(2).to(F64)  # Σ_c k_c ‖b_c‖²
            qn = qa.square().sum(-1).to(F64)
            scale = torch.exp(-s * qn) * qb.valid[aa]
            err = scale * (coef * (qn * part + weighted) + (cb.leaf + 4) * U32 * part)
            acc.add(qb.index[aa], cb.group[bb], part * scale, err)


class _Accumulator:
    """Per-query sums and error masses, in total and per group (float64)."""

    def __init__(self, m: int, n_groups: int, device: torch.device) -> None:
        self.m, self.g = m, n_groups
        self.total = torch.zeros(m, dtype=F64, device=device)
        self.err = torch.zeros(m, dtype=F64, device=device)
        self.group = torch.zeros(m * n_groups, dtype=F64, device=device)
        self.group_err = torch.zeros(m * n_groups, dtype=F64, device=device)

    def add(self, rows: Tensor, groups: Tensor, part: Tensor, err: Tensor) -> None:
        """Add block-pair sums ``part`` (p, leaf_q) for query ``rows`` (p, leaf_q), with bounds
        ``err`` (p, leaf_q) on their rounding errors and the centre groups ``groups`` (p,)."""
        err = err.reshape(-1)
        flat, part = rows.reshape(-1), part.reshape(-1)
        self.total.index_add_(0, flat, part)
        self.err.index_add_(0, flat, err)
        if self.g > 1:
            gi = (rows * self.g + groups.unsqueeze(1)).reshape(-1)
            self.group.index_add_(0, gi, part)
            self.group_err.index_add_(0, gi, err)

    def result(self, skipped: Tensor) -> KernelSums:
        """Logs of the sums and their error bounds; the skipped mass counts against every sum."""
        log_total = self.total.log()
        bound = _log_error(self.total, self.err + skipped)
        if self.g == 1:
            return KernelSums(log_total, log_total[:, None], bound, bound[:, None])
        group, group_err = self.group.view(self.m, self.g), self.group_err.view(self.m, self.g)
        return KernelSums(
            log_total, group.log(), bound, _log_error(group, group_err + skipped[:, None])
        )


def exact_log_sums(
    queries: Tensor, centers: Tensor, groups: Tensor, n_groups: int, sigma: float, chunk: int
) -> tuple[Tensor, Tensor]:
    """log S(q) (m,) and log S_g(q) (m, G) over every centre, float64 (the certified fallback)."""
    cols = []
    for g in range(n_groups):
        members = centers[groups == g]
        if members.shape[0] == 0:
            cols.append(
                torch.full((queries.shape[0],), -math.inf, dtype=F64, device=queries.device)
            )
            continue
        cols.append(dense_lse(queries[None], members[None], sigma, chunk)[0])
    log_group = torch.stack(cols, 1)
    return torch.logsumexp(log_group, 1), log_group


def _log_error(total: Tensor, err: Tensor) -> Tensor:
    """Bound on |log S_true − log S| when |S_true − S| ≤ err: err / (S − err), inf if S ≤ err."""
    room = total - err
    return torch.where(room > 0, err / room, math.inf)


def _row_chunks(lens: np.ndarray, budget: int):
    """Stops of consecutive row ranges holding at most ``budget`` candidates (≥ one row each)."""
    cum = np.cumsum(lens)
    start, base = 0, 0
    while start < len(lens):
        stop = int(np.searchsorted(cum, base + budget, side="right"))
        stop = max(stop, start + 1)
        yield stop
        base = int(cum[stop - 1])
        start = stop


def _workers() -> int:
    """scipy's threads for tree queries: as many as torch was given (the thread policy's)."""
    return torch.get_num_threads()
