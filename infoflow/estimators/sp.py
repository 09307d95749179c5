"""Sample-propagation (SP) estimator of I(X;T_ℓ) and I(T_ℓ;Y) in noisy networks (Goldfeld et al. 2019).

Every hidden layer is T_ℓ = S_ℓ + σZ with S_ℓ the layer's pre-noise output (which carries the noise
of earlier layers). Given N inputs, each propagated R times, the N·R samples s_ij of S_ℓ define the
plug-in distributions (all in nats)

* T_ℓ ~ ĝ = (1/(NR)) Σ_ij N(s_ij, σ² I)            → h(T_ℓ)
* T_ℓ | X = x_i ~ ĝ_i = (1/R) Σ_j N(s_ij, σ² I)     → h(T_ℓ|X) = (1/N) Σ_i h(ĝ_i)
* T_ℓ | Y = y ~ (1/(N_y R)) Σ_{i: y_i = y} Σ_j …     → h(T_ℓ|Y) = Σ_y p(y) h(ĝ_y)

and I(X;T_ℓ) = h(T_ℓ) − h(T_ℓ|X), I(T_ℓ;Y) = h(T_ℓ) − h(T_ℓ|Y). The mixture entropies come from
:mod:`infoflow.estimators.mixture` (Monte Carlo with exact densities).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from infoflow.estimators.mixture import (
    DEFAULT_TARGET_STDERR,
    _check_n_mc,
    _check_sigma,
    gaussian_entropy,
    gaussian_mixture_entropy,
    mean_mixture_entropy,
)
from infoflow.estimators.result import Estimate

__all__ = ["SampleComplexityWarning", "sp_information", "sp_width_limit"]

SampleFn = Callable[[Tensor], Sequence[Tensor]]
_NAN = Estimate(math.nan, math.nan)
_SAME_REPLICAS = 1e-6  # replicas within this many σ of each other count as one point


class SampleComplexityWarning(UserWarning):
    """An SP estimate whose layer is too wide for its number of samples to be trusted."""


def sp_width_limit(n_samples: int) -> float:
    """Widest layer whose SP estimate from `n_samples` = N·R samples is not flagged: 2 ln n.

    The plug-in error decays like e^{O(d)}/√n (Goldfeld et al. 2019), so the samples needed grow
    exponentially with the width d; we warn when d > 2 ln n, i.e. when n < e^{d/2}. The SZT layers
    (d ≤ 10, n = 4096·R ≥ 8192, limit ≥ 18) pass; convolutional layers (d in the hundreds) do not.
    """
    return 2.0 * math.log(n_samples)


def sp_information(
    sample_fn: SampleFn,
    inputs: Tensor,
    labels: Tensor | None = None,
    *,
    sigma: float,
    n_replicas: int,
    n_mc: int | None = None,
    n_mc_conditional: int | None = None,
    chunk_size: int | None = None,
    generator: torch.Generator | None = None,
    target_stderr: float = DEFAULT_TARGET_STDERR,
    max_width: int | None = None,
) -> dict[int, dict[str, Estimate]]:
    r"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y) and the entropies behind them, for every hidden layer.

    .. math::
        I(X;T_\ell) = h(T_\ell) - h(T_\ell|X), \qquad
        I(T_\ell;Y) = h(T_\ell) - \sum_y p(y)\, h(T_\ell|Y=y)

    Each input is replicated R times (``x.repeat_interleave(R, 0)``, a chunk of inputs per call)
    and ``sample_fn`` is called once per chunk, under ``torch.no_grad()``. Entropies are Gaussian
    mixture entropies with component std σ (see module docstring), each by Monte Carlo with its
    own independent queries, so standard errors of differences add in quadrature.

    h(T_ℓ|X) is exact, (d/2) ln(2πeσ²) with stderr 0, for layers whose replicas of every input
    coincide (within 1e-6·σ) — detected from the samples, which covers the first hidden layer
    (S_1 is a function of x alone); otherwise it is the batched mean of the N per-input mixture
    entropies. p(y) is the empirical class frequency among ``inputs``. Negative estimates are
    returned as they are. A :class:`SampleComplexityWarning` is issued for layers wider than
    :func:`sp_width_limit` (2 ln(N·R)).

    Args:
        sample_fn: maps a batch x of shape (B, ...) to one tensor per hidden layer, each (B, d_ℓ)
            (trailing dims are flattened): the pre-noise outputs S_ℓ, with fresh noise in all
            earlier layers. Its outputs stay on its device; the estimates are computed there.
        inputs: (N, ...) inputs, used as given (draw them uniformly with replacement).
        labels: optional (N,) integer class labels; without them I_TY is NaN (value and stderr).
        sigma: noise standard deviation σ > 0 of every hidden layer.
        n_replicas: R ≥ 2 propagations per input.
        n_mc: Monte Carlo queries for h(T_ℓ) and each h(T_ℓ|Y=y) (default: from target_stderr).
        n_mc_conditional: total queries for h(T_ℓ|X), spread over inputs (default: likewise).
        chunk_size: inputs per ``sample_fn`` call (default max(1, 65536 // R)).
        generator: torch.Generator for the Monte Carlo queries (not used by ``sample_fn``).
        target_stderr: standard error the default query counts aim at, per entropy, nats.
        max_width: layers wider than this are not estimated (absent from the result, and not
            warned about): convolutional layers whose estimate would be meaningless and slow.
            None: every layer.

    Returns:
        {layer index (0 = first hidden layer): {"I_XT", "I_TY", "h_T", "h_T_given_X",
        "h_T_given_Y": Estimate}}, nats.

    Example:
        >>> w = torch.tensor([[2.0]])
        >>> def sample_fn(x):  # one noisy tanh unit feeding a second one
        ...     s1 = torch.tanh(x @ w)
        ...     return [s1, torch.tanh((s1 + 0.1 * torch.randn_like(s1)) @ w)]
        >>> x = torch.tensor([[-1.0], [1.0]])
        >>> g = torch.Generator().manual_seed(0)
        >>> out = sp_information(sample_fn, x, sigma=0.1, n_replicas=50, n_mc=4000, generator=g)
        >>> abs(out[0]["I_XT"].value - math.log(2)) < 0.05  # two far-apart inputs: ln 2
        True
    """
    sigma = _check_sigma(sigma)
    if int(n_replicas) != n_replicas or n_replicas < 2:
        raise ValueError(f"n_replicas must be an integer >= 2, got {n_replicas}")
    _check_n_mc(n_mc)
    _check_n_mc(n_mc_conditional, "n_mc_conditional")
    _check_inputs(inputs, labels)
    if max_width is not None and (int(max_width) != max_width or max_width < 1):
        raise ValueError(f"max_width must be a positive integer or None, got {max_width}")
    samples = _propagate(sample_fn, inputs, int(n_replicas), chunk_size)
    out = {}
    for layer, s in enumerate(samples):
        n, r, d = s.shape
        if max_width is not None and d > max_width:
            continue
        if d > sp_width_limit(n * r):
            warnings.warn(
                f"SP estimate of layer {layer} (width d={d}) from n={n * r} samples is not "
                f"trustworthy: its error grows like e^O(d)/sqrt(n); widths above 2 ln n = "
                f"{sp_width_limit(n * r):.1f} are flagged",
                SampleComplexityWarning,
                stacklevel=2,
            )
        kw = {"generator": generator, "target_stderr": target_stderr}
        out[layer] = _layer_information(s, labels, sigma, n_mc, n_mc_conditional, kw)
    return out


def _check_inputs(inputs: Tensor, labels: Tensor | None) -> None:
    if not isinstance(inputs, Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty tensor with the inputs along dimension 0")
    if labels is None:
        return
    if not isinstance(labels, Tensor) or labels.ndim != 1:
        raise ValueError("labels must be a 1-D tensor of class labels")
    if labels.shape[0] != inputs.shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but inputs has {inputs.shape[0]} rows"
        )


def _propagate(sample_fn: SampleFn, inputs: Tensor, r: int, chunk_size: int | None) -> list[Tensor]:
    """Per hidden layer, the (N, R, d_ℓ) pre-noise samples: R replicas of every input."""
    n = inputs.shape[0]
    chunk = chunk_size or max(1, 65536 // r)
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    parts: list[list[Tensor]] = []
    with torch.no_grad():
        for i in range(0, n, chunk):
            x = inputs[i : i + chunk].repeat_interleave(r, 0)
            outs = sample_fn(x)
            if isinstance(outs, Tensor) or not isinstance(outs, Sequence) or len(outs) == 0:
                raise ValueError("sample_fn must return a non-empty list of tensors, one per layer")
            if parts and len(outs) != len(parts):
                raise ValueError("sample_fn returned a varying number of layers")
            if not parts:
                parts = [[] for _ in outs]
            for layer, s in enumerate(outs):
                parts[layer].append(_check_layer_output(s, x.shape[0], r, layer))
    return [torch.cat(p) for p in parts]


def _check_layer_output(s: Tensor, batch: int, r: int, layer: int) -> Tensor:
    if not isinstance(s, Tensor) or s.ndim < 2 or s.shape[0] != batch:
        shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
        raise ValueError(f"sample_fn layer {layer}: expected ({batch}, d) tensor, got {shape}")
    if not s.is_floating_point():
        raise ValueError(f"sample_fn layer {layer}: expected a floating tensor, got {s.dtype}")
    if not bool(torch.isfinite(s).all()):
        raise ValueError(f"sample_fn layer {layer} returned NaN or inf")
    return s.detach().reshape(batch // r, r, -1)


def _layer_information(
    s: Tensor,
    labels: Tensor | None,
    sigma: float,
    n_mc: int | None,
    n_mc_conditional: int | None,
    kw: dict,
) -> dict[str, Estimate]:
    n, r, d = s.shape
    h_t = gaussian_mixture_entropy(s.reshape(n * r, d), sigma, n_mc=n_mc, **kw)
    if _replicas_coincide(s, sigma):
        h_tx = Estimate(gaussian_entropy(d, sigma), 0.0)
    else:
        h_tx = mean_mixture_entropy(s, sigma, n_mc=n_mc_conditional, **kw)
    h_ty = _NAN if labels is None else _class_conditional(s, labels, sigma, n_mc, kw)
    return {
        "I_XT": h_t - h_tx,
        "I_TY": _NAN if labels is None else h_t - h_ty,
        "h_T": h_t,
        "h_T_given_X": h_tx,
        "h_T_given_Y": h_ty,
    }


def _replicas_coincide(s: Tensor, sigma: float) -> bool:
    return float((s - s[:, :1]).abs().amax()) <= _SAME_REPLICAS * sigma


def _class_conditional(
    s: Tensor, labels: Tensor, sigma: float, n_mc: int | None, kw: dict
) -> Estimate:
    """Σ_y p(y) h(ĝ_y) over the classes present; stderr sqrt(Σ_y p(y)² se_y²)."""
    n, r, d = s.shape
    labels = labels.to(s.device)
    value, var = 0.0, 0.0
    for y in torch.unique(labels):
        members = s[labels == y].reshape(-1, d)
        p = members.shape[0] / (n * r)
        h = gaussian_mixture_entropy(members, sigma, n_mc=n_mc, **kw)
        value += p * h.value
        var += (p * h.stderr) ** 2
    return Estimate(value, math.sqrt(var))
