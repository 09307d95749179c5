import numpy as np
import pytest

from infoflow.callbacks.schedule import scheduled_epochs


def test_log_spaced_matches_the_authors_epochs_plus_epoch_zero():
    authors = set(np.unique(np.round(np.logspace(0, np.log10(9999), 100))).astype(int))
    assert len(authors) == 84
    assert scheduled_epochs(9999, n_points=100) == sorted(authors | {0})


def test_always_epoch_zero_and_the_last():
    epochs = scheduled_epochs(1000, n_points=5)
    assert epochs[0] == 0 and epochs[-1] == 1000
    assert scheduled_epochs(7, every_n_epochs=3) == [0, 3, 6, 7]


def test_every_n_and_log_spaced_combine():
    assert set(scheduled_epochs(100, every_n_epochs=50, n_points=3)) == {0, 1, 10, 50, 100}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"every_n_epochs": 0}, {"n_points": 1}, {"every_n_epochs": None, "n_points": None}],
)
def test_schedules_that_name_no_epoch_are_rejected(kwargs):
    with pytest.raises(ValueError):
        scheduled_epochs(100, **kwargs)
