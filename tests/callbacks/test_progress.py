"""The epoch bar: log lines and warnings printed while it is up are never glued to it."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from types import SimpleNamespace

from infoflow.callbacks.progress import EpochProgressBar


def segments(text: str) -> list[str]:
    """What a terminal would show as separate line starts: split at carriage returns and newlines."""
    return [s for s in re.split(r"[\r\n]", text) if s.strip()]


def test_log_lines_and_warnings_go_through_tqdm_write_while_the_bar_is_up():
    # not capsys: its fixture starts a capture, which the suite's tiering counts as a process
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        _run_bar_with_a_log_line_and_a_warning()
    lines = segments(out.getvalue())
    logged = [s for s in lines if "fit stopped" in s or "UserWarning: mind the gap" in s]
    assert len(logged) == 2, out.getvalue()  # each on a line of its own
    assert logged[0] == "[some.library] fit stopped"
    assert logged[1].startswith("[py.warnings] ") and "UserWarning: mind the gap" in logged[1]
    assert "mind the gap" not in err.getvalue()  # warnings went through the bar's writer too
    assert any(s.startswith("Epochs: 100%") for s in lines)


def _run_bar_with_a_log_line_and_a_warning() -> None:
    root = logging.getLogger()
    console = logging.StreamHandler(sys.stdout)  # as Hydra's console handler
    console.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
    root.addHandler(console)
    old_level, root.level = root.level, logging.INFO
    trainer = SimpleNamespace(max_epochs=2, current_epoch=0, is_global_zero=True,
                              callback_metrics={})  # fmt: skip
    bar = EpochProgressBar()
    try:
        bar.on_train_start(trainer, None)
        assert console not in root.handlers  # replaced by tqdm's handler while the bar is up
        bar.on_train_epoch_end(trainer, None)
        logging.getLogger("some.library").info("fit stopped")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("mind the gap", UserWarning, stacklevel=1)
        bar.on_train_epoch_end(trainer, None)
        bar.on_train_end(trainer, None)
        assert console in root.handlers  # restored
        assert getattr(logging, "_warnings_showwarning", None) is None
    finally:
        root.removeHandler(console)
        root.level = old_level


def test_an_exception_closes_the_bar_and_restores_logging():
    root = logging.getLogger()
    before = list(root.handlers)
    trainer = SimpleNamespace(max_epochs=2, current_epoch=0, is_global_zero=True,
                              callback_metrics={})  # fmt: skip
    bar = EpochProgressBar()
    bar.on_train_start(trainer, None)
    bar.on_exception(trainer, None, RuntimeError("boom"))
    assert root.handlers == before and bar._bar is None
