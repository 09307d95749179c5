"""One scheduled epoch's measurement context, built once and shared by every measuring callback.

:func:`measurement` asks the module (a :class:`~infoflow.callbacks.protocol.Measurable`) for its
network and evaluation data and returns the epoch's :class:`Measurement`: the representations of
every member and layer, each computed at most once, on first use, by the network's own forward
(:meth:`~infoflow.models.network.Network.layer_outputs`: no second forward for measuring), and
the SP sample function. The caller sets the mode (:func:`infoflow.callbacks.schedule.measuring`).
"""

from __future__ import annotations

import weakref
from functools import cached_property

import torch
from torch import Tensor

from infoflow.callbacks.protocol import Measurable
from infoflow.errors import DivergenceError, ModelError
from infoflow.models.network import LayerOutput, Network

#: Inputs per forward pass when computing a whole set's representations (bounded memory).
CHUNK = 4096


class Measurement:
    """Every member's view of its evaluation set at one epoch.

    Attributes:
        epoch: completed training epochs.
        network: the :class:`~infoflow.models.network.Network` measured.
        inputs, labels: (K, n, ...) and (K, n), member k's evaluation set.
        seeds, beta, layer_names: the network's.
    """

    def __init__(self, network: Network, inputs: Tensor, labels: Tensor, epoch: int) -> None:
        k = len(network.seeds)
        if labels.ndim == 1:  # one evaluation set for every member
            inputs = inputs.unsqueeze(0).expand(k, *inputs.shape)
            labels = labels.unsqueeze(0).expand(k, *labels.shape)
        if labels.ndim != 2 or labels.shape[0] != k or inputs.shape[:2] != labels.shape:
            raise ModelError(
                f"measurement_data must give inputs (n, ...) and labels (n,), or (K={k}, n, ...) "
                f"and (K, n); got {tuple(inputs.shape)} and {tuple(labels.shape)}"
            )
        self.network, self.inputs, self.labels, self.epoch = network, inputs, labels, epoch
        self.seeds: list[int] = list(network.seeds)
        self.beta: float = float(network.beta)
        self.layer_names: list[str] = list(network.layer_names)

    def _pass(self, noise: bool) -> list[LayerOutput]:
        # A quantized network measures its whole set in one pass: its layers quantize on the
        # range of the batch at hand, and one grid for all inputs is what makes the codes exact.
        n = self.inputs.shape[1]
        chunk = n if getattr(self.network, "quantize_bits", None) else CHUNK
        parts = [
            self._finite(self.network.layer_outputs(self.inputs[:, i : i + chunk], noise=noise))
            for i in range(0, n, chunk)
        ]
        layers = zip(*parts, strict=True)  # per layer, its output of every chunk
        return [LayerOutput(*(torch.cat(z, dim=1) for z in zip(*o, strict=True))) for o in layers]

    def _finite(self, outputs: list[LayerOutput]) -> list[LayerOutput]:
        """``outputs`` if every member's pre-noise representations are finite; else one line
        naming the epoch, the layer and the members (:class:`~infoflow.errors.DivergenceError`),
        not an estimator's ValueError."""
        for i, (name, out) in enumerate(zip(self.layer_names, outputs, strict=True), start=1):
            s = out.pre_noise
            finite = torch.isfinite(s.reshape(s.shape[0], -1)).all(dim=1)
            if not bool(finite.all()):
                members = zip(self.seeds, finite.tolist(), strict=True)
                bad = {seed: "NaN or inf" for seed, ok in members if not ok}
                label = f"T{i}" if name == str(i) else f"T{i} ({name})"
                raise DivergenceError(
                    self.epoch, f"representations of {label}", bad, len(self.seeds), when="by"
                )
        return outputs

    @cached_property
    @torch.no_grad()
    def noiseless(self) -> list[Tensor]:
        """Every layer's S_ℓ with the noise off everywhere, (K, n, d_ℓ)."""
        return [o.pre_noise for o in self._pass(noise=False)]

    @cached_property
    @torch.no_grad()
    def _noisy_pass(self) -> list[LayerOutput]:
        return self._pass(noise=True)

    @property
    def pre_noise(self) -> list[Tensor]:
        """Every layer's S_ℓ with noise on in the earlier layers (one noisy pass), (K, n, d_ℓ)."""
        return [o.pre_noise for o in self._noisy_pass]

    @property
    def noisy(self) -> list[Tensor]:
        """Every layer's T_ℓ = S_ℓ + βZ of the same noisy pass, (K, n, d_ℓ)."""
        return [o.noisy for o in self._noisy_pass]

    @cached_property
    def widths(self) -> list[int]:
        """d_ℓ of every layer."""
        return [int(s.shape[-1]) for s in self.noiseless]

    @torch.no_grad()
    def sample(self, x: Tensor) -> list[Tensor]:
        """S_ℓ of every layer for inputs x (K, B, ...), with fresh noise in all earlier layers:
        what SP propagates (its ``sample_fn``, for every member at once), (K, B, d_ℓ) each."""
        return [o.pre_noise for o in self._finite(self.network.layer_outputs(x, noise=True))]


_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def measurement(module: Measurable, epoch: int) -> Measurement:
    """The :class:`Measurement` of ``module`` at ``epoch``: built on the first call of the epoch,
    the same object for every later call (each module keeps only its latest)."""
    m = _cache.get(module)
    if m is None or m.epoch != epoch:
        if not isinstance(module, Measurable):
            raise TypeError(
                f"{type(module).__name__} cannot be measured: it needs measured_network() and "
                "measurement_data() (infoflow.callbacks.Measurable)"
            )
        m = Measurement(module.measured_network(), *module.measurement_data(), epoch)
        _cache[module] = m
    return m
