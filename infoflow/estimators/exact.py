r"""Exact information of a deterministic layer with discrete (quantized) values: H(T), I(X;T) and
I(T;Y) in nats, computed from the distinct rows, with no bins, noise or Monte Carlo (Lorenzen,
Igel & Nielsen, ICLR 2022, for networks quantized to k bits).

What "exact" means: X is uniform over the n rows given (the empirical distribution of the inputs
measured), T = f(X) is the layer's value and Y the label. For this distribution every quantity is
a finite sum over the distinct rows, computed here with integer counts (no hashing, no collisions)
and float64 logs: exact up to the rounding of those logs (~1e-15 relative).

It is literally binned information on codes that never merge two distinct values: the entropies
are those of :mod:`infoflow.estimators.binning` (its private row-id and entropy helpers, reused),
applied to a dense integer id of every distinct value, so rows are equal iff their values are
equal (``-0.0 == 0.0``). Lorenzen et al.'s estimator re-quantizes each layer on its own
[min, max] with 2^k + 1 levels, which is one-to-one on a k-bit grid: the same partition.

On continuous representations every row is distinct and the result is the plug-in ceiling ln n,
which estimates nothing: the values are exact only for discrete T (quantized networks, codes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from infoflow.estimators.binning import _members_info
from infoflow.estimators.checks import _shape, check_labels

__all__ = ["exact_information"]


def _check(representations: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """(K, n, d) representations and (K, n) labels on the representations' device."""
    r = representations
    if isinstance(r, Tensor) and r.ndim == 1:
        r = r[:, None]
    if not isinstance(r, Tensor) or r.ndim not in (2, 3) or min(r.shape) == 0:
        raise ValueError(
            f"representations must be (n, d) or (K, n, d) with K, n, d >= 1, got {_shape(r)}"
        )
    if r.is_complex():
        raise ValueError(f"representations must be real, got {r.dtype}")
    if r.is_floating_point() and not bool(torch.isfinite(r).all()):
        raise ValueError("representations contain NaN or inf")
    r = r if r.ndim == 3 else r.unsqueeze(0)
    k, n = r.shape[:2]
    if not isinstance(labels, Tensor) or labels.shape not in ((n,), (k, n)):
        want = f"({n},)" if k == 1 else f"({n},) or ({k}, {n})"
        raise ValueError(f"labels must have shape {want}, got {_shape(labels)}")
    check_labels(labels.reshape(-1), labels.numel())
    return r, labels.to(r.device).expand(k, n)


def exact_information(representations: Tensor, labels: Tensor) -> dict:
    r"""H(T), I(X;T) and I(T;Y) of a deterministic discrete layer, exact, in nats.

    With :math:`p` the empirical distribution of the n rows (X uniform over the rows, T = f(X)):

    .. math::
        H(T) = -\sum_t p(t)\ln p(t), \quad I(X;T) = H(T) - H(T|X) = H(T), \quad
        I(T;Y) = H(T) + H(Y) - H(T, Y).

    I(X;T) = H(T) because T is a function of X: also when the same input appears in several rows
    (its rows then carry the same T, and H(T|X) = 0 still; H(T) <= H(X), the entropy of the rows'
    inputs, which is below ln n). Representations that are not a function of the input (noise,
    dropout) are not what this measures.

    One network or an ensemble, through the same computation (a single network is an ensemble of
    one); members never mix.

    Args:
        representations: (n, d) or (K, n, d) tensor (any real dtype, any device; (n,) is one
            unit), member k's layer values of its n inputs. Rows are compared value for value.
        labels: (n,) integer labels shared by the members, or (K, n), member k's own.

    Returns:
        ``{"H_T", "I_XT", "I_TY"}`` as floats in nats; for (K, n, d) representations a list of K
        of them (as :func:`~infoflow.estimators.binning.binned_information`).

    Example:
        >>> t = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
        >>> r = exact_information(t, torch.tensor([0, 0, 1, 1]))
        >>> round(r["H_T"], 4), round(r["I_TY"], 4)  # rows a, a, b, c: 1.5 bits; H(Y) = ln 2
        (1.0397, 0.6931)
        >>> r = exact_information(torch.stack([t, torch.zeros(4, 2)]), torch.tensor([0, 0, 1, 1]))
        >>> [round(m["I_TY"], 4) for m in r]  # member 1 is constant
        [0.6931, 0.0]
    """
    r, y = _check(representations, labels)
    # One dense id per distinct value: rows of ids are equal iff rows of values are.
    ids = torch.unique(r, return_inverse=True)[1]
    members = _members_info(ids, y, None)
    return members[0] if representations.ndim < 3 else members
