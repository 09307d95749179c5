"""Shared fixtures: compose the app's config into a temp dir, run the CLI in a subprocess.

Test tiers: a test that starts a process (the CLI, a multirun, another Python) is marked ``slow``,
explicitly or, when its body or one of its fixtures calls one of the process starters below, by
:func:`pytest_collection_modifyitems`; ``pytest -m "not slow"`` runs everything else.
"""

from __future__ import annotations

import inspect
import os
import re
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from infoflow.rundir import register_resolvers
from infoflow.schema import register

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"
_STARTS_A_PROCESS = re.compile(
    r"\b(run_cli|_cli|multirun|subprocess\.(run|Popen|check_call|check_output)|_start)\("
)


def _starts_a_process(item: pytest.Item) -> bool:
    """Whether the test's own body, or a fixture it uses, starts a process."""
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    if info is not None:  # this repository's fixtures (pytest's own, e.g. capsys, start nothing)
        funcs += [
            d.func
            for defs in info.name2fixturedefs.values()
            for d in defs
            if str(inspect.getsourcefile(d.func) or "").startswith(str(ROOT / "tests"))
        ]
    for func in funcs:
        try:
            source = inspect.getsource(func) if func is not None else ""
        except (OSError, TypeError):
            continue
        body = source.split(":", 1)[-1]  # not the def line (a test named ..._run(...))
        if _STARTS_A_PROCESS.search(body):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "slow" not in item.keywords and _starts_a_process(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose the app's config (through the package, as the app does) with overrides; outputs and
    data go to tmp_path."""
    register_resolvers()
    register()

    def _make(*overrides: str) -> DictConfig:
        with initialize_config_module("infoflow.conf", version_base="1.3"):
            return compose(
                "config",
                overrides=[
                    f"paths.output_dir={tmp_path / 'run'}",
                    f"paths.data_dir={tmp_path / 'data'}",
                    *overrides,
                ],
            )

    return _make


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: int = 300):
    """Run `python -m infoflow ARGS` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "WANDB_MODE": "disabled", "HYDRA_FULL_ERROR": "0", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR") if full_env["HYDRA_FULL_ERROR"] == "0" else None
    return subprocess.run(
        [sys.executable, "-m", "infoflow", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wandb_records(path: Path) -> Iterator:
    """The records (protobuf ``Record`` s: run, history, exit, ...) of an offline ``.wandb`` file.

    The file is W&B's LevelDB-style log: a 7-byte header, then 32 KiB blocks of records, each
    with a 7-byte header (CRC, length, type: 1 full, 2 first, 3 middle, 4 last) around a
    protobuf ``Record``. Reading it is the only offline way to see a run's group or its exit.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf = path.read_bytes(), 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # block trailer
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        buf += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(buf)
            buf = b""
            yield record
