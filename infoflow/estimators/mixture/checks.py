"""Argument checks shared by the mixture and SP estimators: a clear ValueError naming the argument."""

from __future__ import annotations

import math

import torch
from torch import Tensor

MIN_CHUNK = 4096  # fewest kernel values per tile: one block pair always fits


def check_sigma(sigma: float | Tensor) -> float:
    s = float(sigma)
    if not math.isfinite(s) or s <= 0.0:
        raise ValueError(f"sigma must be a finite positive number, got {s}")
    return s


def check_points(x: Tensor, name: str, ndim: int) -> None:
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


def check_chunk(chunk_elements: int | None, ref: Tensor) -> int:
    """The tile size: as given, or the device's default (2^20 on CPU, 2^24 on GPUs)."""
    if chunk_elements is None:
        return 1 << 20 if ref.device.type == "cpu" else 1 << 24
    if int(chunk_elements) != chunk_elements or chunk_elements < MIN_CHUNK:
        raise ValueError(f"chunk_elements must be an integer >= {MIN_CHUNK}, got {chunk_elements}")
    return int(chunk_elements)


def check_n_mc(n_mc: int | None, name: str = "n_mc") -> None:
    if n_mc is not None and (int(n_mc) != n_mc or n_mc < 2):
        raise ValueError(f"{name} must be an integer >= 2 or None, got {n_mc}")


def check_tol(tol: float) -> float:
    if not (isinstance(tol, int | float) and 0.0 <= tol < 1.0):
        raise ValueError(f"tol must be a number in [0, 1), got {tol}")
    return float(tol)
