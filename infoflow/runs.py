"""Finished runs, loaded back: the network from ``config.yaml`` + ``checkpoints/last.ckpt``, and the
evaluation inputs its callbacks measured on.

This is what lets a figure compare the internal representations of several trained networks on the
same inputs (``python -m infoflow.plot --compare``) long after they were trained.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from infoflow.errors import one_line
from infoflow.models.network import Network

CHECKPOINT = Path("checkpoints") / "last.ckpt"


class RunLoadError(ValueError):
    """A run directory that cannot be loaded; the message says which file and why."""


@dataclass(frozen=True)
class FinishedRun:
    """A trained network (all its members; eval mode, on CPU) with its run's resolved config."""

    path: Path
    cfg: DictConfig
    net: Network

    @property
    def label(self) -> str:
        """A short name from the config: ``deterministic``, ``noisy β=0.01``, ``dropout p=0.3``."""
        beta = float(self.cfg.noise.beta)
        dropout = float(OmegaConf.select(self.cfg, "model.net.dropout", default=0.0) or 0.0)
        parts = [f"noisy β={beta:g}"] if beta > 0 else []
        parts += [f"dropout p={dropout:g}"] if dropout > 0 else []
        return ", ".join(parts) or "deterministic"


def is_run_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a finished run (its config and its final checkpoint)."""
    path = Path(path)
    return (path / "config.yaml").is_file() and (path / CHECKPOINT).is_file()


def expand_run_dirs(paths: list[str | os.PathLike]) -> list[Path]:
    """Run directories, in order; a folder that is not a run itself (a multirun sweep folder)
    stands for the finished runs directly inside it, sorted by name (Hydra's job numbers)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise RunLoadError(f"{p}: not a folder")
        if is_run_dir(p):
            out.append(p)
            continue
        jobs = sorted((c for c in p.iterdir() if is_run_dir(c)), key=_job_order)
        if not jobs:
            raise RunLoadError(
                f"{p}: neither a finished run (config.yaml + {CHECKPOINT}) nor a sweep of them"
            )
        out.extend(jobs)
    return out


def _job_order(path: Path) -> tuple[int, str]:
    """Hydra's job folders start with the job number (``0_...``, ``10_...``): sort numerically."""
    head = path.name.split("_", 1)[0]
    return (int(head), path.name) if head.isdigit() else (1 << 30, path.name)


def load_run(path: str | os.PathLike) -> FinishedRun:
    """Rebuild a run's network from its config and load its final weights."""
    from infoflow.build import build_network  # keeps this module importable without the trainer

    path = Path(path)
    try:
        cfg = OmegaConf.load(path / "config.yaml")
    except Exception as exc:  # noqa: BLE001 - YAML or I/O: one line for the user
        raise RunLoadError(f"{path / 'config.yaml'}: cannot read: {one_line(exc)}") from exc
    if not isinstance(cfg, DictConfig) or "model" not in cfg or "noise" not in cfg:
        raise RunLoadError(f"{path / 'config.yaml'}: not an infoflow run config (no model/noise)")
    try:
        net = build_network(cfg)
    except Exception as exc:  # noqa: BLE001 - a config this version cannot build
        raise RunLoadError(
            f"{path / 'config.yaml'}: cannot build its model: {one_line(exc)}"
        ) from exc
    try:
        ckpt = torch.load(path / CHECKPOINT, map_location="cpu", weights_only=True)
        state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items()}
        net.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - unpickling, missing or mismatched keys
        msg = f"{path / CHECKPOINT}: cannot load into the configured model: {one_line(exc)}"
        raise RunLoadError(msg) from exc
    return FinishedRun(path, cfg, net.eval())


def eval_set(cfg: DictConfig, data_dir: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The evaluation inputs (n, ...) and labels (n,) of a run's first member (CPU tensors): the
    same images its callbacks measured on. ``data_dir`` replaces the config's ``paths.data_dir``
    (a run moved between machines)."""
    from infoflow.build import build_datamodule

    cfg = copy.deepcopy(cfg)
    if data_dir is not None:
        OmegaConf.update(cfg, "paths.data_dir", data_dir, force_add=True)
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    x, y = datamodule.eval_set()
    return x[0].cpu(), y[0].cpu()
