"""Exact information of quantized networks (Lorenzen, Igel & Nielsen 2022): no bins, no noise, no
Monte Carlo."""

from __future__ import annotations

import logging
import os

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.estimators import exact_information
from infoflow.specs import checked

log = logging.getLogger(__name__)


class ExactCallback(ScheduledCallback):
    """H(T_ℓ), I(X;T_ℓ) = H(T_ℓ) and I(T_ℓ;Y) of every measured layer of a quantized network
    (``model.quantize_bits``), computed exactly from the codes of the evaluation set (its
    empirical distribution; :func:`~infoflow.estimators.exact_information`): rows of estimator
    ``exact``, every member at once. A network that is not quantized has continuous layers,
    where exact information is ln n and says nothing: skipped.

    Args:
        output_dir, n_points, every_n_epochs: see :class:`ScheduledCallback`.
    """

    name = "exact"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)

    def measure(self, m: Measurement) -> list[MemberValue]:
        if getattr(m.network, "quantize_bits", None) is None:
            log.debug("exact information skipped: the network is not quantized")
            return []
        rows: list[MemberValue] = []
        for layer, reps in enumerate(m.noiseless, start=1):
            per_member = exact_information(reps, m.labels)
            for seed, values in zip(m.seeds, per_member, strict=True):
                rows += [(seed, layer, "exact", q, v, None) for q, v in values.items()]
        return rows
