"""Points cut into spatially tight blocks: the leaves of a balanced k-d tree, padded, with boxes.

A block holds the points of one k-d leaf (scipy's cKDTree, median splits: tight in any dimension,
unlike Z-order or other key orders, whose consecutive points can be far apart in more than a few
dimensions), padded to ``leaf`` slots (padded slots are marked invalid), all of one group
(class), with its bounding box and the points in float32 relative to the box centre — so that
float32 distance arithmetic stays accurate (see :mod:`.index`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

F64 = torch.float64


def kd_segments(x: Tensor, rows: Tensor, leafsize: int) -> tuple[Tensor, Tensor]:
    """``rows`` of ``x`` grouped into the leaves of a balanced k-d tree of at most ``leafsize``
    points: (rows in leaf order, points per leaf)."""
    n = rows.numel()
    if n <= leafsize:
        return rows, torch.tensor([n], device=rows.device)
    tree = cKDTree(x[rows].detach().cpu().double().numpy(), leafsize=leafsize)
    starts, ends, stack = [], [], [tree.tree]
    while stack:
        node = stack.pop()
        if node.split_dim == -1:
            starts.append(node.start_idx)
            ends.append(node.end_idx)
        else:
            stack += [node.greater, node.lesser]
    first = np.argsort(starts)
    counts = (np.asarray(ends) - np.asarray(starts))[first]
    order = rows[torch.from_numpy(tree.indices.astype(np.int64)).to(rows.device)]
    return order, torch.from_numpy(counts).to(rows.device)


class Blocks:
    """Blocks of ``leaf`` slots, one per segment of consecutive ``order`` rows.

    Attributes:
        index: (nb, leaf) row numbers into the points (padded slots repeat a valid row).
        valid: (nb, leaf) bool, real slots.
        group: (nb,) group of each block.
        lo, hi, center: (nb, d) float64 box of the valid points and its centre.
        radius: (nb,) float64 largest distance of a valid point from the centre.
        rel: (nb, leaf, d) float32 points minus their block's centre.
        count: (nb,) valid points per block.
    """

    def __init__(
        self, x: Tensor, order: Tensor, counts: Tensor, leaf: int, group: Tensor | None = None
    ) -> None:
        dev = x.device
        starts = counts.cumsum(0) - counts
        pos = torch.arange(leaf, device=dev)
        slot = starts[:, None] + torch.minimum(pos[None], counts[:, None] - 1)
        group = (
            torch.zeros(counts.numel(), dtype=torch.long, device=dev) if group is None else group
        )
        self._set(x, order[slot], pos[None] < counts[:, None], group)

    def _set(self, x: Tensor, index: Tensor, valid: Tensor, group: Tensor) -> None:
        self.index, self.valid, self.group = index, valid, group
        self.n_blocks, self.leaf = index.shape
        pts = x.index_select(0, index.reshape(-1)).view(self.n_blocks, self.leaf, -1).to(F64)
        v = valid.unsqueeze(-1)
        self.lo = torch.where(v, pts, math.inf).amin(1)
        self.hi = torch.where(v, pts, -math.inf).amax(1)
        self.center = 0.5 * (self.lo + self.hi)
        rel = pts - self.center.unsqueeze(1)
        self.radius = torch.where(valid, rel.square().sum(-1), 0.0).amax(1).sqrt()
        self.rel = rel.float()
        self.count = valid.sum(1)

    def subset(self, keep: Tensor, x: Tensor) -> Blocks:
        """The blocks where ``keep`` is true."""
        if bool(keep.all()):
            return self
        out = Blocks.__new__(Blocks)
        out._set(x, self.index[keep], self.valid[keep], self.group[keep])
        return out


def leaf_blocks(x: Tensor, leaf: int, groups: Tensor | None = None) -> Blocks:
    """k-d leaves of at most ``leaf`` points, built per group so that no block mixes groups."""
    dev = x.device
    if groups is None:
        groups = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
    orders, counts, labels = [], [], []
    for g in torch.unique(groups).tolist():
        order, count = kd_segments(x, (groups == g).nonzero()[:, 0], leaf)
        orders.append(order)
        counts.append(count)
        labels.append(torch.full_like(count, g))
    counts = torch.cat(counts)
    slots = int(counts.max())  # balanced leaves hold leaf/2 to leaf points: pad only to the largest
    return Blocks(x, torch.cat(orders), counts, slots, torch.cat(labels))


def tight_blocks(x: Tensor, leaves: tuple[int, ...], max_radius: float) -> list[Blocks]:
    """k-d leaves of the largest size whose radius stays within ``max_radius``; the points of
    wider leaves are cut again with the next size, and so on (the last size takes the rest)."""
    rows = torch.arange(x.shape[0], device=x.device)
    out = []
    for i, leaf in enumerate(leaves):
        if rows.numel() == 0:
            break
        order, counts = kd_segments(x, rows, leaf)
        b = Blocks(x, order, counts, leaf)
        last = i == len(leaves) - 1
        ok = torch.ones_like(b.radius, dtype=torch.bool) if last else b.radius <= max_radius
        if bool(ok.any()):
            out.append(b.subset(ok, x))
        rows = b.index[~ok][b.valid[~ok]]
    return out


def box_gap2(a_lo: Tensor, a_hi: Tensor, b_lo: Tensor, b_hi: Tensor) -> Tensor:
    """Squared distance between boxes (broadcasting over leading dims): 0 where they overlap."""
    gap = (b_lo - a_hi).clamp_min(0) + (a_lo - b_hi).clamp_min(0)
    return gap.square().sum(-1)
