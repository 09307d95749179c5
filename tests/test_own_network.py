"""Your own network on your own data: a module from your own file, measured at the layers you
name, trained on your own .npz — from the command line as a user types it — and each mistake
in that command is one line, with nothing left on disk."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from infoflow.checks import check_config
from infoflow.errors import USER_ERRORS
from infoflow.records import read_records
from infoflow.train import run
from tests.conftest import run_cli

NET = '''
from torch import nn


class Net(nn.Module):
    """A user's own network: forward returns logits."""

    def __init__(self, width: int = 16, n_classes: int = 3):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(6, width), nn.Tanh(), nn.Linear(width, 4), nn.Tanh()
        )
        self.head = nn.Linear(4, n_classes)

    def forward(self, x):
        return self.head(self.body(x))
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's folder: mynet.py and data.npz (300 examples, 6 features, 3 classes)."""
    (tmp_path / "mynet.py").write_text(textwrap.dedent(NET))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def own(project: Path, *extra: str) -> list[str]:
    return [
        "model=custom",
        "model.net._target_=mynet.Net",
        "+model.net.width=8",  # in-process (compose) the +; the CLI needs none (test below)
        "model.layers=[body.1,body.3]",
        "dataset=arrays",
        f"dataset.path={project / 'data.npz'}",
        "noise.beta=0.05",
        "trainer.max_epochs=3",
        "trainer.enable_progress_bar=false",
        "~logger.wandb",
        "callbacks.plots=null",
        "callbacks.information.n_replicas=4",
        "callbacks.information.n_mc=600",
        "callbacks.clustering.max_samples=100",
        *extra,
    ]


def test_own_network_on_own_data_is_measured_at_the_named_layers(make_cfg, project):
    cfg = make_cfg(*own(project))
    check_config(cfg)
    run(cfg)
    rows = read_records(Path(cfg.paths.output_dir) / "information.csv")
    for estimator in ("sp", "bin:width:0.05", "bin_noisy:width:0.05", "clustering"):
        layers = {r["layer"] for r in rows if r["estimator"] == estimator}
        assert layers == {1, 2}, estimator  # T1 = body.1 (width 8), T2 = body.3 (width 4)
    ceiling = next(
        r["value"] for r in rows if (r["estimator"], r["quantity"]) == ("ceiling", "I_XT")
    )
    assert ceiling == pytest.approx(np.log(300))  # every one of the 300 examples once
    assert {r["layer"] for r in rows if r["estimator"] == "gradients"} == {1, 2, 3}


def test_an_ensemble_of_own_networks_runs_through_vmap(make_cfg, project):
    cfg = make_cfg(*own(project, "ensemble.size=2", "seed=5"))
    run(cfg)
    rows = read_records(Path(cfg.paths.output_dir) / "information.csv")
    i_xt = {
        r["seed"]: r["value"]
        for r in rows
        if (r["estimator"], r["layer"], r["quantity"], r["epoch"]) == ("sp", 2, "I_XT", 3)
    }
    assert set(i_xt) == {5, 6} and i_xt[5] != i_xt[6]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (["model.net._target_=mynet.Nope"], "model.net._target_='mynet.Nope' (cannot import it"),
        (
            ["model.layers=[body.1,body.7]"],
            "no submodule 'body.7'; it has: body, body.0, body.1, body.2, body.3, head",
        ),
        (["+model.net.n_classes=1"], "forward must return logits (batch, n_classes >= 3)"),
        (
            ["+model.net.widht=3"],
            "model.net.widht=3 (not an argument of mynet.Net (did you mean width",
        ),
    ],
)
def test_each_mistake_is_one_line_before_anything_runs(make_cfg, project, change, words):
    with pytest.raises(USER_ERRORS) as err:
        check_config(make_cfg(*own(project), *change))
    assert words in str(err.value) and "\n" not in str(err.value)


def test_bad_data_files_are_one_line(make_cfg, project):
    bad = {
        "nox.npz": {"y": np.zeros(5)},
        "shape.npz": {"x": np.zeros((5, 6)), "y": np.zeros(4)},
        "nan.npz": {"x": np.full((5, 6), np.nan), "y": np.zeros(5)},
        "float.npz": {"x": np.zeros((5, 6)), "y": np.full(5, 0.5)},
    }
    words = {"nox.npz": "no array 'x'", "shape.npz": "y must have shape (5,)",
             "nan.npz": "x holds NaN or inf", "float.npz": "y must be integer class labels"}  # fmt: skip
    for name, arrays in bad.items():
        np.savez(project / name, **arrays)
        with pytest.raises(USER_ERRORS, match=words[name].replace("(", r"\(").replace(")", r"\)")):
            check_config(make_cfg(*own(project), f"dataset.path={project / name}"))


def test_a_layer_too_wide_for_sp_is_skipped_with_a_reason(make_cfg, project, caplog):
    cfg = make_cfg(*own(project, "callbacks.information.max_width=5"))
    with caplog.at_level("INFO", logger="infoflow"):  # whatever level an earlier test left
        run(cfg)
    rows = read_records(Path(cfg.paths.output_dir) / "information.csv")
    assert {r["layer"] for r in rows if r["estimator"] == "sp"} == {2}  # body.3, d = 4
    assert "SP information skipped for T1 (d=8)" in caplog.text


@pytest.mark.slow
def test_the_command_line_a_user_types(project):
    """No + for the arguments of your own class: model.net.width=8 as typed."""
    args = [a.lstrip("+") for a in own(project)] + [f"hydra.run.dir={project / 'run'}"]
    proc = run_cli(*args, cwd=project, env={"PYTHONPATH": str(project)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_records(project / "run" / "information.csv")
    assert {r["layer"] for r in rows if r["estimator"] == "sp"} == {1, 2}
    bad = run_cli(
        *args[:-1], "model.layers=[body.9]", cwd=project, env={"PYTHONPATH": str(project)}
    )
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and len(lines) == 1 and "body.9" in lines[0]
    assert not (project / "outputs").exists()  # nothing on disk
