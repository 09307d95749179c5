"""Sample-propagation (SP) estimator of I(X;T_ℓ) and I(T_ℓ;Y) in noisy networks (Goldfeld et al. 2019).

Every hidden layer is T_ℓ = S_ℓ + σZ with S_ℓ the layer's pre-noise output (which carries the noise
of earlier layers). Given N inputs, each propagated R times, the N·R samples s_ij of S_ℓ define the
plug-in distributions (all in nats)

* T_ℓ ~ ĝ = (1/(NR)) Σ_ij N(s_ij, σ² I)            → h(T_ℓ)
* T_ℓ | X = x_i ~ ĝ_i = (1/R) Σ_j N(s_ij, σ² I)     → h(T_ℓ|X) = (1/N) Σ_i h(ĝ_i)
* T_ℓ | Y = y ~ ĝ_y = (1/(N_y R)) Σ_{i: y_i = y} Σ_j …  → h(T_ℓ|Y) = Σ_y p(y) h(ĝ_y)

and I(X;T_ℓ) = h(T_ℓ) − h(T_ℓ|X), I(T_ℓ;Y) = h(T_ℓ) − h(T_ℓ|Y).

All five come from ONE set of Monte Carlo queries q = s_ij + σz, drawn from input i's own mixture
in rounds of one per input. Such q is a draw of ĝ_i, of ĝ_{y_i} and of ĝ, and given q the input
behind it is i with the posterior probability p(i|q) = ĝ_i(q) / (N ĝ(q)), so

  I(X;T) = E_q[ln N + Σ_i p(i|q) ln p(i|q)],   I(T;Y) = E_q[Σ_y p(y|q) ln(p(y|q)/p(y))]:

the log-density differences ln ĝ_i(q) − ln ĝ(q) of the queries' own inputs, averaged over the
input behind q given q (Rao–Blackwell). That removes the chance of which overlapping input a
query came from — 80-90 % of the per-query variance where replicas of different inputs overlap
(measured on SZT nets: 5-12× fewer queries for the same standard error). On the CPU the
posterior is drawn (16 systematic draws per query from the k-d tree walk's kernel values,
importance-weighted to the exact float64 kernels, each drawn input's density exact over its R
replicas); elsewhere (GPUs, small problems) it is summed exactly. The entropies use the query's
own component as a control variate (see :mod:`.mixture.entropy`); h(T|X) and h(T|Y) are h(T)
less the I terms, query by query, so that I = h(T) − h(T|·) holds in the estimates too.

Accuracy: log ĝ(q) and the class sums are certified within ``tol`` per query (float32 leaves with
a rounding bound, float64 where it is large, pruning bounded; :mod:`.mixture.kdtree`), and the
posterior mass the draws cannot reach (pruned centres) moves a term's mean by at most ``tol``;
a query over either bound is recomputed exactly. So each I term's mean is within 2·tol nats, as
for a difference of two log-densities within tol.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from infoflow.estimators.mixture import DEFAULT_TARGET_STDERR, DEFAULT_TOL
from infoflow.estimators.mixture.checks import check_chunk, check_n_mc, check_sigma, check_tol
from infoflow.estimators.mixture.entropy import (
    MAX_DEFAULT_N_MC,
    gaussian_entropy,
    mc_estimate,
    random_draws,
    use_index,
)
from infoflow.estimators.mixture.kdtree import KDTreeSums, own_log_sums
from infoflow.estimators.mixture.kernels import F64, dense_owner_lse
from infoflow.estimators.result import Estimate
from infoflow.stopping import safe_point

__all__ = ["SampleComplexityWarning", "sp_from_samples", "sp_information", "sp_width_limit"]

SampleFn = Callable[[Tensor], Sequence[Tensor]]
_NAN = Estimate(math.nan, math.nan)


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
    tol: float = DEFAULT_TOL,
    chunk_elements: int | None = None,
) -> dict[int, dict[str, Estimate]]:
    r"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y) and the entropies behind them, for every hidden layer.

    .. math::
        I(X;T_\ell) = h(T_\ell) - h(T_\ell|X), \qquad
        I(T_\ell;Y) = h(T_\ell) - \sum_y p(y)\, h(T_\ell|Y=y)

    Propagates every input R times and estimates from those samples: this is
    ``sp_from_samples(samples, labels, sigma=..., ...)`` with ``samples`` the (N, R, d_ℓ)
    pre-noise outputs per layer. Each input is replicated R times (``x.repeat_interleave(R,
    0)``, a chunk of inputs per call) and ``sample_fn`` is called once per chunk, under
    ``torch.no_grad()``. See :func:`sp_from_samples` for the estimate, its budget and what its
    standard errors cover.

    Args:
        sample_fn: maps a batch x of shape (B, ...) to one tensor per hidden layer, each (B, d_ℓ)
            (trailing dims are flattened): the pre-noise outputs S_ℓ, with fresh noise in all
            earlier layers. Its outputs stay on its device; the estimates are computed there.
        inputs: (N, ...) inputs, used as given.
        labels: optional (N,) integer class labels; without them I_TY is NaN (value and stderr).
        sigma: noise standard deviation σ > 0 of every hidden layer.
        n_replicas: R ≥ 2 propagations per input.
        n_mc: Monte Carlo queries per layer (default: from target_stderr).
        n_mc_conditional: older API, when h(T|X) had queries of its own: M is the larger of the
            two.
        chunk_size: inputs per ``sample_fn`` call (default max(1, 65536 // R)).
        generator, target_stderr, max_width, tol, chunk_elements: as for
            :func:`sp_from_samples`.

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
    check_sigma(sigma)
    check_tol(tol)
    if int(n_replicas) != n_replicas or n_replicas < 2:
        raise ValueError(f"n_replicas must be an integer >= 2, got {n_replicas}")
    check_n_mc(n_mc)
    check_n_mc(n_mc_conditional, "n_mc_conditional")
    given = [k for k in (n_mc, n_mc_conditional) if k is not None]
    _check_inputs(inputs, labels)
    _check_max_width(max_width)
    samples = _propagate(sample_fn, inputs, int(n_replicas), chunk_size)
    return _from_samples(
        samples,
        labels,
        sigma=sigma,
        n_mc=max(given) if given else None,
        generator=generator,
        target_stderr=target_stderr,
        max_width=max_width,
        tol=tol,
        chunk_elements=chunk_elements,
        stacklevel=3,
    )


def sp_from_samples(
    samples: Sequence[Tensor],
    labels: Tensor | None = None,
    *,
    sigma: float,
    n_mc: int | None = None,
    generator: torch.Generator | None = None,
    target_stderr: float = DEFAULT_TARGET_STDERR,
    max_width: int | None = None,
    tol: float = DEFAULT_TOL,
    chunk_elements: int | None = None,
) -> dict[int, dict[str, Estimate]]:
    r"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y), h(T_ℓ), h(T_ℓ|X), h(T_ℓ|Y) from given samples.

    .. math::
        \hat I(X;T_\ell) = \frac{1}{kN}\sum_{r=1}^{k}\sum_{i=1}^{N}\Big[\ln N
        + \sum_{i'} p(i'|q_{ri}) \ln p(i'|q_{ri})\Big],
        \quad q_{ri} = s_{i\pi_i(r)} + \sigma z_{ri},\ z \sim N(0, I)

    with p(i'|q) = ĝ_{i'}(q) / (N ĝ(q)) the posterior of the input behind q (module docstring;
    drawn on the CPU, exact elsewhere); I(T;Y) alike with the class posterior and p(y) the class
    frequency among the N inputs. h(T_ℓ|X) is exactly (d/2) ln(2πeσ²), stderr 0, for a layer
    whose replicas coincide (the first hidden layer: S_1 is a function of x alone). Negative
    estimates are returned as they are. A :class:`SampleComplexityWarning` is issued for layers
    wider than :func:`sp_width_limit` (2 ln(N·R)).

    Queries come in rounds of one per input, round r using replica π_i(r mod R) of input i
    (π_i a random permutation). Default budget: a pilot of max(2, ⌈2048/N⌉) rounds estimates
    the within-input variance v of the I(X;T) (and I(T;Y)) terms; then k = ⌈v /
    (N·target_stderr²)⌉ rounds in all, at most 10⁶ queries, the pilot counting towards them; a
    RuntimeWarning says so when the cap leaves a larger standard error. Given ``n_mc`` ≥ N:
    ⌈n_mc/N⌉ rounds; fewer: one query each for a random subset of n_mc inputs. Beyond R rounds,
    rounds come in whole cycles of R.

    Standard errors: stratified over the inputs (equal-weight strata: the spread between inputs
    is not error), sqrt(Σ_i s_i²/k)/N with s_i² the within-input variance of the terms. Since
    each round takes a fresh replica of every input (up to R rounds), the queries of an input
    are i.i.d. draws of (its replica distribution × the noise), and s_i² covers, to first
    order, both the Monte Carlo error given the samples and the randomness of the samples
    themselves: the spread of repeated estimates from freshly propagated replicas, as two runs
    would give (beyond R rounds: the variance of the R replicas' means). Checked on trained and
    untrained SZT nets (``benchmarks/sp_calibration.py``). Not covered: the plug-in bias of a
    finite sample (the estimate is of the N·R-sample mixture's information, whose mean over
    replicas differs from I(X;T) of the network by an error decaying like e^{O(d)}/√(NR)); the
    density tolerance (≤ 2·tol per term, systematic); and the choice of inputs (they are taken
    as given: inputs drawn at random add their own spread between runs). Where a layer is
    nearly saturated the variance comes from rare queries between clouds of replicas, and a
    standard error from few of them is itself uncertain (see the benchmark).

    Args:
        samples: per hidden layer a (N, R, d_ℓ) tensor (trailing dims are flattened): the
            pre-noise outputs S_ℓ of R noisy propagations of each of N inputs, R ≥ 2, on one
            device (the estimates are computed there).
        labels: optional (N,) integer class labels; without them I_TY is NaN (value and stderr).
        sigma: noise standard deviation σ > 0 of every hidden layer.
        n_mc: Monte Carlo queries per layer (default: from target_stderr, see above).
        generator: torch.Generator for the Monte Carlo queries.
        target_stderr: standard error of I(X;T) and I(T;Y) the default budget aims at, nats.
        max_width: layers wider than this are not estimated (absent from the result, and not
            warned about): convolutional layers whose estimate would be meaningless and slow.
            None: every layer.
        tol: bound on each log-density's error, nats (0: exact float64 over every centre).
        chunk_elements: most kernel values materialised at once (memory bound).

    Returns:
        {layer index (0 = first hidden layer): {"I_XT", "I_TY", "h_T", "h_T_given_X",
        "h_T_given_Y": Estimate}}, nats.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> far = torch.tensor([0.0, 1.0, 2.0, 3.0])[:, None, None] + 0.01 * torch.randn(
        ...     4, 20, 1, generator=g)  # four inputs, 20 replicas each, far apart for σ = 0.01
        >>> out = sp_from_samples([far], sigma=0.01, n_mc=400, generator=g)
        >>> round(out[0]["I_XT"].value, 4) == round(math.log(4), 4)  # ln N: inputs told apart
        True
    """
    check_sigma(sigma)
    check_tol(tol)
    check_n_mc(n_mc)
    _check_max_width(max_width)
    samples = _check_samples(samples, labels)
    return _from_samples(
        samples,
        labels,
        sigma=sigma,
        n_mc=n_mc,
        generator=generator,
        target_stderr=target_stderr,
        max_width=max_width,
        tol=tol,
        chunk_elements=chunk_elements,
        stacklevel=3,
    )


def _from_samples(
    samples: Sequence[Tensor], labels: Tensor | None, *, sigma: float, n_mc: int | None,
    generator: torch.Generator | None, target_stderr: float, max_width: int | None, tol: float,
    chunk_elements: int | None, stacklevel: int,
) -> dict[int, dict[str, Estimate]]:  # fmt: skip
    """Both public functions' estimate, layer by layer (a stop is checked between layers)."""
    sigma, tol = check_sigma(sigma), check_tol(tol)
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
                stacklevel=stacklevel,
            )
        safe_point()
        kw = {
            "generator": generator,
            "target_stderr": target_stderr,
            "tol": tol,
            "chunk": check_chunk(chunk_elements, s),
        }
        out[layer] = _layer_information(s, labels, sigma, n_mc, kw)
    return out


def _check_max_width(max_width: int | None) -> None:
    if max_width is not None and (int(max_width) != max_width or max_width < 1):
        raise ValueError(f"max_width must be a positive integer or None, got {max_width}")


def _check_samples(samples: Sequence[Tensor], labels: Tensor | None) -> list[Tensor]:
    """The samples as (N, R, d) tensors, checked: one clear ValueError for bad input."""
    if isinstance(samples, Tensor) or not isinstance(samples, Sequence) or len(samples) == 0:
        raise ValueError("samples must be a non-empty list of (N, R, d) tensors, one per layer")
    out = []
    for layer, s in enumerate(samples):
        if not isinstance(s, Tensor) or s.ndim < 3 or not s.is_floating_point():
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"samples[{layer}] must be a floating (N, R, d) tensor, got {shape}")
        if s.shape[0] == 0 or s.shape[1] < 2 or s[0, 0].numel() == 0:
            raise ValueError(
                f"samples[{layer}] has shape {tuple(s.shape)}: need N >= 1 inputs, R >= 2 "
                "replicas and d >= 1"
            )
        if s.shape[:2] != samples[0].shape[:2] or s.device != samples[0].device:
            raise ValueError(
                f"samples[{layer}] has (N, R) = {tuple(s.shape[:2])} on {s.device}, layer 0 "
                f"{tuple(samples[0].shape[:2])} on {samples[0].device}: all layers must agree"
            )
        if not bool(torch.isfinite(s).all()):
            raise ValueError(f"samples[{layer}] contains NaN or inf")
        out.append(s.detach().reshape(s.shape[0], s.shape[1], -1))
    if labels is not None and (not isinstance(labels, Tensor) or labels.ndim != 1):
        raise ValueError("labels must be a 1-D tensor of class labels")
    if labels is not None and labels.shape[0] != out[0].shape[0]:
        raise ValueError(
            f"labels has {labels.shape[0]} entries but samples have N={out[0].shape[0]}"
        )
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


_PILOT = 2048  # fewest pilot queries for the default budget (at least 2 rounds; kept)
_QUERY_BATCH = 1 << 15  # queries evaluated at once (a stop is checked between batches)
_DRAWS = 16  # posterior draws per query (the tree path): the conditional variance / ~16
# share of tol given to the skipped mass: the posterior entropy it omits is up to ~25× the mass
_SKIP_SHARE = 1 / 40


class _Layer:
    """One layer's samples prepared for queries: centres, their classes, the k-d trees (CPU;
    exact float64 sums elsewhere). Replicas that coincide (the first hidden layer) are kept
    once: every mixture is then the same with R = 1."""

    def __init__(self, s: Tensor, labels: Tensor | None, sigma: float, tol: float, chunk: int):
        self.coincide = _replicas_coincide(s, sigma)
        if self.coincide:
            s = s[:, :1]
        self.s, self.sigma, self.chunk, self.tol = s, sigma, chunk, tol
        n, r, d = s.shape
        dev = s.device
        if labels is None:
            self.groups = torch.zeros(n, dtype=torch.long, device=dev)
        else:
            self.groups = torch.unique(labels.to(dev), return_inverse=True)[1]
        sizes = torch.bincount(self.groups).to(F64)
        self.log_prior = (sizes / n).log()
        # |E ln p(input | q)| ≤ ln(N − 1) + ln(1/mass) over the other inputs (and classes)
        self.prior_spread = float(self.log_prior.abs().max())
        self.reach = math.log(max(n - 1, 1)) + self.prior_spread
        self.index, self.owned = None, None
        if dev.type == "cpu" and use_index(n * r, max(n, _PILOT), d, tol, dev):
            c_groups = self.groups.repeat_interleave(r)
            self.index = KDTreeSums(
                s.reshape(n * r, d), sigma, tol=tol, chunk_elements=chunk, groups=c_groups
            )
            self.owned = self.index.owners(np.repeat(np.arange(n), r), s.numpy())

    def terms(self, inp: Tensor, rep: Tensor, z: Tensor, u: Tensor) -> Tensor:
        """For queries q = s[inp, rep] + σz (a (5, m) tensor): the I(X;T) and I(T;Y) terms
        (conditional expectations given q, below) and the brackets of h(T), h(T|X), h(T|Y)."""
        s, n = self.s, self.s.shape[0]
        q = s[inp, rep].to(F64) + self.sigma * z
        log_total, ix, iy = self._posterior_terms(q, inp, u)
        h_t = -0.5 * (z * z).sum(-1) - (log_total - math.log(n * s.shape[1]))
        return torch.stack([ix, iy, h_t, h_t - ix, h_t - iy])

    def _posterior_terms(self, q: Tensor, inp: Tensor, u: Tensor) -> tuple[Tensor, ...]:
        """log S(q) and the posterior means ln N + Σ_i p_i ln p_i and Σ_y p_y ln(p_y / p(y)).

        On the tree path the query's own input i is taken exactly (its kernel sum S_i over its R
        replicas) and the rest of the posterior, of mass p_¬ = 1 − p_i, by draws:
        Σ_o p_o f(o) = p_i f(i) + p_¬ E[f(O) | O ≠ i]. Where inputs barely overlap p_¬ is tiny
        and still estimated from neighbours drawn every time (no rare events). Queries whose
        bound exceeds tol are computed exactly (every input's sum in float64)."""
        if self.index is None:
            return self._exact_terms(q)
        n = self.s.shape[0]
        own = own_log_sums(q, self.s, inp, self.sigma)  # ln S_i, exact; also a lower bound
        res = self.index.posterior_draws(
            q, self.owned, inp, u, _DRAWS, skip=self.tol * _SKIP_SHARE, log_lower=own,
            first_group=self.groups[inp],
        )  # fmt: skip
        log_other = res.other.log()  # −inf where no other input was within reach
        log_s = torch.logaddexp(own, log_other)
        log_pi = own - log_s
        p_other = (log_other - log_s).exp()
        drawn = res.weight > 0
        a_x = torch.where(drawn, res.weight * res.log_owner, 0.0).sum(1)  # E_w ln S_O
        ix = math.log(n) + log_pi.exp() * log_pi + p_other * (a_x - log_s)
        log_py = res.log_group - res.log_total[:, None] - self.log_prior  # ln(p_y / p(y))
        f_own = log_py.gather(1, self.groups[inp][:, None])[:, 0]
        a_y = torch.where(drawn, res.weight * log_py.gather(1, self.groups[res.owner]), 0.0)
        a_y = a_y.sum(1)
        iy = log_pi.exp() * f_own + p_other * a_y
        # Error of a term's mean: ln S and the class sums within tv each (2·tv); the other
        # inputs' summed mass x off by its rounding: |dT/dx| ≤ (1 + p_i |E f(O) − f(i)|) / S
        # (×1.1 for the interval); the skipped centres, which draws never reach: their own terms
        # (missed) and the normalisation they leave out (unseen × (|T| + 1) ≤ unseen × reach).
        slope = 1 + log_pi.exp() * ((a_x - own).abs() + (a_y - f_own).abs())
        rounding = 1.1 * res.other_err * (-log_s).exp() * slope
        bound = 2 * res.tv + rounding + res.missed + res.unseen * (self.reach + 1)
        ok = res.ok & (bound <= self.tol) & torch.isfinite(ix) & torch.isfinite(iy)
        bad = (~ok).nonzero()[:, 0]
        if bad.numel():
            log_s[bad], ix[bad], iy[bad] = self._exact_terms(q[bad])
        return log_s, ix, iy

    def _exact_terms(self, q: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The same three, exactly: every input's kernel sum at q in float64, and the
        posterior's entropies themselves (no draws)."""
        log_owner = dense_owner_lse(q, self.s, self.sigma, self.chunk)  # (m, N)
        log_total = log_owner.logsumexp(1)
        log_p = log_owner - log_total[:, None]
        ix = math.log(self.s.shape[0]) + _plogp(log_p).sum(1)
        log_py = torch.stack(
            [log_p[:, self.groups == g].logsumexp(1) for g in range(self.log_prior.numel())], 1
        )
        iy = (_plogp(log_py) - log_py.exp() * self.log_prior).sum(1)
        return log_total, ix, iy


def _plogp(log_p: Tensor) -> Tensor:
    """p ln p from ln p, 0 where p = 0."""
    return torch.where(log_p > -math.inf, log_p.exp() * log_p, 0.0)


class _Terms:
    """Per-query terms in rounds: each round has one query per input, so inputs are strata of
    equal weight and the standard error is the stratified one, sqrt(Σ_i s_i² / k) / N for k
    rounds — the spread between inputs is not Monte Carlo error. Round r draws input i's
    replica π_i(r mod R) (π_i a random permutation): up to R rounds every query has a replica
    of its own, i.i.d. draws of the input's replica distribution, so s_i² also covers the
    randomness of the replicas (to first order). Beyond R rounds come in whole cycles of R and
    s_i² is the variance of the R replicas' means. With fewer queries than inputs, a random
    subset of inputs gets one query each (plain standard error)."""

    def __init__(self, layer: _Layer, generator: torch.Generator | None) -> None:
        self.layer, self.gen = layer, generator
        self.n, self.r = layer.s.shape[:2]
        dev = layer.s.device
        self.perm = random_draws((self.n, self.r), dev, generator, "rand").argsort(dim=1)
        # replicas that coincide carry no randomness: no cycles to respect
        self.cycle = None if layer.coincide else self.r
        self.rounds: list[Tensor] = []  # (5, N) each
        self.partial: Tensor | None = None

    def whole(self, k: int, up: bool = True) -> int:
        """k rounds, rounded to whole cycles of R beyond R (up, or down; see the class
        docstring)."""
        c = self.cycle
        if c is None or k <= c:
            return k
        return (math.ceil(k / c) if up else k // c) * c

    def draw_rounds(self, k: int) -> None:
        """k more rounds, evaluated in batches (a stop is checked between them)."""
        if k <= 0:
            return
        dev = self.layer.s.device
        first = len(self.rounds)
        inp = torch.arange(self.n, device=dev).repeat(k)
        rnd = torch.arange(first, first + k, device=dev).repeat_interleave(self.n)
        rep = self.perm[inp, rnd % self.r]
        parts = []
        for a in range(0, inp.numel(), _QUERY_BATCH):
            safe_point()
            parts.append(self._batch(inp[a : a + _QUERY_BATCH], rep[a : a + _QUERY_BATCH]))
        self.rounds += list(torch.cat(parts, 1).view(5, k, self.n).unbind(1))

    def _batch(self, inp: Tensor, rep: Tensor) -> Tensor:
        dev, d = self.layer.s.device, self.layer.s.shape[2]
        z = random_draws((inp.numel(), d), dev, self.gen, "randn")
        u = random_draws((inp.numel(),), dev, self.gen, "rand")
        return self.layer.terms(inp, rep, z, u)

    def draw_subset(self, m: int) -> None:
        dev = self.layer.s.device
        order = torch.argsort(random_draws((self.n,), dev, self.gen, "rand"))[:m]
        rep = (random_draws((m,), dev, self.gen, "rand") * self.r).long().clamp_(max=self.r - 1)
        safe_point()
        self.partial = self._batch(order, rep)

    @property
    def count(self) -> int:
        return len(self.rounds) * self.n if self.rounds else int(self.partial.shape[1])

    def estimate(self, k: int, offset: float = 0.0) -> Estimate:
        if not self.rounds:
            return mc_estimate(self.partial[k], offset)
        x = torch.stack([r[k] for r in self.rounds])  # (rounds, N)
        if x.shape[0] < 2:
            return mc_estimate(x.reshape(-1), offset)
        return Estimate(offset + float(x.mean()), math.sqrt(self.per_round_variance(k) / x.numel()))

    def per_round_variance(self, k: int) -> float:
        """Within-input variance of term k per query (what one more round reduces): over the
        queries, or over the replicas' means × the queries per replica beyond R rounds."""
        x = torch.stack([r[k] for r in self.rounds])
        c = self.cycle
        if c is None or x.shape[0] <= c:
            return float(x.var(dim=0).mean())
        cycles = x.shape[0] // c
        return float(x.view(cycles, c, self.n).mean(0).var(dim=0).mean()) * cycles


def _layer_information(
    s: Tensor,
    labels: Tensor | None,
    sigma: float,
    n_mc: int | None,
    kw: dict,
) -> dict[str, Estimate]:
    n, r, d = s.shape
    layer = _Layer(s, labels, sigma, kw["tol"], kw["chunk"])
    terms = _Terms(layer, kw["generator"])
    keys = (0, 1) if labels is not None else (0,)
    if n_mc is not None and n_mc < n:
        terms.draw_subset(n_mc)
    elif n_mc is not None:
        terms.draw_rounds(terms.whole(math.ceil(n_mc / n)))
    else:
        _draw_to_target(terms, keys, n, kw["target_stderr"])
    h0 = gaussian_entropy(d, sigma)
    return {
        "I_XT": terms.estimate(0),
        "I_TY": terms.estimate(1) if labels is not None else _NAN,
        "h_T": terms.estimate(2, h0),
        "h_T_given_X": Estimate(h0, 0.0) if layer.coincide else terms.estimate(3, h0),
        "h_T_given_Y": terms.estimate(4, h0) if labels is not None else _NAN,
    }


def _draw_to_target(terms: _Terms, keys: tuple[int, ...], n: int, target: float) -> None:
    """Pilot rounds, then as many more as the within-input variance asks for (checked twice,
    since the pilot's variance is itself an estimate), at most 10⁶ queries in all."""
    cap = max(2, terms.whole(MAX_DEFAULT_N_MC // n, up=False))
    terms.draw_rounds(terms.whole(max(2, math.ceil(_PILOT / n))))
    for _ in range(3):
        worst = max(terms.estimate(k).stderr for k in keys)
        if worst <= target or len(terms.rounds) >= cap:
            break
        within = max(terms.per_round_variance(k) for k in keys)
        wanted = max(math.ceil(within / (n * target**2)), len(terms.rounds) + 1)
        terms.draw_rounds(min(terms.whole(wanted), cap) - len(terms.rounds))
    worst = max(terms.estimate(k).stderr for k in keys)
    if worst > target:
        warnings.warn(
            f"SP: {terms.count} queries (the cap) leave a standard error of {worst:.4f} nats, "
            f"above the target {target}",
            RuntimeWarning,
            stacklevel=4,
        )


def _replicas_coincide(s: Tensor, sigma: float) -> bool:
    """Whether every input's replicas are one point (within 1e-6·σ): h(T|X) is then exact."""
    return float((s - s[:, :1]).abs().amax()) <= 1e-6 * sigma
