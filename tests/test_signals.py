"""Stops by flag: a stop signal is recorded by the handler and acted on at the next safe point; a
second one ends the process at once, after the status is written, and never cuts a critical write.

The in-process tests send signals to pytest's own process inside :func:`stop_on_signals`; the hard
stops (``os._exit``) run in a small Python subprocess. Real runs are in tests/test_faults.py.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from infoflow.signals import DUPLICATE_S, RunInterrupted, received, stop_on_signals
from infoflow.stopping import safe_point
from tests.conftest import ROOT

STOPS = [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGHUP, 129)]


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@pytest.mark.parametrize(("signum", "code"), STOPS)
def test_a_signal_is_recorded_and_acted_on_at_the_next_safe_point(signum, code):
    with stop_on_signals():
        os.kill(os.getpid(), signum)
        _spin(0.2)  # work without a safe point goes on: the handler raised nothing
        assert received() == signum
        with pytest.raises(RunInterrupted) as exc:
            safe_point()
        with pytest.raises(RunInterrupted):  # and at every later one: a stop is not undone
            safe_point()
    assert exc.value.exit_code == code and str(exc.value) == f"interrupted by {signum.name}"
    safe_point()  # outside: no hook, nothing raised


def test_nothing_is_raised_inside_a_callback_from_compiled_code():
    """The issue's failure: a handler that raises inside a ctypes callback (llvmlite's, numba's)
    gives 'Exception ignored on calling ctypes callback function' and loses the stop. Here C's
    qsort calls back into Python, where the signal arrives; the stop comes after qsort returns."""
    libc = ctypes.CDLL(None)
    compare = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)
    )
    sent = []

    def cmp(a, b):  # noqa: ANN001
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
            _spin(0.05)  # the Python handler runs here, inside the callback
        return a[0] - b[0]

    values = (ctypes.c_int * 64)(*range(64, 0, -1))
    with stop_on_signals():
        libc.qsort(values, 64, ctypes.sizeof(ctypes.c_int), compare(cmp))
        assert list(values) == list(range(1, 65))  # the sort finished
        with pytest.raises(RunInterrupted) as exc:
            safe_point()
    assert exc.value.exit_code == 130


def test_the_same_signal_delivered_twice_at_once_is_one_stop():
    """A signal sent to a process group and passed on by the sweep's process arrives twice."""
    with stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # within DUPLICATE_S: no hard stop
        _spin(0.1)
        with pytest.raises(RunInterrupted):
            safe_point()
    assert DUPLICATE_S <= 0.5


def test_handlers_are_restored_and_ignored_signals_stay_ignored():
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before
    old = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            _spin(0.05)
            safe_point()  # ignored: nothing recorded
            assert received() is None
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, old)


def test_not_an_exception_so_callbacks_cannot_swallow_it():
    assert not issubclass(RunInterrupted, Exception)
    assert not issubclass(RunInterrupted, KeyboardInterrupt)  # Lightning turns that into exit 1


# ------------------------------------------------------------------ hard stops (a subprocess)

HARD_STOP = """
import os, signal, sys, time
from pathlib import Path
from infoflow.signals import stop_on_signals
from infoflow.stopping import critical

out = Path(sys.argv[1])
def final(signum):
    (out / "status").write_text(f"interrupted {{signal.Signals(signum).name}}")
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
with stop_on_signals(final=final):
    (out / "ready").write_text("")
    {body}
(out / "ended").write_text("normally")
"""


def _hard_stop(tmp_path: Path, body: str, *signals: tuple[float, int], timeout: float = 30):
    """Run ``body`` under stop_on_signals in a child; send ``signals`` ((delay s, signum)) once it
    is ready; return (exit code, seconds from the last signal to the exit)."""
    script = HARD_STOP.format(body=textwrap.indent(textwrap.dedent(body), "    ").strip())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], env=env)
    end = time.monotonic() + timeout
    while not (tmp_path / "ready").exists() and time.monotonic() < end:
        time.sleep(0.02)
    for delay, signum in signals:
        time.sleep(delay)
        proc.send_signal(signum)
    sent = time.monotonic()
    code = proc.wait(timeout=timeout)
    return code, time.monotonic() - sent


def test_a_second_signal_writes_the_status_and_ends_the_process_at_once(tmp_path):
    code, seconds = _hard_stop(
        tmp_path, "spin(20)", (0.1, signal.SIGTERM), (DUPLICATE_S + 0.2, signal.SIGINT)
    )
    assert code == 130 and seconds < 1.5, (code, seconds)
    assert (tmp_path / "status").read_text() == "interrupted SIGINT"
    assert not (tmp_path / "ended").exists()


def test_a_hard_stop_waits_for_a_critical_write_to_end(tmp_path):
    body = """
    with critical():
        (out / "whole").write_text("begun")
        time.sleep(1.5)  # e.g. a checkpoint being written
        (out / "whole").write_text("whole")
    spin(20)
    """
    code, seconds = _hard_stop(
        tmp_path, body, (0.1, signal.SIGTERM), (DUPLICATE_S + 0.1, signal.SIGTERM)
    )
    assert code == 143 and (tmp_path / "whole").read_text() == "whole"
    assert 0.5 < seconds < 2.5, seconds


def test_the_watchdog_ends_the_process_while_compiled_code_keeps_the_main_thread(tmp_path):
    """The main thread waits in C and never returns to bytecode (here it locks a mutex it holds:
    a wait no signal interrupts, with the GIL released, as in LLVM compiling the SP engine), so
    no Python handler runs; the watchdog thread, woken by the C-level handler through the wakeup
    fd, writes the status and ends the process."""
    body = """
    import ctypes
    libc = ctypes.CDLL(None)
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)  # never returns
    """
    code, seconds = _hard_stop(
        tmp_path, body, (0.3, signal.SIGTERM), (DUPLICATE_S + 0.2, signal.SIGTERM)
    )
    assert code == 143 and (tmp_path / "status").read_text() == "interrupted SIGTERM"
    assert seconds < 3, seconds
