"""PlotsCallback's redraw spacing: at least min_interval_s, and drawing ≤ max_fraction of the time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import infoflow.callbacks.plots as plots_module
import infoflow.plots
from infoflow.callbacks.plots import PlotsCallback


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_redraws_are_spaced_so_drawing_stays_a_small_fraction(tmp_path, monkeypatch):
    clock, draws = Clock(), []

    def fake_draw_all(run_dir, units):  # noqa: ANN001, ARG001
        draws.append(clock.now)
        clock.now += 2.0  # a draw takes 2 s

    monkeypatch.setattr(plots_module.time, "monotonic", clock)
    monkeypatch.setattr(infoflow.plots, "draw_all", fake_draw_all)
    cb = PlotsCallback(str(tmp_path), min_interval_s=5.0, max_fraction=0.1)
    trainer = SimpleNamespace(is_global_zero=True)
    info = tmp_path / "information.csv"
    for epoch in range(60):  # one second an epoch, a new row every epoch
        info.write_text("x" * (epoch + 1))
        cb.on_train_epoch_end(trainer, None)
        clock.now += 1.0
    cb.on_train_end(trainer, None)
    gaps = [b - a for a, b in zip(draws[:-2], draws[1:-1], strict=True)]
    # after the first draw, 2 s / 0.1 = 20 s between draws, not min_interval_s = 5 s
    assert draws[0] == 1000.0 and gaps and all(g >= 20.0 for g in gaps)
    assert len(draws) - 1 <= 60 * 0.1 / 2 + 1  # drawing ≈ 10% of the training time at most
    assert draws[-1] == clock.now - 2.0  # and always once at the end


def test_no_redraw_without_new_rows(tmp_path, monkeypatch):
    draws = []
    monkeypatch.setattr(infoflow.plots, "draw_all", lambda run_dir, units: draws.append(1))
    cb = PlotsCallback(str(tmp_path), min_interval_s=0.0)
    trainer = SimpleNamespace(is_global_zero=True)
    (tmp_path / "information.csv").write_text("row\n")
    for _ in range(3):
        cb.on_train_epoch_end(trainer, None)
    assert len(draws) == 1


def test_max_fraction_is_checked(tmp_path):
    with pytest.raises(ValueError, match="max_fraction"):
        PlotsCallback(str(tmp_path), max_fraction=0)
