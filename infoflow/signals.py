"""Stopping a run cleanly on SIGTERM (a scheduler's pre-emption, ``kill``) and SIGINT (Ctrl-C).

Lightning alone only notices SIGTERM between training steps, so a long estimate in a callback
delays the stop until it returns (minutes at the papers' settings), and it turns Ctrl-C into exit
status 1. Here the first signal raises :class:`RunInterrupted` in the main thread at the next
Python bytecode: the estimators are Python loops over chunks of torch operations, so a run stops
within one chunk. The exception is a ``BaseException`` but not a ``KeyboardInterrupt``, so neither
``except Exception`` in a callback nor Lightning's Ctrl-C handling swallows it; Lightning still
calls its ``on_exception`` hooks and finalises its loggers on the way out. Later signals are
ignored while the run cleans up (records, W&B, ``status.json``); SIGKILL still ends it at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# SIGHUP: the terminal went away (an ssh session closed). Not on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)


class RunInterrupted(BaseException):
    """A stop signal arrived; ``exit_code`` is the shell's convention, 128 + the signal number.

    >>> RunInterrupted(signal.SIGTERM).exit_code, str(RunInterrupted(signal.SIGINT))
    (143, 'interrupted by SIGINT')
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(f"interrupted by {self.name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    """The handler's state: signals received, how deep inside :func:`deferred` we are, and the
    signal it holds back."""

    received: list[int] = []
    deferring = 0
    pending: int | None = None


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside, SIGTERM, SIGINT and SIGHUP raise :class:`RunInterrupted` once (exit code 143, 130,
    129); outside, the handlers that were there before. A signal the process ignores (``nohup``)
    stays ignored. Does nothing outside the main thread (Python delivers signals only there).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.received, _State.pending = [], None

    def handler(signum: int, frame: FrameType | None) -> None:
        if _State.received:  # already stopping: let the clean-up finish
            return
        _State.received.append(signum)
        if _State.deferring:
            _State.pending = signum
        else:
            raise RunInterrupted(signum)

    # A signal the caller ignores stays ignored (nohup: SIGHUP; a shell's background job: SIGINT).
    ignored = {s for s in STOP_SIGNALS if signal.getsignal(s) is signal.SIG_IGN}
    before = {s: signal.signal(s, handler) for s in STOP_SIGNALS if s not in ignored}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@contextmanager
def deferred() -> Iterator[None]:
    """A write that must not be cut in half (a checkpoint): a stop signal that arrives inside is
    raised when the block ends.

    >>> import os
    >>> with stop_on_signals():
    ...     try:
    ...         with deferred():
    ...             os.kill(os.getpid(), signal.SIGTERM)
    ...             done = True  # still runs
    ...     except RunInterrupted as exc:
    ...         print(done, exc.exit_code)
    True 143
    """
    _State.deferring += 1
    try:
        yield
    finally:
        _State.deferring -= 1
    if not _State.deferring and _State.pending is not None:
        signum, _State.pending = _State.pending, None
        raise RunInterrupted(signum)
