"""Argument checks shared by the estimators that take a layer's representations and its labels
(binning, KDE, clustering): a ValueError naming the argument. The mixture and SP estimators'
own checks are in :mod:`infoflow.estimators.mixture.checks`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _shape(t: object) -> object:
    return tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__


def check_activations(activations: Tensor, *, keep_float: bool = False) -> Tensor:
    """``activations`` as an (n, d) tensor with n, d >= 1 and no NaN or inf, in float64 (with
    ``keep_float``, a floating-point tensor keeps its dtype).

    >>> check_activations(torch.ones(2, 3)).dtype
    torch.float64
    >>> check_activations(torch.ones(3))
    Traceback (most recent call last):
    ...
    ValueError: activations must be a (n, d) tensor with n, d >= 1, got (3,)
    """
    if not isinstance(activations, Tensor) or activations.ndim != 2 or min(activations.shape) == 0:
        got = _shape(activations)
        raise ValueError(f"activations must be a (n, d) tensor with n, d >= 1, got {got}")
    x = activations if keep_float and activations.is_floating_point() else activations.double()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("activations contain NaN or inf")
    return x


def check_labels(labels: Tensor, n: int, name: str = "labels") -> None:
    """``labels`` (or another per-sample id, ``name``) must be a 1-D integer tensor of length n."""
    if not isinstance(labels, Tensor) or labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{name} must be a 1-D tensor of length {n}, got {_shape(labels)}")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got {labels.dtype}")


def check_count(name: str, value: int) -> None:
    """``value`` (a size, a number of iterations) must be a Python integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
