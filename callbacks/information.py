"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y), h(T_ℓ), h(T_ℓ|X) for noisy networks (Goldfeld et al. 2019)."""

from __future__ import annotations

import logging

import torch

from infoflow.callbacks.schedule import ScheduledCallback, Value
from infoflow.estimators import empirical_entropy, sp_information
from infoflow.estimators.mixture import DEFAULT_TOL
from infoflow.models.module import Measurement

log = logging.getLogger(__name__)


class InformationCallback(ScheduledCallback):
    """Sample-propagation estimates per hidden layer, with standard errors.

    At each scheduled epoch, SP measures every input of the evaluation set exactly once, in order,
    when ``n_inputs`` is null (for SZT the 4096 patterns); a number N draws N inputs uniformly
    with replacement, as the papers' code did (seeded by the callback's seed and the epoch).
    Each input is propagated ``n_replicas`` times through the noisy network. Rows of estimator
    ``ceiling`` (layer empty) give what the estimates can reach: ``I_XT``, the entropy of the
    inputs measured (ln N for N distinct ones; less with duplicates), and ``I_TY``, the entropy
    of their labels; an estimate above its ceiling by more than its standard error gets a flag
    row ``<quantity>_beyond_ceiling`` (the excess) and a warning. Skipped for β = 0, where I(X;T) is
    infinite or constant (Goldfeld et al., Sec. 2) and SP has no noise to work with. Layers wider
    than ``max_width`` (e.g. convolutional ones) are skipped, with one log line.
    """

    name = "sp"

    def __init__(
        self,
        output_dir: str,
        *,
        n_replicas: int,
        n_inputs: int | None,
        n_mc: int | None,
        target_stderr: float,
        max_width: int | None,
        seed: int,
        every_n_epochs: int | None,
        n_points: int | None,
    ) -> None:
        super().__init__(output_dir, seed=seed, every_n_epochs=every_n_epochs, n_points=n_points)
        if n_replicas < 2:
            raise ValueError(f"n_replicas must be >= 2, got {n_replicas}")
        self.n_replicas = n_replicas
        self.n_inputs = n_inputs
        self.n_mc = n_mc
        self.target_stderr = target_stderr
        self.max_width = max_width
        self._said_skip = False
        self._said_beyond: set[tuple[int, str]] = set()
        self._said_wide = False

    def _say_wide_layers(self, widths: list[int]) -> None:
        """Log once which layers are too wide for SP and why."""
        if self._said_wide or self.max_width is None:
            return
        self._said_wide = True
        wide = [f"T{k} (d={d})" for k, d in enumerate(widths, start=1) if d > self.max_width]
        if wide:
            log.info(
                "SP information skipped for %s: wider than estimator.sp_max_width=%d; SP needs "
                "e^{O(d)} samples there (Goldfeld et al.), so its estimate would say nothing",
                ", ".join(wide),
                self.max_width,
            )

    def _skip_deterministic(self) -> list[Value]:
        if not self._said_skip:
            log.info("SP information skipped: noise.beta=0, a deterministic net (I(X;T) vacuous)")
            self._said_skip = True
        return []

    def measure(self, m: Measurement) -> list[Value]:
        if m.beta == 0:
            return self._skip_deterministic()
        x, y = m.inputs, m.labels
        self._say_wide_layers(m.widths)
        if self.n_inputs is not None:  # an explicit N: drawn with replacement, as the papers did
            gen = torch.Generator().manual_seed(m.seed * 1_000_003 + m.epoch)
            idx = torch.randint(len(x), (self.n_inputs,), generator=gen).to(x.device)
            x, y = x[idx], y[idx]
        result = sp_information(
            m.sample_fn,
            x,
            y,
            sigma=m.beta,
            n_replicas=self.n_replicas,
            n_mc=self.n_mc,
            target_stderr=self.target_stderr,
            max_width=self.max_width,
        )
        values = [
            (layer + 1, "sp", quantity, est.value, est.stderr)
            for layer, quantities in result.items()
            for quantity, est in quantities.items()
        ]
        if not values:
            return []
        ceilings = {"I_XT": empirical_entropy(x), "I_TY": empirical_entropy(y)}
        values += [(None, "ceiling", q, c, None) for q, c in ceilings.items()]
        return values + self._beyond_ceilings(values, ceilings, m)

    def _beyond_ceilings(
        self, values: list[Value], ceilings: dict[str, float], m: Measurement
    ) -> list[Value]:
        """A flag row ``<quantity>_beyond_ceiling`` (value: the excess, nats) for every estimate
        above its ceiling by more than its standard error (plus the density tolerance), and a
        warning the first time per layer and quantity (later ones are in the records). With
        inputs drawn with replacement, SP with finite R can exceed the entropy of the inputs
        measured: duplicates get their own replicas and look distinct."""
        flags: list[Value] = []
        for layer, estimator, quantity, value, stderr in values:
            if estimator != "sp" or quantity not in ceilings:
                continue
            excess = value - ceilings[quantity]
            # Each log-density is within DEFAULT_TOL: a difference of two, within twice that.
            if excess <= (stderr or 0.0) + 2 * DEFAULT_TOL:
                continue
            flags.append((layer, "sp", f"{quantity}_beyond_ceiling", excess, stderr))
            if (layer, quantity) not in self._said_beyond:  # once per layer and quantity
                self._said_beyond.add((layer, quantity))
                log.warning(
                    "seed %d, epoch %d, layer %d: SP %s = %.4f nats exceeds its ceiling %.4f "
                    "(the entropy of the %s measured) by more than its stderr %.4f; flagged "
                    "in information.csv (%s_beyond_ceiling), later ones without this warning",
                    m.seed, m.epoch, layer, quantity, value, ceilings[quantity],
                    "inputs" if quantity == "I_XT" else "labels", stderr or 0.0, quantity,
                )  # fmt: skip
        return flags
