"""The report of a depth study (a swept list of widths, ``model.hidden``): groups in depth order,
``phases.csv`` and ``depth.csv`` with numbers known by construction, ``depth_planes.png``; and a
report as quiet as a run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from infoflow.report import aggregate, group_keys, main, read_sweep, report, swept_keys
from infoflow.report._aggregation import _sort_key
from infoflow.report._phases import depth_groups, depth_key
from tests.test_report import make_run

EPOCHS = (0, 1, 2, 3, 5, 10)  # make_run's runs finish at epoch 10
EST = "bin:tishby:30"
#: Per depth and seed, the epoch from which I(T;Y) is at its final value.
FIT = {1: (1, 2, 3), 2: (2, 3, 5), 3: (3, 5, 10)}
#: Per layer, the last epoch of I(X;T) at its peak (then it falls by 1 nat).
ONSET = {1: 2, 2: 3, 3: 5}
#: Per weight layer, the epoch from which the gradient SNR is below 1 (the read-out: never).
CROSS = {1: 2, 2: 3, 3: 5}
ORDER = ([10, 7, 5], [10], [10, 7])  # job numbers out of depth order


def depth_rows(depth: int, seeds=(0, 1, 2)) -> list[tuple]:
    rows = []
    for s in seeds:
        for e in EPOCHS:
            for k in range(1, depth + 1):
                i_ty = math.log(2) * (1.0 if e >= FIT[depth][s] else 0.1)
                i_xt = 5.0 if e <= ONSET[k] else 4.0
                rows += [(s, e, k, EST, "I_XT", i_xt, None), (s, e, k, EST, "I_TY", i_ty, None)]
            for k in range(1, depth + 2):
                if e:
                    snr = math.inf if k == depth + 1 else (4.0 if e < CROSS[k] else 0.5)
                    rows.append((s, e, k, "gradients", "snr", snr, None))
    return rows


def depth_sweep(root: Path, *, wandb: bool = False) -> Path:
    sweep = root / "sweep"
    for num, hidden in enumerate(ORDER):
        value = "[" + ",".join(map(str, hidden)) + "]"
        job = make_run(sweep, num, {"model.hidden": value}, rows=depth_rows(len(hidden)))
        if wandb:
            with (job / "config.yaml").open("a") as fh:
                fh.write("logger:\n  wandb:\n    project: p\n    group: g\n")
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_lists_of_widths_sort_by_depth():
    values = ["[10,7,5,4,4,3]", "[10]", "[10,7,5,4,3]", "[10,7]"]
    assert sorted(values, key=lambda v: _sort_key([v])) == [
        "[10]", "[10,7]", "[10,7,5,4,3]", "[10,7,5,4,4,3]"
    ]  # fmt: skip
    assert sorted(["0.1", "[2]", "x", "0.05"], key=lambda v: _sort_key([v])) == [
        "0.05", "0.1", "[2]", "x"
    ]  # fmt: skip


def test_depth_csv_tabulates_fitting_compression_and_transition_per_depth(tmp_path, capsys):
    sweep = depth_sweep(tmp_path)
    code = main([str(sweep), "--no-wandb", "--no-figures"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "swept: model.hidden ([10], [10,7], [10,7,5])" in out
    rows = read_csv(sweep / "report" / "depth.csv")
    assert list(rows[0]) == ["model.hidden", "depth", "layer", "name", "units", "measure",
                             "n", "n_seeds", "mean", "median", "min", "max"]  # fmt: skip
    assert [r["depth"] for r in rows if r["measure"] == "fitting"] == ["1", "2", "3"]
    got = {(r["depth"], r["measure"], r["name"]): r for r in rows}
    for depth, epochs in FIT.items():
        fit = got[(str(depth), "fitting", f"T{depth}")]  # the last hidden layer only
        assert float(fit["mean"]) == pytest.approx(sum(epochs) / 3)
        assert (float(fit["min"]), float(fit["max"]), fit["n"]) == (min(epochs), max(epochs), "3")
        for k in range(1, depth + 1):
            onset = got[(str(depth), "compression_onset", f"T{k}")]
            assert (float(onset["mean"]), onset["n"], onset["units"]) == (
                ONSET[k],
                "3",
                str(ORDER[[len(h) for h in ORDER].index(depth)][k - 1]),
            )
            assert float(got[(str(depth), "snr_transition", f"T{k}")]["median"]) == CROSS[k]
        readout = got[(str(depth), "snr_transition", "read-out")]
        assert (readout["n"], readout["n_seeds"], readout["mean"], readout["units"]) == (
            "0",
            "3",
            "",
            "",
        )
    assert len([r for r in rows if r["measure"] == "fitting"]) == 3
    phases = read_csv(sweep / "report" / "phases.csv")
    assert list(phases[0])[:2] == ["model.hidden", "measure"]
    assert [r["model.hidden"] for r in phases if r["measure"] == "fitting" and r["layer"] == "1"] \
        == ["[10]", "[10,7]", "[10,7,5]"]  # fmt: skip


def test_depth_planes_one_panel_per_depth_in_order(tmp_path):
    sweep = depth_sweep(tmp_path)
    runs = read_sweep(sweep)
    keys = group_keys(swept_keys(runs))
    assert depth_key(runs, keys) == "model.hidden"
    titled, _ = depth_groups(aggregate(runs, keys), keys, "model.hidden")
    assert list(titled) == [
        "1 hidden layer: [10]", "2 hidden layers: [10, 7]", "3 hidden layers: [10, 7, 5]"
    ]  # fmt: skip
    files, _ = report(sweep, use_wandb=False)
    names = {p.name for p in files}
    assert {"depth_planes.png", "depth.csv", "phases.csv", f"information_plane_{EST.replace(':', '_')}.png"} <= names  # fmt: skip


def test_a_sweep_without_a_list_has_no_depth_table(tmp_path, capsys):
    from tests.test_report import beta_seed_sweep

    sweep = beta_seed_sweep(tmp_path)
    assert main([str(sweep), "--no-wandb", "--no-figures"]) == 0
    capsys.readouterr()
    assert (sweep / "report" / "phases.csv").exists()
    assert not (sweep / "report" / "depth.csv").exists()


@pytest.mark.slow  # W&B starts its service process
def test_the_report_is_as_quiet_as_a_run(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    sweep = depth_sweep(tmp_path, wandb=True)
    assert main([str(sweep), "--no-figures"]) == 0
    out, err = capfd.readouterr()
    assert "wandb:" not in out + err, (out + err)[-2000:]
    assert "W&B: run 'aggregate' in group 'g', offline (upload: wandb sync " in out
    assert not err
