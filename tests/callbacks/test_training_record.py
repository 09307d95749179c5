"""The training record: one row per member, quantity and recorded epoch; rows buffered in memory
and appended at the moments that keep the file whole."""

from types import SimpleNamespace

import pytest

from infoflow.callbacks.training import TrainingRecordCallback
from infoflow.records import read_records


class FakeModule:
    seeds = [3, 4]

    def __init__(self):
        self.epoch = 0

    def epoch_record(self):
        return {"train/loss": [0.5, 0.7], "val/acc": [0.9, float(self.epoch)]}


def _trainer(max_epochs=25):
    return SimpleNamespace(
        is_global_zero=True, max_epochs=max_epochs, loggers=[], global_step=0, callback_metrics={}
    )


def _epochs(path):
    return sorted({r["epoch"] for r in read_records(path)}) if path.exists() else []


@pytest.mark.parametrize(("every", "expected"), [(1, list(range(1, 26))), (10, [10, 20, 25])])
def test_rows_per_member_at_the_recorded_epochs(tmp_path, every, expected):
    cb = TrainingRecordCallback(str(tmp_path), every_n_epochs=every)
    module, trainer = FakeModule(), _trainer()
    for e in range(25):
        trainer.current_epoch, module.epoch = e, e + 1
        trainer.callback_metrics.clear()
        cb.on_train_epoch_end(trainer, module)
        recorded = e + 1 in expected
        # The members' mean, on the recorded epochs only (as a tensor, as log_dict leaves it).
        assert ("train/loss" in trainer.callback_metrics) == recorded
        if recorded:
            assert float(trainer.callback_metrics["train/loss"]) == pytest.approx(0.6)
    cb.on_train_end(trainer, module)
    rows = read_records(tmp_path / "training.csv")
    assert sorted({r["epoch"] for r in rows}) == expected
    assert {(r["seed"], r["estimator"]) for r in rows} == {
        (3, "train"),
        (3, "val"),
        (4, "train"),
        (4, "val"),
    }
    assert all(r["value"] == r["epoch"] for r in rows if r["seed"] == 4 and r["quantity"] == "acc")


def _epochs_through(cb, trainer, module, epochs):
    for e in epochs:
        trainer.current_epoch, module.epoch = e, e + 1
        cb.on_train_epoch_end(trainer, module)


def test_rows_wait_in_memory_until_a_flush_moment(tmp_path):
    """Nothing is written per epoch; a checkpoint, an exception and the end each append what
    waits, so the file holds at least every row of the last checkpoint."""
    cb = TrainingRecordCallback(str(tmp_path))
    module, trainer, path = FakeModule(), _trainer(), tmp_path / "training.csv"
    _epochs_through(cb, trainer, module, range(3))
    assert not path.exists()
    cb.on_save_checkpoint(trainer, module, {})
    assert _epochs(path) == [1, 2, 3]
    _epochs_through(cb, trainer, module, range(3, 5))
    assert _epochs(path) == [1, 2, 3]
    cb.on_exception(trainer, module, KeyboardInterrupt())
    assert _epochs(path) == [1, 2, 3, 4, 5]
    _epochs_through(cb, trainer, module, range(5, 6))
    cb.on_train_end(trainer, module)
    assert _epochs(path) == [1, 2, 3, 4, 5, 6]
    assert len(read_records(path)) == 6 * 4  # each row once


def test_rows_are_appended_at_least_every_flush_seconds(tmp_path, monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("infoflow.callbacks.training.time.monotonic", lambda: clock[0])
    cb = TrainingRecordCallback(str(tmp_path))
    module, trainer, path = FakeModule(), _trainer(), tmp_path / "training.csv"
    cb._flushed_at = clock[0]
    _epochs_through(cb, trainer, module, range(2))
    clock[0] += cb.flush_seconds - 0.5
    _epochs_through(cb, trainer, module, range(2, 3))
    assert not path.exists()  # still within flush_seconds of the last append
    clock[0] += 1.0
    _epochs_through(cb, trainer, module, range(3, 4))
    assert _epochs(path) == [1, 2, 3, 4]


def test_every_n_epochs_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="every_n_epochs"):
        TrainingRecordCallback(str(tmp_path), every_n_epochs=0)
