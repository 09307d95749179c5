"""The training record: one row per member, quantity and recorded epoch."""

from types import SimpleNamespace

import pytest

from infoflow.callbacks.training import TrainingRecordCallback
from infoflow.records import read_records


class FakeModule:
    seeds = [3, 4]

    def __init__(self):
        self.epoch = 0
        self.logged = {}

    def epoch_record(self):
        return {"train/loss": [0.5, 0.7], "val/acc": [0.9, float(self.epoch)]}

    def log_dict(self, values, logger):
        self.logged = values


@pytest.mark.parametrize(("every", "expected"), [(1, list(range(1, 26))), (10, [10, 20, 25])])
def test_rows_per_member_at_the_recorded_epochs(tmp_path, every, expected):
    cb = TrainingRecordCallback(str(tmp_path), every_n_epochs=every)
    module = FakeModule()
    trainer = SimpleNamespace(is_global_zero=True, max_epochs=25, loggers=[], global_step=0)
    for e in range(25):
        trainer.current_epoch, module.epoch = e, e + 1
        cb.on_train_epoch_end(trainer, module)
        assert module.logged["train/loss"] == pytest.approx(0.6)  # the members' mean, every epoch
    rows = read_records(tmp_path / "training.csv")
    assert sorted({r["epoch"] for r in rows}) == expected
    assert {(r["seed"], r["estimator"]) for r in rows} == {
        (3, "train"),
        (3, "val"),
        (4, "train"),
        (4, "val"),
    }
    assert all(r["value"] == r["epoch"] for r in rows if r["seed"] == 4 and r["quantity"] == "acc")


def test_every_n_epochs_must_be_a_positive_integer(tmp_path):
    with pytest.raises(ValueError, match="every_n_epochs"):
        TrainingRecordCallback(str(tmp_path), every_n_epochs=0)
