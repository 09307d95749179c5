"""`python -m infoflow.report`: synthetic sweeps with known numbers (fast), bad input, and one
real multirun with failed jobs (marked slow)."""

from __future__ import annotations

import csv
import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from infoflow.records import RECORD_COLUMNS, append_rows
from infoflow.report import aggregate, group_keys, main, read_sweep, swept_keys
from infoflow.sweep import STATUS_FILE, job_dirname, read_status, write_json_atomic
from tests.conftest import ROOT, run_cli

EPOCHS = (0, 1, 2, 3, 5, 10)
PNG = b"\x89PNG\r\n\x1a\n"


def i_xt(beta: float, seed: int, layer: int, epoch: int) -> float:
    """Rises to a peak at epoch 3, then falls: peak = base + 1, final = base + exp(-49/4)."""
    return 3.0 + layer + 0.1 * seed - 10 * beta + math.exp(-((epoch - 3) ** 2) / 4)


def info_rows(beta: float, seed: int, epochs=EPOCHS, sizes=(0.05, 0.1)) -> list[tuple]:
    rows = []
    for e in epochs:
        for k in (1, 2):
            rows += [
                (seed, e, k, "sp", "I_XT", i_xt(beta, seed, k, e), 0.01),
                (seed, e, k, "sp", "I_TY", 0.1 * e / 10 + 0.01 * k, 0.002),
            ]
            rows += [
                (seed, e, k, f"bin:width:{s:g}", "H_T", 8.0 - s * k - 0.01 * e, None) for s in sizes
            ]
    return rows


def make_run(
    sweep: Path,
    num: int,
    overrides: dict[str, object],
    *,
    rows: list[tuple] | None = None,
    status: str = "completed",
    error: str | None = None,
    lr: float = 4e-4,
) -> Path:
    """A job directory as a multirun leaves it (``rows=None``: a job that failed at once)."""
    items = [f"{k}={v}" for k, v in overrides.items()]
    job = sweep / job_dirname(num, ",".join(sorted(items)))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(items))
    write_json_atomic(job / STATUS_FILE, {"status": status, "overrides": items, "error": error})
    if rows is None:
        return job
    seed = int(overrides.get("seed", 0))
    config = {
        "seed": seed,
        "noise": {"beta": float(overrides.get("noise.beta", 0.005))},
        "optimizer": {"lr": lr},
        "dataset": {"seed": seed, "train_fraction": 0.8},
        "trainer": {"max_epochs": 10, "default_root_dir": str(job)},
        "paths": {"output_dir": str(job), "run_name": ",".join(items)},
        "logger": {"csv": {"save_dir": str(job)}},
    }
    (job / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".infoflow_run").write_text("pid 1\n")
    append_rows(job / "information.csv", RECORD_COLUMNS, rows)
    last = max(r[1] for r in rows)
    training = [(seed, e, None, "val", q, v * e / last, None) for e in (1, last)
                for q, v in (("loss", 0.5), ("acc", 0.8))]  # fmt: skip
    append_rows(job / "training.csv", RECORD_COLUMNS, training)
    return job


def beta_seed_sweep(root: Path, betas=(0.01, 0.05), seeds=(0, 1, 2)) -> Path:
    sweep = root / "sweep"
    for num, (beta, seed) in enumerate((b, s) for b in betas for s in seeds):
        make_run(sweep, num, {"noise.beta": beta, "seed": seed}, rows=info_rows(beta, seed))
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def run_report(sweep: Path, capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in-process, tables only (figures are tested once, in a subprocess)."""
    code = main([str(sweep), "--no-wandb", "--no-figures", *args])
    out, err = capsys.readouterr()
    return code, out, err


def fingerprint(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------- numbers


def test_sweep_csv_holds_every_runs_rows_with_its_swept_values(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path)
    code, out, err = run_report(sweep, capsys)
    assert code == 0, err
    rows = read_csv(sweep / "sweep.csv")
    assert list(rows[0]) == ["run", "noise.beta", *RECORD_COLUMNS]
    expected = []
    for job in sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir()):
        beta, seed = (
            i.split("=")[1] for i in yaml.safe_load((job / ".hydra/overrides.yaml").open())
        )
        for r in read_csv(job / "information.csv"):
            assert r["seed"] == seed  # each record carries its run's seed
            expected.append({"run": job.name, "noise.beta": beta, **r})
    assert rows == expected
    assert "6 runs: 6 completed" in out and "noise.beta (0.01, 0.05); seed (0, 1, 2)" in out


def test_runs_csv_takes_final_metrics_from_the_training_records(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path, betas=(0.01,), seeds=(0,))
    assert run_report(sweep, capsys)[0] == 0
    (run,) = read_csv(sweep / "report" / "runs.csv")
    assert float(run["val/loss"]) == 0.5 and float(run["val/acc"]) == 0.8  # the last epoch's
    assert run["train/loss"] == "" and run["last_epoch"] == "10"


def test_curves_are_mean_std_median_across_seeds(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path)
    assert run_report(sweep, capsys)[0] == 0
    curves = read_csv(sweep / "report" / "curves.csv")
    pick = {
        (r["noise.beta"], r["estimator"], r["quantity"], r["layer"], r["epoch"]): r for r in curves
    }
    row = pick[("0.05", "sp", "I_XT", "2", "3")]
    values = [i_xt(0.05, s, 2, 3) for s in (0, 1, 2)]
    assert int(row["n"]) == 3
    assert float(row["mean"]) == pytest.approx(np.mean(values), abs=1e-12)
    assert float(row["std"]) == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    assert float(row["median"]) == pytest.approx(np.median(values), abs=1e-12)


def test_compression_is_peak_minus_final_across_seeds(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path)
    assert run_report(sweep, capsys)[0] == 0
    table = {
        (r["noise.beta"], r["layer"], r["measure"]): r
        for r in read_csv(sweep / "report" / "compression.csv")
    }
    base = np.mean([3.0 + 1 + 0.1 * s - 10 * 0.01 for s in (0, 1, 2)])
    assert float(table[("0.01", "1", "peak")]["mean"]) == pytest.approx(base + 1)
    assert float(table[("0.01", "1", "final")]["mean"]) == pytest.approx(base + math.exp(-49 / 4))
    compression = table[("0.01", "1", "compression")]
    assert float(compression["mean"]) == pytest.approx(1 - math.exp(-49 / 4))
    assert float(compression["std"]) == pytest.approx(0.0, abs=1e-12)
    assert compression["estimator"] == "sp" and compression["n"] == "3"


def test_figures_and_the_command_line(tmp_path):
    sweep = beta_seed_sweep(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "infoflow.report", str(sweep), "--no-wandb"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = (
        "information_vs_epoch_sp.png",
        "information_plane_sp.png",
        "dependence_noise.beta.png",
        "binned_vs_epoch.png",
    )
    for name in names:
        path = sweep / "report" / name
        assert path.read_bytes()[:8] == PNG, name
        assert str(path) in proc.stdout


def test_runs_of_separate_bin_sizes_are_drawn_side_by_side(tmp_path):
    sweep = tmp_path / "sweep"
    for num, (size, seed) in enumerate((z, s) for z in (0.01, 0.1) for s in (0, 1)):
        overrides = {"callbacks.binned.bin_size": size, "seed": seed}
        make_run(sweep, num, overrides, rows=info_rows(0.01, seed, sizes=(size,)))
    runs = read_sweep(sweep)
    swept = swept_keys(runs)
    assert swept == ["callbacks.binned.bin_size", "seed"]
    merged = aggregate(
        runs, [k for k in group_keys(swept) if not k.startswith("callbacks.binned.")]
    )
    (curves,) = merged.values()
    assert {("bin:width:0.01", "H_T", 1), ("bin:width:0.1", "H_T", 1)} <= set(curves)
    assert curves[("sp", "I_XT", 1)].n.max() == 2  # one SP curve per seed, not per run


# ------------------------------------------------------------------------- partial sweeps


def test_a_running_and_a_failed_run_are_named_and_left_out_of_finals(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path, betas=(0.01,), seeds=(0, 1))
    make_run(sweep, 2, {"noise.beta": 0.01, "seed": 2}, rows=info_rows(0.01, 2, epochs=(0, 1)),
             status="running")  # fmt: skip
    failed = make_run(
        sweep, 3, {"noise.beta": -1, "seed": 0}, status="failed", error="invalid config: x"
    )
    code, out, err = run_report(sweep, capsys)
    assert code == 0, err
    assert "4 runs: 2 completed, 1 failed, 1 running" in out
    assert f"failed: {failed.name}: invalid config: x" in out
    assert "running: 2_noise.beta=0.01,seed=2" in out
    table = read_csv(sweep / "report" / "compression.csv")
    assert {r["n"] for r in table} == {"2"}  # the running run has no final value yet
    curves = read_csv(sweep / "report" / "curves.csv")
    assert max(int(r["n"]) for r in curves if r["epoch"] == "1") == 3  # ...but its curve counts
    statuses = {r["run"]: r["status"] for r in read_csv(sweep / "report" / "runs.csv")}
    assert statuses[failed.name] == "failed"


def test_a_running_run_cut_in_the_middle_of_an_append_is_read_up_to_its_last_whole_row(
    tmp_path, capsys
):
    """A run killed with SIGKILL mid-append stays ``running`` with a cut last row: the report
    reads its whole rows (a completed run's cut row is damage: see the bad-input cases)."""
    sweep = beta_seed_sweep(tmp_path, betas=(0.01,), seeds=(0,))
    job = make_run(sweep, 1, {"noise.beta": 0.01, "seed": 1}, rows=info_rows(0.01, 1),
                   status="running")  # fmt: skip
    path = job / "information.csv"
    whole = path.read_text().splitlines()
    path.write_text("\n".join(whole) + "\n" + whole[-1][:5])  # a row cut after 5 characters
    code, out, err = run_report(sweep, capsys)
    assert code == 0, err
    assert "running: 1_noise.beta=0.01,seed=1" in out
    curves = read_csv(sweep / "report" / "curves.csv")
    assert max(int(r["n"]) for r in curves) == 2  # both runs' whole rows count


def test_the_report_writes_only_sweep_csv_and_report(tmp_path, capsys):
    sweep = beta_seed_sweep(tmp_path)
    before = fingerprint(sweep)
    assert run_report(sweep, capsys)[0] == 0
    assert run_report(sweep, capsys)[0] == 0  # again: replaces its own files
    after = fingerprint(sweep)
    assert {k: v for k, v in after.items() if k in before} == before
    new = set(after) - set(before)
    assert new and all(k == "sweep.csv" or k.startswith("report/") for k in new), new
    assert not [k for k in new if k.endswith(".tmp")]


# ------------------------------------------------------------------------------- bad input


def _garbage_information(sweep: Path) -> None:
    job = next(p for p in sweep.iterdir() if p.name.startswith("0_"))
    path = job / "information.csv"
    path.write_text(path.read_text().replace("\n0,", "\nzero,", 1))  # the seed of row 2


def _truncated_training(sweep: Path) -> None:
    job = next(p for p in sweep.iterdir() if p.name.startswith("1_"))
    path = job / "training.csv"
    path.write_bytes(path.read_bytes()[:-7])  # cut inside its last row


def _lr_differs_within_a_group(sweep: Path) -> None:
    make_run(sweep, 9, {"noise.beta": 0.01, "seed": 7}, rows=info_rows(0.01, 7), lr=1e-3)


def _duplicate_run(sweep: Path) -> None:
    make_run(sweep, 9, {"noise.beta": 0.01, "seed": 0}, rows=info_rows(0.01, 0))


def _nothing(sweep: Path) -> None:
    pass


def _empty(sweep: Path) -> None:
    sweep.mkdir()


@pytest.mark.parametrize(
    ("base", "spoil", "message"),
    [
        (False, _nothing, "no such directory"),
        (False, _empty, "no runs found"),
        (True, _garbage_information, "information.csv, row 2: invalid literal for int()"),
        (True, _truncated_training, "training.csv, row 5: incomplete last row"),
        (True, _lr_differs_within_a_group, "disagree on optimizer.lr (0.0004 vs 0.001)"),
        (True, _duplicate_run, "have the same swept values (noise.beta=0.01, seed=0)"),
    ],
    ids=[
        "missing",
        "empty",
        "unreadable-information",
        "truncated-training",
        "replicates-disagree",
        "duplicate",
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, capsys, base, spoil, message):
    sweep = beta_seed_sweep(tmp_path) if base else tmp_path / "sweep"
    spoil(sweep)
    code, _, err = run_report(sweep, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infoflow.report: error:"), err
    assert message in lines[0]
    assert not (sweep / "sweep.csv").exists()


def test_an_unknown_estimator_is_named(tmp_path, capsys):
    code, _, err = run_report(beta_seed_sweep(tmp_path), capsys, "--estimator", "kde_upper")
    assert code == 1 and "--estimator kde_upper: no I_XT rows (have: sp)" in err


def test_a_run_directory_is_not_a_sweep(tmp_path, capsys):
    job = next(p for p in beta_seed_sweep(tmp_path).iterdir() if p.name.startswith("0_"))
    code, _, err = run_report(job, capsys)
    assert code == 1 and "is a run's directory, not a sweep's" in err
    assert not (job / "report").exists()


# --------------------------------------------------------------------- slow: a real sweep


@pytest.mark.slow
def test_report_on_a_real_sweep_with_failed_jobs(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    proc = run_cli(
        "-m", "--config-dir", str(ROOT / "tests" / "conf"), "experiment=sweep_tiny",
        "callbacks.binned.bin_size=0.01,0.1", "noise.beta=0.01,-1", f"hydra.sweep.dir={sweep}",
        cwd=tmp_path, env={"WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert proc.returncode == 1 and "2 of 4 jobs failed" in proc.stderr, proc.stderr[-3000:]
    code, out, err = run_report(sweep, capsys)
    assert code == 0, err
    assert "4 runs: 2 completed, 2 failed" in out
    failed = [line for line in out.splitlines() if "failed: " in line and "noise.beta=-1" in line]
    assert len(failed) == 2 and all("must be a number >= 0" in line for line in failed)
    rows = read_csv(sweep / "sweep.csv")
    for job in (p for p in sweep.iterdir() if (p / "information.csv").exists()):
        own = read_csv(job / "information.csv")
        assert [{k: r[k] for k in RECORD_COLUMNS} for r in rows if r["run"] == job.name] == own
        size = dict(o.split("=", 1) for o in read_status(job / STATUS_FILE)["overrides"])
        # A scalar bin size on the command line works like a one-element list.
        assert {r["estimator"] for r in own if r["estimator"].startswith("bin:")} == {
            f"bin:width:{float(size['callbacks.binned.bin_size']):g}"
        }
