"""Sample-propagation (SP) estimator of I(X;T_ℓ) and I(T_ℓ;Y) in noisy networks (Goldfeld et al. 2019).

Every hidden layer is T_ℓ = S_ℓ + σZ with S_ℓ the layer's pre-noise output (which carries the noise
of earlier layers). Given N inputs, each propagated R times, the N·R samples s_ij of S_ℓ define the
plug-in distributions (all in nats)

* T_ℓ ~ ĝ = (1/(NR)) Σ_ij N(s_ij, σ² I)            → h(T_ℓ)
* T_ℓ | X = x_i ~ ĝ_i = (1/R) Σ_j N(s_ij, σ² I)     → h(T_ℓ|X) = (1/N) Σ_i h(ĝ_i)
* T_ℓ | Y = y ~ ĝ_y = (1/(N_y R)) Σ_{i: y_i = y} Σ_j …  → h(T_ℓ|Y) = Σ_y p(y) h(ĝ_y)

and I(X;T_ℓ) = h(T_ℓ) − h(T_ℓ|X), I(T_ℓ;Y) = h(T_ℓ) − h(T_ℓ|Y).

All five come from ONE set of Monte Carlo queries: q = s_ij + σz drawn from input i's own mixture,
inputs spread evenly. Such q is a draw of ĝ_i, of ĝ_{y_i} and of ĝ, so

  I(X;T) = E[log ĝ_i(q) − log ĝ(q)],   I(T;Y) = E[log ĝ_{y_i}(q) − log ĝ(q)],

each averaged over the SAME queries. Per query the first term lies in (−∞, ln N] and is constant
wherever inputs are separated (ln N) or coincide (0): its variance is far below the ≈ d/2 of an
entropy on its own, so the queries needed for a given standard error of I drop by orders of
magnitude where replicas overlap (an untrained net). The entropies use the query's own component
as a control variate (see :mod:`.mixture.entropy`). Densities are within ``tol`` nats each
(:func:`.mixture.entropy.make_index`: the k-d tree walk on the CPU, block pairs on a GPU;
certified per query).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from infoflow.estimators.mixture import DEFAULT_TARGET_STDERR, DEFAULT_TOL
from infoflow.estimators.mixture.checks import check_chunk, check_n_mc, check_sigma, check_tol
from infoflow.estimators.mixture.entropy import (
    MAX_DEFAULT_N_MC,
    certified_log_sums,
    gaussian_entropy,
    make_index,
    mc_estimate,
    random_draws,
    use_index,
)
from infoflow.estimators.mixture.kernels import F64, dense_lse
from infoflow.estimators.result import Estimate

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

    Each input is replicated R times (``x.repeat_interleave(R, 0)``, a chunk of inputs per call)
    and ``sample_fn`` is called once per chunk, under ``torch.no_grad()``. Every quantity of a
    layer comes from one set of M Monte Carlo queries spread evenly over the inputs (module
    docstring): I(X;T_ℓ) and I(T_ℓ;Y) are means of per-query log-density differences, so their
    standard errors are those of the differences themselves (stratified, below). h(T_ℓ|X) is
    exactly (d/2) ln(2πeσ²), stderr 0, for a layer whose replicas coincide (the first hidden layer:
    S_1 is a function of x alone). p(y) is the empirical class frequency among ``inputs``.
    Negative estimates are returned as they are. A :class:`SampleComplexityWarning` is issued for
    layers wider than :func:`sp_width_limit` (2 ln(N·R)).

    Queries come in rounds of one per input (inputs are equal-weight strata; the standard error
    is the stratified one, so the spread between inputs is not counted as Monte Carlo error).
    Default budget: a pilot of max(2, ⌈2048/N⌉) rounds estimates the within-input variance v of
    the I(X;T) (and I(T;Y)) terms; then k = ⌈v / (N·target_stderr²)⌉ rounds in all, at most
    10⁶ queries, the pilot counting towards them. A RuntimeWarning says so when the cap leaves a
    larger standard error. Given ``n_mc`` ≥ N: ⌈n_mc/N⌉ rounds; fewer: one query each for a
    random subset of n_mc inputs (plain standard error).

    Args:
        sample_fn: maps a batch x of shape (B, ...) to one tensor per hidden layer, each (B, d_ℓ)
            (trailing dims are flattened): the pre-noise outputs S_ℓ, with fresh noise in all
            earlier layers. Its outputs stay on its device; the estimates are computed there.
        inputs: (N, ...) inputs, used as given.
        labels: optional (N,) integer class labels; without them I_TY is NaN (value and stderr).
        sigma: noise standard deviation σ > 0 of every hidden layer.
        n_replicas: R ≥ 2 propagations per input.
        n_mc: Monte Carlo queries per layer (default: from target_stderr, see above).
        n_mc_conditional: older API, when h(T|X) had queries of its own: M is the larger of the
            two.
        chunk_size: inputs per ``sample_fn`` call (default max(1, 65536 // R)).
        generator: torch.Generator for the Monte Carlo queries (not used by ``sample_fn``).
        target_stderr: standard error of I(X;T) and I(T;Y) the default M aims at, nats.
        max_width: layers wider than this are not estimated (absent from the result, and not
            warned about): convolutional layers whose estimate would be meaningless and slow.
            None: every layer.
        tol: bound on each log-density's error, nats (0: exact float64 over every centre).
        chunk_elements: most kernel values materialised at once (memory bound).

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
    sigma = check_sigma(sigma)
    tol = check_tol(tol)
    if int(n_replicas) != n_replicas or n_replicas < 2:
        raise ValueError(f"n_replicas must be an integer >= 2, got {n_replicas}")
    check_n_mc(n_mc)
    check_n_mc(n_mc_conditional, "n_mc_conditional")
    given = [k for k in (n_mc, n_mc_conditional) if k is not None]
    n_mc = max(given) if given else None
    _check_inputs(inputs, labels)
    if max_width is not None and (int(max_width) != max_width or max_width < 1):
        raise ValueError(f"max_width must be a positive integer or None, got {max_width}")
    samples = _propagate(sample_fn, inputs, int(n_replicas), chunk_size)
    wanted = {i: s for i, s in enumerate(samples) if max_width is None or s.shape[-1] <= max_width}
    result = sp_from_samples(
        list(wanted.values()),
        labels,
        sigma=sigma,
        n_mc=n_mc,
        target_stderr=target_stderr,
        tol=tol,
        generator=generator,
        chunk_elements=chunk_elements,
    )
    return {layer: result[j] for j, layer in enumerate(wanted)}


def sp_from_samples(
    samples: Sequence[Tensor],
    labels: Tensor | None = None,
    *,
    sigma: float,
    n_mc: int | None = None,
    target_stderr: float = DEFAULT_TARGET_STDERR,
    tol: float = DEFAULT_TOL,
    generator: torch.Generator | None = None,
    chunk_elements: int | None = None,
) -> dict[int, dict[str, Estimate]]:
    """:func:`sp_information` from samples already propagated: the caller ran the network (e.g.
    every member of an ensemble in one pass).

    Args:
        samples: per layer, the (N, R, d_ℓ) pre-noise samples S_ℓ: R replicas of each of N inputs.
        labels: optional (N,) integer labels of the inputs.
        sigma, n_mc, target_stderr, tol, generator, chunk_elements: as :func:`sp_information`.

    Returns:
        {position in ``samples``: {"I_XT", "I_TY", "h_T", "h_T_given_X", "h_T_given_Y":
        Estimate}}, nats.

    Example:
        >>> s = torch.tensor([[[0.0], [0.0]], [[1.0], [1.0]]])  # 2 inputs, 2 replicas, d = 1
        >>> out = sp_from_samples([s], sigma=0.01, n_mc=400, generator=torch.Generator().manual_seed(0))
        >>> round(out[0]["I_XT"].value, 3)  # two far-apart inputs: ln 2
        0.693
    """
    sigma = check_sigma(sigma)
    tol = check_tol(tol)
    check_n_mc(n_mc)
    if isinstance(samples, Tensor) or not samples:
        raise ValueError("samples must be a non-empty list of (N, R, d) tensors, one per layer")
    out = {}
    for layer, s in enumerate(samples):
        if not isinstance(s, Tensor) or s.ndim != 3 or s.shape[1] < 2:
            shape = tuple(s.shape) if isinstance(s, Tensor) else type(s).__name__
            raise ValueError(f"samples[{layer}] must be (N, R >= 2, d), got {shape}")
        if not bool(torch.isfinite(s).all()):
            raise ValueError(f"samples[{layer}] holds NaN or inf")
        if labels is not None:
            _check_inputs(s, labels)
        n, r, d = s.shape
        if d > sp_width_limit(n * r):
            warnings.warn(
                f"SP estimate of layer {layer} (width d={d}) from n={n * r} samples is not "
                f"trustworthy: its error grows like e^O(d)/sqrt(n); widths above 2 ln n = "
                f"{sp_width_limit(n * r):.1f} are flagged",
                SampleComplexityWarning,
                stacklevel=2,
            )
        kw = {
            "generator": generator,
            "target_stderr": target_stderr,
            "tol": tol,
            "chunk": check_chunk(chunk_elements, s),
        }
        out[layer] = _layer_information(s, labels, sigma, n_mc, kw)
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
_QUERY_BATCH = 1 << 16  # queries evaluated at once (bounds the index's accumulators)


class _Layer:
    """One layer's samples prepared for queries: centres, their groups (classes), the index."""

    def __init__(
        self, s: Tensor, labels: Tensor | None, sigma: float, tol: float, chunk: int
    ) -> None:
        self.s, self.sigma, self.chunk = s, sigma, chunk
        n, r, d = s.shape
        dev = s.device
        if labels is None:
            self.groups = torch.zeros(n, dtype=torch.long, device=dev)
        else:
            self.groups = torch.unique(labels.to(dev), return_inverse=True)[1]
        self.class_sizes = torch.bincount(self.groups).to(F64)
        self.centers = s.reshape(n * r, d)
        self.c_groups = self.groups.repeat_interleave(r)
        self.index = None
        if use_index(n * r, max(n, _PILOT), d, tol, dev):
            self.index = make_index(
                self.centers, sigma, tol=tol, chunk_elements=chunk, groups=self.c_groups
            )

    def log_sums(self, q: Tensor, log_own: Tensor, group: Tensor) -> tuple[Tensor, Tensor]:
        """log Σ_all k(q, c) and log Σ_{c in q's class} k(q, c) per query."""
        if self.index is not None:
            total, per_group = certified_log_sums(self.index, q, log_own, group)
            return total, per_group.gather(1, group[:, None])[:, 0]
        total = dense_lse(q[None], self.centers[None], self.sigma, self.chunk)[0]
        own_class = torch.empty_like(total)
        for g in torch.unique(group).tolist():
            rows = (group == g).nonzero()[:, 0]
            members = self.centers[self.c_groups == g]
            own_class[rows] = dense_lse(q[rows][None], members[None], self.sigma, self.chunk)[0]
        return total, own_class


def _query_terms(layer: _Layer, inp: Tensor, generator: torch.Generator | None) -> Tensor:
    """For one query per entry of ``inp``, drawn from that input's mixture: a (5, m) tensor of
    log ĝ_i − log ĝ, log ĝ_y − log ĝ, and the control-variate brackets of h(T), h(T|X), h(T|Y)."""
    s, sigma = layer.s, layer.sigma
    n, r, d = s.shape
    dev = s.device
    m = inp.numel()
    rep = (random_draws((m,), dev, generator, "rand") * r).long().clamp_(max=r - 1)
    z = random_draws((m, d), dev, generator, "randn")
    q = s[inp, rep].to(F64) + sigma * z
    own = dense_lse(q[:, None], s[inp], sigma, layer.chunk)[:, 0]  # log Σ_r k(q, s_ir)
    group = layer.groups[inp]
    total, own_class = layer.log_sums(q, own, group)
    log_i = own - math.log(r)  # the mixtures' common constant −(d/2) ln(2πσ²) cancels below
    log_y = own_class - (layer.class_sizes[group] * r).log()
    log_all = total - math.log(n * r)
    cv = -0.5 * (z * z).sum(-1)  # log φ_σ(σz) less that constant
    return torch.stack([log_i - log_all, log_y - log_all, cv - log_all, cv - log_i, cv - log_y])


class _Terms:
    """Per-query terms in rounds: each round has one query per input, so inputs are strata of
    equal weight and the standard error is the stratified one, sqrt(mean_i s_i² / (k·N)) for k
    rounds — the spread between inputs is not Monte Carlo error. With fewer queries than inputs,
    a random subset of inputs gets one query each (plain standard error)."""

    def __init__(self, layer: _Layer, generator: torch.Generator | None) -> None:
        self.layer, self.gen = layer, generator
        self.n = layer.s.shape[0]
        self.rounds: list[Tensor] = []  # (5, N) each
        self.partial: Tensor | None = None

    def draw_rounds(self, k: int) -> None:
        """k more rounds, evaluated together (larger query batches make fuller, tighter blocks)."""
        if k <= 0:
            return
        inp = torch.arange(self.n, device=self.layer.s.device).repeat(k)
        parts = [
            _query_terms(self.layer, inp[a : a + _QUERY_BATCH], self.gen)
            for a in range(0, inp.numel(), _QUERY_BATCH)
        ]
        self.rounds += list(torch.cat(parts, 1).view(5, k, self.n).unbind(1))

    def draw_subset(self, m: int) -> None:
        order = torch.argsort(random_draws((self.n,), self.layer.s.device, self.gen, "rand"))
        self.partial = _query_terms(self.layer, order[:m], self.gen)

    @property
    def count(self) -> int:
        return len(self.rounds) * self.n if self.rounds else int(self.partial.shape[1])

    def estimate(self, k: int, offset: float = 0.0) -> Estimate:
        if not self.rounds:
            return mc_estimate(self.partial[k], offset)
        x = torch.stack([r[k] for r in self.rounds])  # (rounds, N)
        if x.shape[0] < 2:
            return mc_estimate(x.reshape(-1), offset)
        stderr = float((x.var(dim=0).mean() / x.numel()).sqrt())
        return Estimate(offset + float(x.mean()), stderr)

    def per_round_variance(self, k: int) -> float:
        """Within-input variance of term k (what one more round reduces)."""
        x = torch.stack([r[k] for r in self.rounds])
        return float(x.var(dim=0).mean())


def _layer_information(
    s: Tensor,
    labels: Tensor | None,
    sigma: float,
    n_mc: int | None,
    kw: dict,
) -> dict[str, Estimate]:
    n, r, d = s.shape
    layer = _Layer(s, labels, sigma, kw["tol"], kw["chunk"])
    target = kw["target_stderr"]
    terms = _Terms(layer, kw["generator"])
    keys = (0, 1) if labels is not None else (0,)
    if n_mc is not None and n_mc < n:
        terms.draw_subset(n_mc)
    elif n_mc is not None:
        terms.draw_rounds(math.ceil(n_mc / n))
    else:
        _draw_to_target(terms, keys, n, target)
    h0 = gaussian_entropy(d, sigma)
    exact_tx = _replicas_coincide(s, sigma)
    return {
        "I_XT": terms.estimate(0),
        "I_TY": terms.estimate(1) if labels is not None else _NAN,
        "h_T": terms.estimate(2, h0),
        "h_T_given_X": Estimate(h0, 0.0) if exact_tx else terms.estimate(3, h0),
        "h_T_given_Y": terms.estimate(4, h0) if labels is not None else _NAN,
    }


def _draw_to_target(terms: _Terms, keys: tuple[int, ...], n: int, target: float) -> None:
    """Pilot rounds, then as many more as the within-input variance asks for (checked twice,
    since the pilot's variance is itself an estimate), at most 10⁶ queries in all."""
    cap = max(2, MAX_DEFAULT_N_MC // n)
    terms.draw_rounds(max(2, math.ceil(_PILOT / n)))
    for _ in range(3):
        worst = max(terms.estimate(k).stderr for k in keys)
        if worst <= target or len(terms.rounds) >= cap:
            break
        within = max(terms.per_round_variance(k) for k in keys)
        wanted = max(math.ceil(within / (n * target**2)), len(terms.rounds) + 1)
        terms.draw_rounds(min(wanted, cap) - len(terms.rounds))
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
