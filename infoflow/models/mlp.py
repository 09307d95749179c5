"""K fully connected networks as one (the SZT net 12-10-7-5-4-3-2, the single neuron): stacked
weights (K, out, in) per layer, run with batched products.

Stacked parameters rather than ``torch.func`` (as :class:`~infoflow.models.named_layers.NamedLayers`
does for any module): an MLP is affine maps and activations, so a batched matmul *is* the
ensemble, with ordinary ``nn.Parameter`` s that every optimizer, checkpoint and gradient hook
handles, and per-member noise generators with no vmap randomness rules. Members never mix: the
loss is the sum of the members' mean losses, so member k's gradient is its own loss's, and an
elementwise optimizer (Adam, SGD) gives each member exactly its own update and state.

Each member initialises from its own seed (``seeds[k]``) and draws its training noise from its
own generator: member k of an ensemble is the single run of seed ``seeds[k]``
(tests/models/test_ensemble.py checks it after hundreds of steps). A single run is K = 1.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from torch import Tensor, nn

from infoflow.models.network import (
    INIT_STREAM,
    NOISE_STREAM,
    LayerOutput,
    check_beta,
    check_seeds,
    member_seed,
)
from infoflow.models.quantize import Quantize, quantize_weight
from infoflow.specs import POSITIVE_INT, checked, choice, integer, list_of, number

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "linear": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class StackedLinear(nn.Module):
    """K affine maps y_k = W_k x_k + b_k at once: weight (K, out, in), bias (K, out), on
    feature-major activations (K, features, batch)."""

    def __init__(self, weight: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(bias)

    def forward(self, t: Tensor) -> Tensor:
        """t (K, in, B) -> (K, out, B). Feature-major because the batched product is then K
        (out × in)·(in × B) products with long rows: 3-15× faster on a CPU than batch-major
        (K, B, in)·(K, in, out) for the SZT widths (measured with K = 50, B = 512)."""
        return torch.baddbmm(self.bias.unsqueeze(2), self.weight, t)


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> Tensor:
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def _init(a: int, b: int, init: str, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """A (b × a) weight and its bias: ``pytorch``, nn.Linear's default (both uniform on
    ±1/sqrt(fan_in)); ``glorot``, Keras's default (weight uniform on ±sqrt(6/(fan_in +
    fan_out)), bias 0: Lorenzen et al.'s quantized networks)."""
    if init == "glorot":
        return _uniform((b, a), math.sqrt(6.0 / (a + b)), generator), torch.zeros(b)
    bound = 1.0 / math.sqrt(a)
    return _uniform((b, a), bound, generator), _uniform((b,), bound, generator)


#: Noise of every hidden layer for one pass: (K, sum of widths, B) → β·Z, or None (no noise).
NoiseFn = Callable[[int, torch.device], Tensor] | None


class MLPEnsemble(nn.Module):
    """K MLPs ``in_features → hidden… → n_classes`` with Gaussian noise of std β after every hidden
    activation (none on the input or the logits).

    Args:
        seeds: one per member; member k initialises from ``seeds[k]`` and draws its training noise
            from its own generator of that seed.
        in_features, hidden, n_classes: the widths (hidden: one entry per measured layer).
        activation: tanh | relu | leaky_relu | linear.
        beta: the noise's std; 0 is deterministic.
        noise_at_eval: keep the noise on in eval mode (loss and accuracy reported with noise).
        orth_alpha: > 0: after every optimizer step W ← W − α(W Wᵀ W − W) on the hidden weights
            (Goldfeld et al.'s orthonormality regularisation); 0 is off.
        quantize_bits: k: hidden activations, logits and weights quantized to k bits in training
            and measuring, with a straight-through gradient, as Lorenzen et al. (2022) do (their
            TensorFlow rules, :mod:`infoflow.models.quantize`): tanh layers on the range of the
            batch at hand, other activations and the logits on a moving-average range; the
            weights of the read-out and of non-tanh layers on their own range. The layers are
            then discrete: the ``exact`` callback measures their information exactly. Needs β = 0.
        init: ``pytorch`` (nn.Linear's default) or ``glorot`` (Keras's: Lorenzen et al.).
        init_scale: the hidden layers' initial weights and biases times this (the read-out's
            unchanged): 1 is the init's own; small values start the hidden units near their
            linear regime, as the single neuron's figure needs (Goldfeld et al., Fig. 4: I(X;T)
            must start low to rise toward ln 4 before it falls toward ln 2).
    """

    @checked
    def __init__(
        self,
        seeds: Sequence[int] = (0,),
        in_features: Annotated[int, POSITIVE_INT] = 12,
        hidden: Annotated[
            Sequence[int],
            list_of(POSITIVE_INT, "a non-empty list of positive integers, e.g. [10,7,5]"),
        ] = (10, 7, 5, 4, 3),
        n_classes: Annotated[int, integer(2)] = 2,
        activation: Annotated[str, choice(*ACTIVATIONS)] = "tanh",
        beta: float = 0.0,
        noise_at_eval: bool = False,
        orth_alpha: Annotated[float, number(0)] = 0.0,
        quantize_bits: Annotated[int | None, integer(1, 16).or_null("(no quantization)")] = None,
        init: Annotated[str, choice("pytorch", "glorot")] = "pytorch",
        init_scale: Annotated[float, number(0, lo_open=True)] = 1.0,
    ) -> None:
        super().__init__()
        self.seeds = check_seeds(seeds)
        self.beta = check_beta(beta)
        if quantize_bits is not None and self.beta > 0:
            raise ValueError(
                f"quantize_bits={quantize_bits} needs beta=0: Gaussian noise makes the quantized "
                "layers continuous again (set noise.beta=0)"
            )
        if not list(hidden) or min(hidden) < 1 or in_features < 1 or n_classes < 2:
            raise ValueError(
                f"widths must be positive (hidden non-empty, n_classes >= 2), got in_features="
                f"{in_features}, hidden={list(hidden)}, n_classes={n_classes}"
            )
        self.noise_at_eval = noise_at_eval
        self.orth_alpha = float(orth_alpha)
        self.hidden_widths = [int(w) for w in hidden]
        self.layer_names = [str(k) for k in range(1, len(self.hidden_widths) + 1)]
        widths = [in_features, *self.hidden_widths, n_classes]
        gens = [torch.Generator().manual_seed(member_seed(s, INIT_STREAM)) for s in self.seeds]
        layers = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            # Per member: weight then bias, layer after layer, each from the member's own stream.
            scale = init_scale if i < len(self.hidden_widths) else 1.0
            pairs = [tuple(t * scale for t in _init(a, b, init, g)) for g in gens]
            layers.append(StackedLinear(*(torch.stack(p) for p in zip(*pairs, strict=True))))
        self.layers = nn.ModuleList(layers)
        self.activation = make_activation(activation)
        self.quantize_bits = quantize_bits
        self.quantizers: nn.ModuleList | None = None
        if quantize_bits is not None:
            k, mode = len(self.seeds), "batch" if activation == "tanh" else "ema"
            self.quantizers = nn.ModuleList(
                [Quantize(quantize_bits, mode=mode, members=k) for _ in self.hidden_widths]
                + [Quantize(quantize_bits, mode="ema", members=k)]  # the logits
            )
            # Lorenzen et al. quantize the weights of the read-out and of non-tanh layers.
            self._quantized_weights = [activation != "tanh"] * len(self.hidden_widths) + [True]
        self._noise_gens: list[torch.Generator] | None = None
        self._restored_noise: list[Tensor] | None = None
        self._ahead: Tensor | None = None  # training noise drawn ahead (draw_noise_ahead)
        self._ahead_spans: list[tuple[int, int]] = []
        self._pack()
        self.register_load_state_dict_post_hook(MLPEnsemble._pack_after_load)

    # ----------------------------------------------------------------------- flat parameters

    def _pack(self) -> None:
        """Make every parameter's data a view of one vector and its gradient a view of another
        (tensors in ``parameters()`` order, each member-major): an elementwise optimizer then
        steps all of them as one tensor (:class:`~infoflow.models.flat_adam.FlatAdam`: 6
        operations a step instead of 6 per tensor). The parameters stay ordinary
        ``nn.Parameter`` s: state_dict keys, checkpoints, hooks and any optimizer unchanged."""
        params = list(self.parameters())
        with torch.no_grad():
            flat = torch.cat([p.reshape(-1) for p in params])
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
            flat_grad = torch.cat([g.reshape(-1) for g in grads])
        views, grad_views, start = [], [], 0
        for p in params:
            views.append(flat[start : start + p.numel()].view_as(p))
            grad_views.append(flat_grad[start : start + p.numel()].view_as(p))
            start += p.numel()
        for p, v, g in zip(params, views, grad_views, strict=True):
            p.data, p.grad = v, g
        self._flat = (flat, flat_grad)
        self._flat_params = list(zip(params, views, grad_views, strict=True))

    def _packed(self) -> bool:
        """Whether every parameter and gradient still lives in the flat vectors (not after
        ``zero_grad(set_to_none=True)`` or a replaced ``.data``). A few µs: checked every step."""
        return all(p.grad is g and p.data_ptr() == v.data_ptr() for p, v, g in self._flat_params)

    @staticmethod
    def _pack_after_load(module: MLPEnsemble, incompatible_keys: object) -> None:
        # load_state_dict(assign=True) puts new Parameters in place of the packed ones.
        if len(module._flat_params) != len(list(module.parameters())) or not all(
            p is q for p, (q, _, _) in zip(module.parameters(), module._flat_params, strict=False)
        ):
            module._pack()

    def flat_parameters(self) -> tuple[Tensor, Tensor]:
        """Every parameter and its gradient as one vector each (views of what the parameters hold:
        writing them writes the parameters), packed again first if anything replaced them."""
        if not self._packed():
            self._pack()
        return self._flat

    def _apply(self, fn: Callable, recurse: bool = True) -> MLPEnsemble:
        # .to(), .double(), ... give the parameters new storage: pack them into one vector again.
        super()._apply(fn, recurse)
        self._pack()
        return self

    # -------------------------------------------------------------------------------- noise

    def _noise_generators(self, device: torch.device) -> list[torch.Generator]:
        # Made on first use, on the device the members run on; a restored state applies then.
        if self._noise_gens is None or self._noise_gens[0].device != device:
            self._noise_gens = [
                torch.Generator(device=device).manual_seed(member_seed(s, NOISE_STREAM))
                for s in self.seeds
            ]
            if self._restored_noise is not None:
                for g, state in zip(self._noise_gens, self._restored_noise, strict=True):
                    g.set_state(state)
                self._restored_noise = None
        return self._noise_gens

    def noise_state(self) -> list[Tensor]:
        """The members' training-noise generators' states (for checkpoints); empty before any."""
        return [g.get_state() for g in self._noise_gens or []]

    def load_noise_state(self, states: list[Tensor]) -> None:
        """Restore :meth:`noise_state` (applied when the noise is next drawn)."""
        self._noise_gens, self._restored_noise = None, (list(states) or None)
        self._ahead, self._ahead_spans = None, []

    def draw_noise_ahead(self, batch_sizes: Sequence[int], device: torch.device) -> bool:
        """Draw now the training noise of the next training passes, of these batch sizes: one
        ``normal_`` per member into a kept buffer, whose slices the passes then take (an epoch's
        noise in K draws, not K per step). The numbers are those the passes would draw one by
        one: torch's CPU normal fills blocks of 16 from the stream's uniforms (and redraws the last
        16 of a draw that is not a multiple of 16), so one draw equals the passes' draws when every
        pass but the last draws a multiple of 16 numbers and the last at least 16. Otherwise, off
        the CPU, or when the passes draw no noise, nothing is drawn ahead; returns whether it was."""
        width, sizes = sum(self.hidden_widths), [int(b) for b in batch_sizes]
        counts = [width * b for b in sizes]
        if (
            self.beta == 0
            or not (self.training or self.noise_at_eval)
            or device.type != "cpu"
            or not counts
            or any(c % 16 for c in counts[:-1])
            or counts[-1] < 16
        ):
            return False
        total, k = sum(sizes), len(self.seeds)
        if self._ahead is None or self._ahead.shape != (k, width * total):
            self._ahead = torch.empty(k, width * total, device=device)
        for z, g in zip(self._ahead, self._noise_generators(device), strict=True):
            z.normal_(generator=g)
        self._ahead.mul_(self.beta)  # as beta * randn(...) per pass: the same products
        ends = list(itertools.accumulate(sizes))
        # Popped from the end: the first pass's span last in the list.
        self._ahead_spans = [(e - b, e) for b, e in zip(sizes, ends, strict=True)][::-1]
        return True

    def _training_noise(self, batch: int, device: torch.device) -> Tensor:
        """β·Z of every hidden layer, (K, Σ d_ℓ, B), member k's Z from its own generator (one draw
        per member and step for all layers, or its slice of what was drawn ahead)."""
        width = sum(self.hidden_widths)
        if self._ahead_spans:
            a, e = self._ahead_spans.pop()
            if e - a != batch:
                raise RuntimeError(f"noise was drawn ahead for a batch of {e - a}, not {batch}")
            return self._ahead[:, width * a : width * e].view(len(self.seeds), width, batch)
        gens = self._noise_generators(device)
        z = torch.stack([torch.randn(width, batch, generator=g, device=device) for g in gens])
        return self.beta * z

    def _measurement_noise(self, batch: int, device: torch.device) -> Tensor:
        """β·Z from torch's global generator: measuring never advances the training streams."""
        k = len(self.seeds)
        return self.beta * torch.randn(k, sum(self.hidden_widths), batch, device=device)

    # ------------------------------------------------------------------------------ forward

    def _run(self, x: Tensor, noise: Tensor | None, keep: bool) -> tuple[Tensor, list]:
        """The one pass of every use: logits (K, B, C) of x (K, B, in) and, if ``keep``, every
        hidden layer's (S_ℓ, T_ℓ) as (K, B, d_ℓ). ``noise``: (K, Σ d_ℓ, B) or None.

        The layers' and the activation's ``forward`` are called directly: ``Module.__call__``'s
        hook machinery costs ~0.1 ms a pass, as much as the SZT net's products (forward hooks on
        the submodules therefore do not fire; the layers are measured by ``layer_outputs``)."""
        parts = noise.split(self.hidden_widths, dim=1) if noise is not None else None
        t = x.transpose(1, 2)  # feature-major inside (StackedLinear)
        outputs = []
        activate, (*hidden, readout) = self.activation.forward, self.layers
        for i, layer in enumerate(hidden):
            s = self._quantized(i, activate(self._affine(i, layer, t)))
            t = s + parts[i] if parts is not None else s
            if keep:
                outputs.append(LayerOutput(s.transpose(1, 2), t.transpose(1, 2)))
        return self._quantized(-1, self._affine(-1, readout, t)).transpose(1, 2), outputs

    def _affine(self, i: int, layer: StackedLinear, t: Tensor) -> Tensor:
        """Layer i's affine map, with its weight quantized where the network is."""
        if self.quantizers is None or not self._quantized_weights[i]:
            return layer.forward(t)
        w = quantize_weight(layer.weight, self.quantize_bits, members=len(self.seeds))
        return torch.baddbmm(layer.bias.unsqueeze(2), w, t)

    def _quantized(self, i: int, s: Tensor) -> Tensor:
        return s if self.quantizers is None else self.quantizers[i](s)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (K, B, n_classes) of inputs (K, B, in_features): member k sees x[k]. Noise on in
        training mode (or with ``noise_at_eval``), from the members' own generators."""
        noisy = (self.training or self.noise_at_eval) and self.beta > 0
        noise = self._training_noise(x.shape[1], x.device) if noisy else None
        return self._run(x, noise, keep=False)[0]

    def layer_outputs(self, x: Tensor, *, noise: bool) -> list[LayerOutput]:
        """Every hidden layer's (S_ℓ, T_ℓ), (K, B, d_ℓ) each, with the noise on or off whatever
        the mode (see :class:`~infoflow.models.network.Network`)."""
        z = self._measurement_noise(x.shape[1], x.device) if noise and self.beta > 0 else None
        return self._run(x, z, keep=True)[1]

    def weights(self) -> list[Tensor]:
        """Every layer's stacked weight (K, out, in): hidden layers, then the read-out."""
        return [layer.weight for layer in self.layers]

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """W_k ← W_k − α(W_k W_kᵀ W_k − W_k) for every member's hidden weights (Goldfeld et al.),
        when ``orth_alpha`` > 0."""
        if self.orth_alpha > 0:
            for layer in self.layers[:-1]:
                w = layer.weight
                w -= self.orth_alpha * (w @ w.transpose(1, 2) @ w - w)
