"""Any ``nn.Module`` as a noisy network measured at named layers (Goldfeld et al.'s noisy network
for any architecture), and K of them trained as one through ``torch.func``.

The module's ``forward`` returns logits; the outputs of the named submodules are the measured
representations T_ℓ, taken by forward hooks. With β > 0 a hook adds Gaussian noise of std β to each
named layer's output in training mode (and in eval mode with ``noise_at_eval``), so the rest of the
network sees T_ℓ = S_ℓ + β·Z. Outputs are flattened to (B, d_ℓ) for measuring; the noise is added
in the layer's own shape.

Ensembles (K > 1): the K members are built one per seed, their parameters and buffers stacked
(``torch.func.stack_module_state``) into ordinary ``nn.Parameter`` s of shape (K, ...), and run with
``torch.func.functional_call`` under ``vmap`` (noise drawn independently per member). A module
that vmap cannot run (in-place buffer updates such as BatchNorm's running statistics in training,
data-dependent Python control flow, ``.item()``) is refused with one line saying why, when the
ensemble is built. Unlike :class:`~infoflow.models.mlp.MLPEnsemble`, the members' training noise
comes from torch's global generator (seeded by the run's seed), so member k of a custom ensemble
is not bit for bit the single run of its seed; its initialisation, data split and batch order
are.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Annotated

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from infoflow.models.network import INIT_STREAM, LayerOutput, check_beta, check_seeds, member_seed
from infoflow.models.quantize import Quantize
from infoflow.specs import checked, integer, list_of, number, text

WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class NamedLayers(nn.Module):
    """K copies of a module measured at its named layers, with noise of std β after each.

    Args:
        net: a function that builds the module (called once per member, under that member's
            seed), or a module (then K = 1: its parameters are copied, so train this object's
            ``parameters()``, not the module's).
        layers: names of submodules (as in ``net.named_modules()``, e.g. ``"body.1"``), in the
            order they run; their outputs are T_1 … T_L.
        seeds: one per member.
        beta: std of the Gaussian noise added after each named layer; 0 is deterministic.
        noise_at_eval: keep the noise on in eval mode.
        orth_alpha: > 0: after every optimizer step W ← W − α(W Wᵀ W − W) on every weight layer
            but the last (Goldfeld et al.); 0 is off.
        quantize_bits: k: each named layer's output quantized to k bits (straight-through
            gradient) on the range of the batch at hand, each member its own (the rule Lorenzen
            et al. use for tanh layers; weights stay in full precision): the measured layers are
            then discrete, and the ``exact`` callback measures them exactly. Needs β = 0.

    Example:
        >>> body = lambda: nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
        >>> net = NamedLayers(body, ["1"], seeds=[0, 1], beta=0.1)
        >>> x = torch.zeros(2, 5, 4)  # (K, B, features)
        >>> net(x).shape, net.layer_outputs(x, noise=True)[0].noisy.shape
        (torch.Size([2, 5, 2]), torch.Size([2, 5, 3]))
    """

    @checked
    def __init__(
        self,
        net: Callable[[], nn.Module] | nn.Module,
        layers: Annotated[
            Sequence[str],
            list_of(text(), "a list of submodule names, e.g. [body.1,body.3]", scalar=True),
        ],
        *,
        seeds: Sequence[int] = (0,),
        beta: float = 0.0,
        noise_at_eval: bool = False,
        orth_alpha: Annotated[float, number(0)] = 0.0,
        quantize_bits: Annotated[int | None, integer(1, 16).or_null("(no quantization)")] = None,
    ) -> None:
        super().__init__()
        self.seeds = check_seeds(seeds)
        self.beta = check_beta(beta)
        if quantize_bits is not None and self.beta > 0:
            raise ValueError(
                f"quantize_bits={quantize_bits} needs beta=0: Gaussian noise makes the quantized "
                "layers continuous again (set noise.beta=0)"
            )
        self.quantize_bits = quantize_bits
        self._quantize = Quantize(quantize_bits, mode="batch") if quantize_bits else None
        self.noise_at_eval = noise_at_eval
        self.orth_alpha = float(orth_alpha)
        self.layer_names = _check_layer_names(layers)
        members = _build_members(net, self.seeds)
        _find_layers(members[0], self.layer_names)  # one line naming what exists if absent
        self._noise_on = self._keep = False
        self._captured: list[LayerOutput] | None = None
        # Members' parameters and buffers stacked (K, ...), K = 1 included: one layout for every
        # network (weights() are member-first), one way to run them.
        params, buffers = stack_module_state(members)
        self.params = nn.ParameterDict({_key(n): nn.Parameter(p) for n, p in params.items()})
        for n, b in buffers.items():
            self.register_buffer(f"buffer__{_key(n)}", b)
        self._buffer_names = list(buffers)
        # The members' shared structure, without data: functional_call supplies the tensors. Not
        # a submodule (no .to(), no state_dict entries): only its hooks and structure are used.
        object.__setattr__(self, "_base", copy.deepcopy(members[0]).to("meta"))
        for module in _find_layers(self._base, self.layer_names):
            module.register_forward_hook(self._hook)

    def train(self, mode: bool = True) -> NamedLayers:
        """Train or eval mode, for the module's own layers too (dropout, batch norm)."""
        super().train(mode)
        self._base.train(mode)
        return self

    # ---------------------------------------------------------------------------- the hook

    def _hook(self, module: nn.Module, args: tuple, out: object) -> Tensor:
        if not isinstance(out, Tensor):
            raise TypeError(
                f"a named layer returned {type(out).__name__}, not a tensor: name a submodule "
                "whose output is one tensor"
            )
        if self._quantize is not None:
            out = self._quantize(out)  # under vmap: one member's batch, its own range
        noisy = out + self.beta * torch.randn_like(out) if self._noise_on else out
        if self._captured is not None:
            self._captured.append(LayerOutput(out.flatten(1), noisy.flatten(1)))
        return noisy

    # ---------------------------------------------------------------------------- running

    def _buffers_dict(self) -> dict[str, Tensor]:
        return {n: getattr(self, f"buffer__{_key(n)}") for n in self._buffer_names}

    def _member(self, params: dict, buffers: dict, x: Tensor) -> tuple[Tensor, tuple]:
        """One member's logits and captured layer outputs (under vmap: every member's)."""
        self._captured = [] if self._keep else None
        p = {n.replace("__", "."): t for n, t in params.items()}
        logits = functional_call(self._base, (p, buffers), (x,))
        return logits, tuple(self._captured or ())

    def _call(self, x: Tensor, *, noise: bool, keep: bool) -> tuple[Tensor, list[LayerOutput]]:
        """Logits (K, B, C) and, if ``keep``, the named layers' outputs (K, B, d) of x (K, B, ...)."""
        self._noise_on, self._keep = noise and self.beta > 0, keep
        params, buffers = dict(self.params), self._buffers_dict()
        try:
            if len(self.seeds) == 1:  # no vmap for one member: any module runs
                one = {n: t[0] for n, t in params.items()}
                logits, outs = self._member(one, {n: b[0] for n, b in buffers.items()}, x[0])
                return logits[None], [LayerOutput(s[None], t[None]) for s, t in outs]
            logits, outs = vmap(self._member, randomness="different")(params, buffers, x)
            return logits, [LayerOutput(*o) for o in outs]
        finally:
            self._noise_on, self._captured = False, None

    def forward(self, x: Tensor) -> Tensor:
        """Logits (K, B, n_classes) of inputs (K, B, ...); noise on in training mode (or with
        ``noise_at_eval``)."""
        return self._call(x, noise=self.training or self.noise_at_eval, keep=False)[0]

    def layer_outputs(self, x: Tensor, *, noise: bool) -> list[LayerOutput]:
        """Every named layer's (S_ℓ, T_ℓ), (K, B, d_ℓ) each, noise on or off whatever the mode."""
        return self._call(x, noise=noise, keep=True)[1]

    def weights(self) -> list[Tensor]:
        """Every Linear/Conv weight in module order (the read-out last), stacked (K, out, ...)."""
        names = [
            f"{n}.weight" for n, m in self._base.named_modules() if isinstance(m, WEIGHT_LAYERS)
        ]
        return [self.params[_key(n)] for n in names]

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Goldfeld et al.'s orthonormality step on every weight layer but the last (kernels as
        (out, in·k·k)), when ``orth_alpha`` > 0."""
        if self.orth_alpha <= 0:
            return
        for w in self.weights()[:-1]:
            m = w.view(w.shape[0], w.shape[1], -1)  # (K, out, in·k·k), the same memory
            m -= self.orth_alpha * (m @ m.transpose(1, 2) @ m - m)


def _key(name: str) -> str:
    """A parameter name as a ParameterDict key ('.' is not allowed there)."""
    return name.replace(".", "__")


def _check_layer_names(layers: Sequence[str]) -> list[str]:
    names = [layers] if isinstance(layers, str) else [str(n) for n in layers]
    if not names:
        raise ValueError("layers must name at least one submodule to measure")
    if len(set(names)) != len(names):
        raise ValueError(f"layers must not repeat a name, got {names}")
    return names


def _find_layers(module: nn.Module, names: list[str]) -> list[nn.Module]:
    """The submodules called ``names``, or one ValueError line listing the names there are."""
    found = dict(module.named_modules())
    missing = [n for n in names if n not in found or n == ""]
    if missing:
        have = [n for n in found if n]
        shown = (", ".join(have[:40]) + (", ..." if len(have) > 40 else "")) or "none"
        raise ValueError(
            f"layers: {type(module).__name__} has no submodule {missing[0]!r}; it has: {shown}"
        )
    return [found[n] for n in names]


def _build_members(net: Callable[[], nn.Module] | nn.Module, seeds: list[int]) -> list[nn.Module]:
    """One module per seed, each built under its member's own initialisation seed."""
    if isinstance(net, nn.Module):
        if len(seeds) > 1:
            raise ValueError(
                "an ensemble needs a function that builds the module (one per member), not a module"
            )
        return [net]
    members = []
    for s in seeds:
        with torch.random.fork_rng():
            torch.manual_seed(member_seed(s, INIT_STREAM))
            module = net()
        if not isinstance(module, nn.Module):
            raise TypeError(f"net must build an nn.Module, got {type(module).__name__}")
        members.append(module)
    return members
