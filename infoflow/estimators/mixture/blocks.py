"""Points cut into blocks that follow the data: Morton (Z-order) keys, padded blocks, boxes.

A block holds ``leaf`` consecutive points in key order (padded slots are marked invalid), all of
one group (class), with its bounding box and the points in float32 relative to the box centre —
so that float32 distance arithmetic stays accurate (see :mod:`.index`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

F64 = torch.float64


def kd_order_key(x: Tensor, leaf: int = 32) -> Tensor:
    """Each row's position in the leaf order of a k-d tree (scipy's cKDTree, median splits).

    Consecutive points in this order share leaves of at most ``leaf`` points, which are tight in
    any dimension — unlike Z-order, whose neighbours in more than a few dimensions can be far.
    """
    tree = cKDTree(x.detach().cpu().double().numpy(), leafsize=leaf, balanced_tree=True)
    key = torch.empty(x.shape[0], dtype=torch.long)
    key[torch.from_numpy(tree.indices.astype(np.int64))] = torch.arange(x.shape[0])
    return key.to(x.device)


def zorder_key(x: Tensor) -> Tensor:
    """int64 Morton keys of the rows of ``x`` (n, d) within their bounding box.

    Coordinates are quantised to ⌊62/d⌋ bits each (at most 21) and interleaved, so that sorting
    by key keeps near points mostly together.
    """
    n, d = x.shape
    bits = max(1, min(21, 62 // d))
    xd = x.to(F64)
    lo = xd.amin(0)
    cells = (1 << bits) / (xd.amax(0) - lo).clamp_min(1e-300)
    v = torch.arange(1 << bits, device=x.device)
    spread = torch.zeros_like(v)  # spread[v] puts bit j of v at position j·d
    for j in range(bits):
        spread |= ((v >> j) & 1) << (j * d)
    key = torch.zeros(n, dtype=torch.long, device=x.device)
    for i in range(min(d, 62)):
        cell = ((xd[:, i] - lo[i]) * cells[i]).long().clamp_(0, (1 << bits) - 1)
        key |= spread[cell] << i
    return key


class Blocks:
    """Blocks of ``leaf`` slots over points sorted by (group, key).

    Attributes:
        index: (nb, leaf) row numbers into the points (padded slots repeat a valid row).
        valid: (nb, leaf) bool, real slots; ``weight`` the same as 0/1 float32.
        group: (nb,) group of each block (blocks never mix groups).
        lo, hi, center: (nb, d) float64 box of the valid points and its centre.
        radius: (nb,) float64 largest distance of a valid point from the centre.
        rel: (nb, leaf, d) float32 points minus their block's centre.
        count: (nb,) valid points per block.
    """

    def __init__(
        self,
        x: Tensor,
        key: Tensor,
        leaf: int,
        groups: Tensor | None = None,
        rows: Tensor | None = None,
    ) -> None:
        dev = x.device
        rows = torch.arange(x.shape[0], device=dev) if rows is None else rows
        if groups is None:
            groups = torch.zeros(x.shape[0], dtype=torch.long, device=dev)
        order = rows[torch.argsort(key[rows], stable=True)]
        order = order[torch.argsort(groups[order], stable=True)]
        index, valid, group = [], [], []
        start = 0
        for g, count in enumerate(torch.bincount(groups[rows]).tolist()):
            if count == 0:
                continue
            rows = order[start : start + count]
            start += count
            n_pad = -(-count // leaf) * leaf
            index.append(torch.cat([rows, rows[-1:].expand(n_pad - count)]))
            valid.append(torch.arange(n_pad, device=dev) < count)
            group.append(torch.full((n_pad // leaf,), g, dtype=torch.long, device=dev))
        self._set(
            x, torch.cat(index).view(-1, leaf), torch.cat(valid).view(-1, leaf), torch.cat(group)
        )

    def _set(self, x: Tensor, index: Tensor, valid: Tensor, group: Tensor) -> None:
        self.index, self.valid, self.group = index, valid, group
        self.n_blocks, leaf = self.index.shape
        self.leaf = leaf
        pts = x.index_select(0, self.index.view(-1)).view(self.n_blocks, leaf, -1).to(F64)
        v = self.valid.unsqueeze(-1)
        self.lo = torch.where(v, pts, math.inf).amin(1)
        self.hi = torch.where(v, pts, -math.inf).amax(1)
        self.center = 0.5 * (self.lo + self.hi)
        rel = pts - self.center.unsqueeze(1)
        self.radius = torch.where(self.valid, rel.square().sum(-1), 0.0).amax(1).sqrt()
        self.rel = rel.float()
        self.weight = self.valid.float()
        self.count = self.valid.sum(1)

    def subset(self, keep: Tensor, x: Tensor) -> Blocks:
        """The blocks where ``keep`` is true."""
        if bool(keep.all()):
            return self
        out = Blocks.__new__(Blocks)
        out._set(x, self.index[keep], self.valid[keep], self.group[keep])
        return out


def box_gap2(a_lo: Tensor, a_hi: Tensor, b_lo: Tensor, b_hi: Tensor) -> Tensor:
    """Squared distance between boxes (broadcasting over leading dims): 0 where they overlap."""
    gap = (b_lo - a_hi).clamp_min(0) + (a_lo - b_hi).clamp_min(0)
    return gap.square().sum(-1)


def tight_blocks(
    x: Tensor,
    leaves: tuple[int, ...],
    max_radius: float,
    groups: Tensor | None = None,
    key: Tensor | None = None,
) -> list[Blocks]:
    """Blocks of the largest leaf whose radius stays within ``max_radius``; the points of wider
    blocks are re-cut with the next leaf, and so on (the last leaf takes whatever is left).

    Z-order keeps near points together, but in more than a few dimensions consecutive points can
    be far apart: a wide block prunes badly and loses float32 accuracy, so it is cut finer.
    ``key`` (default: k-d tree leaf order) sets the order blocks are cut from.
    """
    key = kd_order_key(x, leaves[0]) if key is None else key
    rows = torch.arange(x.shape[0], device=x.device)
    out = []
    for i, leaf in enumerate(leaves):
        if rows.numel() == 0:
            break
        b = Blocks(x, key, min(leaf, rows.numel()), groups, rows)
        last = i == len(leaves) - 1
        ok = torch.ones_like(b.radius, dtype=torch.bool) if last else b.radius <= max_radius
        if bool(ok.any()):
            out.append(b.subset(ok, x))
        rows = b.index[~ok][b.valid[~ok]]
    return out
