"""The public API as a user meets it: ``infoflow.callbacks``'s names, and the example project that
attaches them to a LightningModule of its own."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import infoflow.callbacks as callbacks
from infoflow.records import INFORMATION_FILE, read_records

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_callback_name_resolves_to_what_its_module_defines():
    assert len(callbacks.__all__) == 17 and set(callbacks.__all__) == set(callbacks._HOME)
    for name in callbacks.__all__:
        home = importlib.import_module(f"infoflow.callbacks.{callbacks._HOME[name]}")
        assert getattr(callbacks, name) is getattr(home, name), name
    assert set(callbacks.__all__) <= set(dir(callbacks))
    with pytest.raises(AttributeError, match="no attribute 'Nonesuch'"):
        callbacks.Nonesuch  # noqa: B018


@pytest.mark.slow
def test_importing_the_package_loads_no_callback_and_no_torch():
    """Hydra and the config checks import one callback module (and with it the package): the
    package itself must not load the others, torch and Lightning behind them."""
    code = (
        "import sys, infoflow.callbacks; "
        "print(sorted(m for m in sys.modules if m.startswith('infoflow.callbacks.')), "
        "'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] False", out.stdout


@pytest.mark.slow
def test_the_example_measures_its_own_lightning_module(tmp_path):
    env = {**os.environ, "WANDB_MODE": "offline"}
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "own_lightning_module.py"), str(out)],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_records(out / INFORMATION_FILE)
    kinds = {(r["estimator"].split(":")[0], r["layer"]) for r in rows}
    for layer in (1, 2):  # both named layers, by SP, binning and clustering
        assert {("sp", layer), ("bin", layer), ("clustering", layer)} <= kinds, kinds
    assert "T2: I(X;T) in nats at epochs" in done.stdout
    assert (out / "plots" / "information_plane_sp.png").is_file()
