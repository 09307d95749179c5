"""Binned H(Bin T_ℓ), I(X;Bin T_ℓ), I(Bin T_ℓ;Y) for several bin sizes at once, and KDE bounds."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Annotated

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.estimators import SCHEMES, binned_information, kde_information
from infoflow.specs import RANGE, boolean, checked, choice, integer, list_of, number
from infoflow.stopping import safe_point

log = logging.getLogger(__name__)


def _as_list(value: float | Sequence[float] | None) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]


class BinnedCallback(ScheduledCallback):
    """Binned information on the evaluation set's noiseless representations and, for noisy nets,
    on the noisy ones (estimator ``bin_noisy:...``: Goldfeld et al. show that with bin size 10β it
    tracks the clustering of representations). KDE bounds (Saxe et al.) when ``kde_noise_var``
    is set. Estimator names: ``bin:<scheme>:<size>``, ``kde_upper``, ``kde_lower``. Every member
    is binned in one call per layer and bin size.

    Args:
        output_dir, n_points, every_n_epochs: see :class:`ScheduledCallback`.
        scheme: ``tishby`` (edges = linspace(lo, hi, n_bins), Shwartz-Ziv & Tishby), ``width``
            (floor(v / bin_size), Saxe et al.) or ``adaptive`` (equal-mass bins).
        bin_size: one bin width or a list of them (computed in one pass); 0.05 = 10β for the
            default β = 0.005 (Goldfeld et al.).
        n_bins: the number of bins (``tishby``: of edges, 30 in the paper), instead of bin_size.
        value_range: [lo, hi] for ``tishby`` (None: [-1, 1]) and ``width`` with ``n_bins``.
        noisy: also bin the noisy representations of noisy nets.
        kde_noise_var: σ² of Saxe et al.'s KDE bounds (1e-3 for SZT, 0.1 for MNIST); None: off.
    """

    name = "binned"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        scheme: Annotated[str, choice(*SCHEMES)] = "width",
        bin_size: Annotated[
            float | list[float] | None,
            list_of(
                number(0, lo_open=True),
                "a width > 0 or a list of them, e.g. [0.01,0.05]",
                scalar=True,
            ).or_null(),
        ] = 0.05,
        n_bins: Annotated[
            int | list[int] | None,
            list_of(integer(2), "an integer >= 2 or a list of them", scalar=True).or_null(),
        ] = None,
        value_range: Annotated[list[float] | None, RANGE.or_null("([-1, 1] for tishby)")] = None,
        noisy: Annotated[bool, boolean()] = True,
        kde_noise_var: Annotated[float | None, number(0, lo_open=True).or_null("(off)")] = None,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)
        if (bin_size is None) == (n_bins is None):
            raise ValueError("give exactly one of bin_size and n_bins")
        if scheme == "adaptive" and bin_size is not None:
            raise ValueError("the adaptive scheme takes n_bins, not bin_size")
        self.scheme = scheme
        self.bin_size = _as_list(bin_size)
        self.n_bins = _as_list(n_bins)
        self.value_range = tuple(value_range) if value_range is not None else None
        self.noisy = noisy
        self.kde_noise_var = kde_noise_var
        self._saturated: set[tuple[str, int]] = set()

    def measure(self, m: Measurement) -> list[MemberValue]:
        sizes = {"bin_size": self.bin_size} if self.bin_size else {"n_bins": self.n_bins}
        kinds = {"bin": m.noiseless}
        if self.noisy and m.beta > 0:
            kinds["bin_noisy"] = m.noisy
        rows: list[MemberValue] = []
        for kind, layers in kinds.items():
            for k, reps in enumerate(layers, start=1):
                safe_point()
                per_member = binned_information(
                    reps, m.labels, scheme=self.scheme, value_range=self.value_range, **sizes
                )
                for seed, result in zip(m.seeds, per_member, strict=True):
                    for size, quantities in result.items():
                        name = f"{kind}:{self.scheme}:{size:g}"
                        rows += [(seed, k, name, q, v, None) for q, v in quantities.items()]
        if self.kde_noise_var:
            for member, seed in enumerate(m.seeds):
                for k, reps in enumerate(m.noiseless, start=1):
                    safe_point()
                    kde = kde_information(
                        reps[member], m.labels[member], noise_var=self.kde_noise_var
                    )
                    for key, value in kde.items():
                        quantity, bound = key.rsplit("_", 1)  # I_XT_upper -> I_XT, upper
                        rows.append((seed, k, f"kde_{bound}", quantity, value, None))
        self._say_saturated(rows, m.labels.shape[1])
        return rows

    def _say_saturated(self, rows: list[MemberValue], n: int) -> None:
        """Log once per estimator and layer when H(T) = ln n: every input in its own bin."""
        for _, layer, name, quantity, value, _ in rows:
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
