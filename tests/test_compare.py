"""Comparing trained runs (infoflow.runs, infoflow.compare): loading, same pairs, ground truth."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from infoflow.build import build_network
from infoflow.compare import compare_runs, default_out_dir, layer_similarities, unique_labels
from infoflow.data.szt import make_szt_dataset
from infoflow.plot import main as plot_main
from infoflow.records import INFORMATION_FILE, RECORD_COLUMNS, append_rows
from infoflow.runs import RunLoadError, eval_set, expand_run_dirs, load_run
from infoflow.train import resolved_config

SMALL_NET = ["model.hidden=[6,4,3]", "dataset.train_fraction=0.5"]


def make_run(make_cfg, path: Path, *overrides: str, seed: int = 0) -> Path:
    """A finished run as `python -m infoflow` leaves it: config.yaml and a Lightning-style
    checkpoint (``state_dict`` with the module's ``net.`` prefix), with seeded random weights."""
    cfg = make_cfg(*SMALL_NET, *overrides, f"seed={seed}")  # the members' init follows the seed
    net = build_network(cfg)
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.yaml").write_text(OmegaConf.to_yaml(resolved_config(cfg)))
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 3}, path / "checkpoints" / "last.ckpt")
    return path


def brute_force_cosines(h: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Every unordered pair's cosine similarity, by a plain loop."""
    within, between = [], []
    for i, j in itertools.combinations(range(len(h)), 2):
        c = h[i] @ h[j] / (np.linalg.norm(h[i]) * np.linalg.norm(h[j]))
        (within if y[i] == y[j] else between).append(c)
    return within, between


def test_layer_similarities_match_a_brute_force_forward_pass(make_cfg, tmp_path):
    run = load_run(make_run(make_cfg, tmp_path / "a", "model.activation=tanh"))
    x, y = eval_set(run.cfg)
    x, y = x[:40], y[:40]
    sims = layer_similarities(run, x, y, max_samples=40, seed=0)  # all 40: no sampling
    # The forward pass by hand, from the checkpoint's weights: S_l = tanh(W_l S_{l-1} + b_l).
    state = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    # An ensemble of one: every tensor has a leading member dimension of 1.
    weights = [
        v[0].double().numpy() for k, v in state["state_dict"].items() if k.endswith("weight")
    ]
    biases = [v[0].double().numpy() for k, v in state["state_dict"].items() if k.endswith("bias")]
    h = x.double().numpy()
    assert len(sims) == 3
    for layer in range(3):
        h = np.tanh(h @ weights[layer].T + biases[layer])
        within, between = brute_force_cosines(h, y.numpy())
        assert sorted(sims[layer].within) == pytest.approx(sorted(within), abs=1e-5)
        assert sorted(sims[layer].between) == pytest.approx(sorted(between), abs=1e-5)


def test_every_run_is_measured_on_the_same_pairs(make_cfg, tmp_path):
    a = load_run(make_run(make_cfg, tmp_path / "a", seed=1))
    b = load_run(make_run(make_cfg, tmp_path / "b", seed=2))
    twin = load_run(make_run(make_cfg, tmp_path / "c", seed=1))
    x, y = eval_set(a.cfg)
    sa, sb, st = (layer_similarities(r, x, y, max_samples=50, seed=7) for r in (a, b, twin))
    for la, lb, lt in zip(sa, sb, st, strict=True):
        assert len(la.within) + len(la.between) == 50 * 49 // 2
        assert (len(la.within), len(la.between)) == (len(lb.within), len(lb.between))
        np.testing.assert_array_equal(la.within, lt.within)  # same weights, same pairs: equal
        assert not np.allclose(la.within, lb.within)  # other weights: other values


def test_eval_set_is_the_runs_evaluation_inputs(make_cfg, tmp_path):
    run = load_run(make_run(make_cfg, tmp_path / "a"))
    x, y = eval_set(run.cfg)
    xs, ys = make_szt_dataset()
    np.testing.assert_array_equal(x.numpy(), xs.astype(np.float32))
    np.testing.assert_array_equal(y.numpy(), ys)


def test_labels_name_the_variant_and_disambiguate(make_cfg, tmp_path):
    runs = [
        load_run(make_run(make_cfg, tmp_path / "d0", "noise.beta=0")),
        load_run(make_run(make_cfg, tmp_path / "d1", "noise.beta=0")),
        load_run(make_run(make_cfg, tmp_path / "n", "noise.beta=0.05")),
    ]
    assert unique_labels(runs) == ["deterministic (d0)", "deterministic (d1)", "noisy β=0.05"]


def test_a_sweep_folder_stands_for_its_runs_in_job_order(make_cfg, tmp_path):
    sweep = tmp_path / "sweep"
    for name in ("10_c", "2_b", "0_a"):
        make_run(make_cfg, sweep / name)
    (sweep / "not_a_run").mkdir()
    assert [p.name for p in expand_run_dirs([sweep])] == ["0_a", "2_b", "10_c"]
    assert default_out_dir([sweep], expand_run_dirs([sweep])) == sweep / "compare"
    runs = [sweep / "0_a", sweep / "2_b"]
    assert default_out_dir(runs, runs) == sweep.resolve() / "compare"
    with pytest.raises(RunLoadError, match="neither a finished run"):
        expand_run_dirs([sweep / "not_a_run"])


def test_compare_writes_the_summary_and_the_histograms(make_cfg, tmp_path):
    a = make_run(make_cfg, tmp_path / "a", "noise.beta=0")
    b = make_run(make_cfg, tmp_path / "b", "noise.beta=0.1", seed=3)
    written = compare_runs([a, b], tmp_path / "out", max_samples=30)
    # no records in these runs: no over-training figure, the rest is there
    assert [p.name for p in written] == ["cosine_summary.csv", "cosine_histograms.png"]
    rows = list(csv.DictReader((tmp_path / "out" / "cosine_summary.csv").open()))
    assert len(rows) == 2 * 3 * 2 and {r["label"] for r in rows} == {"deterministic", "noisy β=0.1"}
    assert all(-1 <= float(r["mean"]) <= 1 for r in rows)


def test_similarity_over_training_comes_from_the_clustering_records(make_cfg, tmp_path):
    a = make_run(make_cfg, tmp_path / "a", "noise.beta=0")
    b = make_run(make_cfg, tmp_path / "b", "noise.beta=0.1", seed=3)
    rows = [
        (0, e, k, "clustering", f"cos_{pairs}_mean", 0.1 * e + (pairs == "within"), None)
        for e in (0, 1, 3) for k in (1, 2, 3) for pairs in ("within", "between")
    ]  # fmt: skip
    append_rows(a / INFORMATION_FILE, RECORD_COLUMNS, rows)
    written = compare_runs([a, b], tmp_path / "out", max_samples=30)
    assert [p.name for p in written][-1] == "cosine_over_training.png"
    (a / INFORMATION_FILE).write_text("seed,epoch\n")  # damaged: one error naming it
    with pytest.raises(ValueError, match=r"information.csv, row 1"):
        compare_runs([a, b], tmp_path / "out", max_samples=30)


def test_cli_mismatched_checkpoint_is_one_line_and_exit_1(make_cfg, tmp_path, capsys):
    run = make_run(make_cfg, tmp_path / "a")
    other = make_run(make_cfg, tmp_path / "b", "model.hidden=[5,4,3]")
    (run / "checkpoints" / "last.ckpt").write_bytes(
        (other / "checkpoints" / "last.ckpt").read_bytes()
    )
    assert plot_main(["--compare", str(run), str(other)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("infoflow.plot: error:") and "last.ckpt" in err[0]


def test_cli_rejects_several_runs_without_compare(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert plot_main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
    assert "--compare" in capsys.readouterr().err
