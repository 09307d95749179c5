"""Binned H(Bin T_ℓ), I(X;Bin T_ℓ), I(Bin T_ℓ;Y) for several bin sizes at once, and KDE bounds."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import torch

from infoflow.callbacks.schedule import MemberValue, ScheduledCallback, Value
from infoflow.estimators import binned_information, binned_information_members, kde_information
from infoflow.models.module import EnsembleMeasurement, Measurement

log = logging.getLogger(__name__)


def _as_list(value: float | Sequence[float] | None) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


class BinnedCallback(ScheduledCallback):
    """Binned information on the evaluation set's noiseless representations and, for noisy nets,
    on the noisy ones (estimator ``bin_noisy:...``: Goldfeld et al. show that with bin size 10β it
    tracks the clustering of representations). KDE bounds (Saxe et al.) when ``kde_noise_var``
    is set. Estimator names: ``bin:<scheme>:<size>``, ``kde_upper``, ``kde_lower``.

    An ensemble's members are binned together, one batched call per layer and representation
    (:func:`~infoflow.estimators.binned_information_members`); KDE goes member by member.
    """

    name = "binned"

    def __init__(
        self,
        output_dir: str,
        *,
        scheme: str,
        bin_size: float | Sequence[float] | None,
        n_bins: int | Sequence[int] | None,
        value_range: Sequence[float] | None,
        noisy: bool,
        kde_noise_var: float | None,
        seed: int,
        every_n_epochs: int | None,
        n_points: int | None,
    ) -> None:
        super().__init__(output_dir, seed=seed, every_n_epochs=every_n_epochs, n_points=n_points)
        if (bin_size is None) == (n_bins is None):
            raise ValueError("give exactly one of bin_size and n_bins")
        self.scheme = scheme
        self.bin_size = _as_list(bin_size)
        self.n_bins = _as_list(n_bins)
        self.value_range = tuple(value_range) if value_range is not None else None
        self.noisy = noisy
        self.kde_noise_var = kde_noise_var
        self._saturated: set[tuple[str, int]] = set()

    def _binned(self, reps: torch.Tensor, y: torch.Tensor) -> dict:
        sizes = {"bin_size": self.bin_size} if self.bin_size else {"n_bins": self.n_bins}
        return binned_information(
            reps, y, scheme=self.scheme, value_range=self.value_range, **sizes
        )

    def _kde(self, k: int, reps: torch.Tensor, y: torch.Tensor) -> list[Value]:
        kde = kde_information(reps, y, noise_var=self.kde_noise_var)
        out = []
        for key, value in kde.items():
            quantity, bound = key.rsplit("_", 1)  # I_XT_upper -> I_XT, upper
            out.append((k, f"kde_{bound}", quantity, value, None))
        return out

    def measure_all(self, em: EnsembleMeasurement) -> list[MemberValue]:
        if len(em.members) == 1:
            return super().measure_all(em)
        sizes = {"bin_size": self.bin_size} if self.bin_size else {"n_bins": self.n_bins}
        y = em.labels
        kinds = {"bin": em.stacked("noiseless")}
        betas = {m.beta for m in em.members}
        if self.noisy and betas != {0.0}:
            kinds["bin_noisy"] = em.stacked("noisy")
        rows: list[MemberValue] = []
        for kind, layers in kinds.items():
            for k, reps in enumerate(layers, start=1):
                per_member = binned_information_members(
                    reps, y, scheme=self.scheme, value_range=self.value_range, **sizes
                )
                for m, result in zip(em.members, per_member, strict=True):
                    if kind == "bin_noisy" and m.beta == 0:
                        continue
                    for size, quantities in result.items():
                        name = f"{kind}:{self.scheme}:{size:g}"
                        rows += [(m.seed, k, name, q, v, None) for q, v in quantities.items()]
        if self.kde_noise_var:
            for m in em.members:
                for k, reps in enumerate(m.noiseless, start=1):
                    rows += [(m.seed, *v) for v in self._kde(k, reps, m.labels)]
        self._say_saturated([r[1:] for r in rows], y.shape[1])
        return rows

    def measure(self, m: Measurement) -> list[Value]:
        y = m.labels
        kinds = {"bin": m.noiseless}
        if self.noisy and m.beta > 0:
            kinds["bin_noisy"] = m.noisy
        values: list[Value] = []
        for kind, layers in kinds.items():
            for k, reps in enumerate(layers, start=1):
                for size, quantities in self._binned(reps, y).items():
                    name = f"{kind}:{self.scheme}:{size:g}"
                    values += [(k, name, q, v, None) for q, v in quantities.items()]
                if kind == "bin" and self.kde_noise_var:
                    values += self._kde(k, reps, y)
        self._say_saturated(values, len(y))
        return values

    def _say_saturated(self, values: list[Value], n: int) -> None:
        """Log once per estimator and layer when H(T) = ln n: every input in its own bin."""
        for layer, name, quantity, value, _ in values:
            if (
                quantity == "H_T"
                and value >= math.log(n) - 1e-9
                and (name, layer) not in self._saturated
            ):
                self._saturated.add((name, layer))
                log.info(
                    "%s, layer %d: every one of the %d inputs has its own bin (H = ln %d): the "
                    "estimate is saturated and tracks nothing; try larger bins",
                    name, layer, n, n,
                )  # fmt: skip
