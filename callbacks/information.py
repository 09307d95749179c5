"""SP estimates of I(X;T_ℓ), I(T_ℓ;Y), h(T_ℓ), h(T_ℓ|X) for noisy networks (Goldfeld et al. 2019)."""

from __future__ import annotations

import logging
import os
from typing import Annotated

import torch
from torch import Tensor

from infoflow.callbacks.measurement import Measurement
from infoflow.callbacks.schedule import EveryNEpochs, MemberValue, NPoints, ScheduledCallback
from infoflow.estimators import empirical_entropy, sp_from_samples
from infoflow.estimators.mixture import DEFAULT_TOL
from infoflow.specs import POSITIVE_INT, checked, integer, number
from infoflow.stopping import safe_point

log = logging.getLogger(__name__)

#: Samples (members × inputs × replicas) propagated in one forward pass.
PROPAGATION_CHUNK = 1 << 16


class InformationCallback(ScheduledCallback):
    """Sample-propagation estimates per measured layer, with standard errors.

    At each scheduled epoch, SP measures every input of the evaluation set exactly once, in order,
    when ``n_inputs`` is null (for SZT the 4096 patterns); a number N draws N inputs uniformly
    with replacement, as the papers' code did (seeded by the member's seed and the epoch). Each
    input is propagated ``n_replicas`` times through the noisy network, every member at once.
    Rows of estimator ``ceiling`` (layer empty) give what the estimates can reach: ``I_XT``, the
    entropy of the inputs measured (ln N for N distinct ones; less with duplicates), and ``I_TY``,
    the entropy of their labels; an estimate above its ceiling by more than its standard error
    gets a flag row ``<quantity>_beyond_ceiling`` (the excess) and a warning. Skipped for β = 0,
    where I(X;T) is infinite or constant (Goldfeld et al., Sec. 2) and SP has no noise to work
    with. Layers wider than ``max_width`` (e.g. convolutional ones) are skipped, with one log line.

    Args:
        output_dir, n_points, every_n_epochs: see :class:`ScheduledCallback`.
        n_replicas: R, noisy propagations of each input.
        n_inputs: None: each evaluation input once; N: N drawn with replacement.
        n_mc: Monte Carlo queries per layer (shared by every SP quantity); None: aim at
            ``target_stderr``.
        target_stderr: the standard error (nats) of I(X;T) and I(T;Y) that ``n_mc=None`` aims at.
        max_width: layers wider than this are not estimated (SP needs e^{O(d)} samples); None:
            every layer.
    """

    name = "sp"

    @checked
    def __init__(
        self,
        output_dir: str | os.PathLike | None = None,
        *,
        n_replicas: Annotated[int, integer(2)] = 10,
        n_inputs: Annotated[
            int | None, POSITIVE_INT.or_null("(each evaluation input once)")
        ] = None,
        n_mc: Annotated[int | None, integer(2).or_null("(aim at target_stderr)")] = None,
        target_stderr: Annotated[float, number(0, lo_open=True)] = 0.005,
        max_width: Annotated[int | None, POSITIVE_INT.or_null("(every layer)")] = None,
        n_points: NPoints = None,
        every_n_epochs: EveryNEpochs = None,
    ) -> None:
        super().__init__(output_dir, n_points=n_points, every_n_epochs=every_n_epochs)
        self.n_replicas = n_replicas
        self.n_inputs = n_inputs
        self.n_mc = n_mc
        self.target_stderr = target_stderr
        self.max_width = max_width
        self._said: set[str] = set()
        self._said_beyond: set[tuple[int, str]] = set()

    def _say_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._said:
            self._said.add(key)
            log.info(message, *args)

    def _inputs(self, m: Measurement) -> tuple[Tensor, Tensor]:
        """Every member's inputs (K, N, ...) and labels (K, N) to estimate on."""
        if self.n_inputs is None:
            return m.inputs, m.labels
        # An explicit N: drawn with replacement per member, as the papers did.
        n = m.inputs.shape[1]
        idx = torch.stack(
            [
                torch.randint(
                    n,
                    (self.n_inputs,),
                    generator=torch.Generator().manual_seed(seed * 1_000_003 + m.epoch),
                )
                for seed in m.seeds
            ]
        ).to(m.inputs.device)
        rows = torch.arange(len(m.seeds), device=idx.device)[:, None]
        return m.inputs[rows, idx], m.labels[rows, idx]

    def _propagate(self, m: Measurement, x: Tensor, layers: list[int]) -> list[Tensor]:
        """Per estimated layer, (K, N, R, d) pre-noise samples: R replicas of every input of
        every member, all members in one forward pass per chunk of inputs."""
        k, n, r = x.shape[0], x.shape[1], self.n_replicas
        chunk = max(1, PROPAGATION_CHUNK // (k * r))
        parts: list[list[Tensor]] = [[] for _ in layers]
        for i in range(0, n, chunk):
            safe_point()
            outs = m.sample(x[:, i : i + chunk].repeat_interleave(r, dim=1))
            for j, layer in enumerate(layers):
                s = outs[layer]
                parts[j].append(s.reshape(k, -1, r, s.shape[-1]))
        return [torch.cat(p, dim=1) for p in parts]

    def measure(self, m: Measurement) -> list[MemberValue]:
        if m.beta == 0:
            self._say_once(
                "beta", "SP information skipped: noise.beta=0, a deterministic net (I(X;T) vacuous)"
            )
            return []
        widths = m.widths
        layers = [i for i, d in enumerate(widths) if self.max_width is None or d <= self.max_width]
        if len(layers) < len(widths):
            wide = [f"T{i + 1} (d={d})" for i, d in enumerate(widths) if i not in layers]
            self._say_once(
                "wide",
                "SP information skipped for %s: wider than max_width=%d; SP needs e^{O(d)} "
                "samples there (Goldfeld et al.), so its estimate would say nothing",
                ", ".join(wide),
                self.max_width,
            )
        if not layers:
            return []
        x, y = self._inputs(m)
        samples = self._propagate(m, x, layers)
        values: list[MemberValue] = []
        for member, seed in enumerate(m.seeds):
            safe_point()  # between members (and inside SP, between its query batches)
            result = sp_from_samples(
                [s[member] for s in samples],
                y[member],
                sigma=m.beta,
                n_mc=self.n_mc,
                target_stderr=self.target_stderr,
            )
            rows = [
                (seed, layers[i] + 1, "sp", quantity, est.value, est.stderr)
                for i, quantities in result.items()
                for quantity, est in quantities.items()
            ]
            ceilings = {"I_XT": empirical_entropy(x[member]), "I_TY": empirical_entropy(y[member])}
            rows += [(seed, None, "ceiling", q, c, None) for q, c in ceilings.items()]
            values += rows + self._beyond_ceilings(rows, ceilings, m.epoch)
        return values

    def _beyond_ceilings(
        self, rows: list[MemberValue], ceilings: dict[str, float], epoch: int
    ) -> list[MemberValue]:
        """A flag row ``<quantity>_beyond_ceiling`` (value: the excess, nats) for every estimate
        above its ceiling by more than its standard error (plus the density tolerance), and a
        warning the first time per layer and quantity (later ones are in the records). With
        inputs drawn with replacement, SP with finite R can exceed the entropy of the inputs
        measured: duplicates get their own replicas and look distinct."""
        flags: list[MemberValue] = []
        for seed, layer, estimator, quantity, value, stderr in rows:
            if estimator != "sp" or quantity not in ceilings:
                continue
            excess = value - ceilings[quantity]
            # Each log-density is within DEFAULT_TOL: a difference of two, within twice that.
            if excess <= (stderr or 0.0) + 2 * DEFAULT_TOL:
                continue
            flags.append((seed, layer, "sp", f"{quantity}_beyond_ceiling", excess, stderr))
            if (layer, quantity) not in self._said_beyond:  # once per layer and quantity
                self._said_beyond.add((layer, quantity))
                log.warning(
                    "seed %d, epoch %d, layer %d: SP %s = %.4f nats exceeds its ceiling %.4f "
                    "(the entropy of the %s measured) by more than its stderr %.4f; flagged "
                    "in information.csv (%s_beyond_ceiling), later ones without this warning",
                    seed, epoch, layer, quantity, value, ceilings[quantity],
                    "inputs" if quantity == "I_XT" else "labels", stderr or 0.0, quantity,
                )  # fmt: skip
        return flags
