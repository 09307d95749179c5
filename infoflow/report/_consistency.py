"""The sweep's shape: which keys are swept, the groups of replicates, and whether the runs of a
group really are replicates of one setting."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infoflow.report._reading import SEED, ReportError, Run, _load_yaml

log = logging.getLogger(__name__)


def declared_sweep_keys(sweep_dir: Path) -> list[str]:
    """Keys the sweep itself sweeps (``multirun.yaml``: command line and ``hydra.sweeper.params``),
    parsed with Hydra's own override parser; [] when that file is missing or unreadable.

    They make the sweep's columns and groups known while only some of its jobs have started.
    """
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hydra_node = (_load_yaml(sweep_dir / "multirun.yaml") or {}).get("hydra") or {}
        items = list((hydra_node.get("overrides") or {}).get("task") or [])
        params = (hydra_node.get("sweeper") or {}).get("params") or {}
        items += [f"{k}={v}" for k, v in params.items()]
        overrides = OverridesParser.create().parse_overrides(items)
    except Exception as exc:  # an optional hint: the runs' own overrides still decide
        log.info("sweep keys from multirun.yaml unavailable: %s", exc)
        return []
    return [o.get_key_element().lstrip("+~") for o in overrides if o.is_sweep_override()]


def swept_keys(runs: Sequence[Run], declared: Sequence[str] = ()) -> list[str]:
    """Override keys whose value differs between runs (absent counts as a value), and the keys
    the sweep declares (``declared``); the seed last."""
    keys: dict[str, None] = dict.fromkeys(declared)
    for run in runs:
        keys.update(dict.fromkeys(run.overrides))
    swept = [k for k in keys if k in declared or len({run.overrides.get(k) for run in runs}) > 1]
    return sorted(swept, key=lambda k: k == SEED)


def group_keys(swept: Sequence[str]) -> list[str]:
    """The swept keys that define groups of replicates: all but the seed."""
    return [k for k in swept if k != SEED]


def group_of(run: Run, keys: Sequence[str]) -> tuple[str, ...]:
    return tuple(run.overrides.get(k, "") for k in keys)


def group_label(keys: Sequence[str], values: Sequence[str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True)) or "all runs"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix: node}
    out: dict[str, Any] = {}
    for k, v in node.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


_RUN_SPECIFIC_LEAVES = {"output_dir", "save_dir", "dirpath", "default_root_dir"}


def _run_specific(key: str) -> bool:
    """Keys that differ between the runs of any sweep: paths, W&B run names, resumption."""
    leaf = key.rsplit(".", 1)[-1]
    return (
        key.startswith(("paths.", "hydra."))
        or leaf in _RUN_SPECIFIC_LEAVES
        or (key.startswith("logger.") and leaf in {"name", "group", "id", "version"})
        or key in {"ckpt_path", SEED}
    )


def check_consistent(runs: Sequence[Run], swept: Sequence[str]) -> None:
    """ReportError if two runs share all swept values, or if runs of one group (same swept
    values but the seed) disagree on a config key other than paths, names and seed copies."""
    seen: dict[tuple, str] = {}
    for run in runs:
        ident = group_of(run, swept)
        if ident in seen:
            raise ReportError(
                f"runs {seen[ident]!r} and {run.name!r} have the same swept values "
                f"({group_label(swept, ident) if swept else 'same overrides'}): "
                "two sweeps in one folder?"
            )
        seen[ident] = run.name
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        if run.config:
            groups[group_of(run, group_keys(swept))].append(run)
    for members in groups.values():
        _check_replicates(members)


def _check_replicates(members: Sequence[Run]) -> None:
    flat = [_flatten(run.config) for run in members]
    keys = {k for f in flat for k in f if not _run_specific(k)}
    first = members[0]
    for key in sorted(keys):
        values = [f.get(key, "<absent>") for f in flat]
        if all(v == values[0] for v in values):
            continue
        if all(str(v) == run.seed for v, run in zip(values, members, strict=True)):
            continue  # a copy of the seed (dataset.seed: ${seed})
        other = next(r for r, v in zip(members, values, strict=True) if v != values[0])
        raise ReportError(
            f"runs {first.name!r} and {other.name!r} differ only in their seed but disagree on "
            f"{key} ({values[0]!r} vs {values[members.index(other)]!r}): "
            "runs of different settings or code versions in one folder?"
        )
