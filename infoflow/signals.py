"""Stopping a run cleanly on SIGTERM (a scheduler's pre-emption, ``kill``), SIGINT (Ctrl-C) and
SIGHUP (a closed terminal): by flag, at safe points.

The handler only records the signal and returns. The run stops at the next safe point
(:func:`infoflow.stopping.safe_point`: between training steps, SP's query batches, members,
figures, download chunks, sweep jobs), where :func:`check` raises :class:`RunInterrupted`. Raising
from the handler itself, as this module once did, breaks inside compiled code that calls back into
Python (numba's unpickling of its cache, llvmlite's callbacks while it compiles): the exception
surfaced as a ``SystemError`` (exit 1, ``failed``) or was swallowed by ctypes, after which every
later signal was ignored. :class:`RunInterrupted` is a ``BaseException`` but not a
``KeyboardInterrupt``, so neither ``except Exception`` in a callback nor Lightning's Ctrl-C
handling swallows it; Lightning still calls its ``on_exception`` hooks and finalises its loggers.

A second signal ends the process at once: the ``final`` function given to
:func:`stop_on_signals` writes the run's status first, then ``os._exit(128 + signum)``. Inside a
:func:`infoflow.stopping.critical` section (a record append, an atomic rename) that waits until
the section ends; a file being written to be renamed into place (a checkpoint, a figure) is
removed (:func:`infoflow.stopping.scratch`): nothing is left half written.

Python runs signal handlers in the main thread, between bytecodes: a long call into compiled code
holds them back until it returns. So a watchdog thread, woken through
:func:`signal.set_wakeup_fd` by the C-level handler itself, carries out the second signal's hard
stop when the main thread has not within :data:`GRACE_S`; it can whenever the compiled code has
released the GIL (LLVM compiling the SP engine, torch operations, file and network I/O). Code that
holds the GIL (a numba function without ``nogil``) delays both until it returns; SIGKILL still
ends anything.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from types import FrameType

from infoflow.stopping import after_critical, discard, in_critical, stop_hook

# SIGHUP: the terminal went away (an ssh session closed). Not on Windows.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name)
)
#: Seconds the watchdog leaves the main thread to carry out a hard stop itself.
GRACE_S = 1.0
#: The same signal again within this many seconds is the same stop, not a second one: a signal
#: sent to a process group and forwarded by a sweep's process arrives twice at once.
DUPLICATE_S = 0.5
#: Seconds a hard stop waits at most for a critical section (a checkpoint being written) to end.
CRITICAL_WAIT_S = 30.0


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
    """The handlers' state: the signals received, the hard stop's status writer, a hard stop held
    back by a critical section, and the lock that lets one thread carry out the hard stop."""

    active = False
    received: list[int] = []
    first_at = 0.0
    final: Callable[[int], None] | None = None
    on_signal: Callable[[int, bool], None] | None = None
    pending: int | None = None
    exiting = threading.Lock()


def _duplicate(signum: int, first: int | None, first_at: float) -> bool:
    """Whether ``signum`` now is the first signal delivered again (:data:`DUPLICATE_S`)."""
    return signum == first and time.monotonic() - first_at < DUPLICATE_S


def _say(text: str) -> None:
    """One line on stderr, safe inside a signal handler (no buffer, no lock)."""
    try:
        os.write(2, f"infoflow: {text}\n".encode())
    except OSError:
        pass


def received() -> int | None:
    """The first stop signal recorded inside the current :func:`stop_on_signals`, or None."""
    return _State.received[0] if _State.active and _State.received else None


def check() -> None:
    """The stop hook of every safe point: raise :class:`RunInterrupted` once a signal has been
    recorded (and at every later safe point: a stop is not undone by code that catches it)."""
    if _State.received:
        raise RunInterrupted(_State.received[0])


def _hard_stop(signum: int) -> None:
    """Write the status (``final``) and end the process with 128 + ``signum``, now."""
    if not _State.exiting.acquire(blocking=False):
        return  # the other thread is doing it
    try:
        if _State.final is not None:
            _State.final(signum)
        discard()  # files half written (to be renamed into place) go
    except BaseException as exc:  # noqa: BLE001 - nothing may keep the process alive now
        _say(f"could not record the stop: {type(exc).__name__}: {exc}")
    finally:
        _say(f"{signal.Signals(signum).name} again: stopped at once")
        os._exit(128 + signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _duplicate(signum, received(), _State.first_at):
        return
    first = not _State.received
    _State.received.append(signum)
    if first:
        _State.first_at = time.monotonic()
    if _State.on_signal is not None:
        try:
            _State.on_signal(signum, first)
        except Exception as exc:  # noqa: BLE001 - a helper's failure must not break the stop
            _say(f"while passing {signal.Signals(signum).name} on: {type(exc).__name__}: {exc}")
    name = signal.Signals(signum).name
    if first:
        _say(f"{name} received: stopping at the next safe point ({name} again: at once)")
    elif in_critical():
        _State.pending = signum  # carried out when the section ends (_release)
    else:
        _hard_stop(signum)


def _release() -> None:
    """After a critical section: a hard stop it held back."""
    if _State.pending is not None:
        _hard_stop(_State.pending)


def _watch(sock: socket.socket) -> None:
    """The watchdog: counts stop signals as the C-level handler reports them and carries out the
    second one's hard stop if the main thread cannot."""
    first, first_at, stops = None, 0.0, []
    while len(stops) < 2:
        try:
            data = sock.recv(64)
        except OSError:
            return
        if not data:
            return  # the run is over: the socket was closed
        for signum in (b for b in data if b in STOP_SIGNALS):
            if first is None:
                first, first_at = signum, time.monotonic()
            elif _duplicate(signum, first, first_at):
                continue
            stops.append(signum)
    time.sleep(GRACE_S)  # the main thread's handler goes first
    end = time.monotonic() + CRITICAL_WAIT_S
    while in_critical() and time.monotonic() < end:
        time.sleep(0.02)
    if _State.active:
        _hard_stop(stops[-1])


@contextmanager
def _watchdog() -> Iterator[None]:
    """A thread that sees every signal at once, through the wakeup fd (main thread only)."""
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    try:
        before = signal.set_wakeup_fd(theirs.fileno(), warn_on_full_buffer=False)
    except ValueError:  # not the main thread
        ours.close(), theirs.close()
        yield
        return
    thread = threading.Thread(target=_watch, args=(ours,), name="infoflow-stop", daemon=True)
    thread.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(before)
        theirs.close()
        ours.shutdown(socket.SHUT_RDWR)
        thread.join(timeout=1)
        ours.close()


def _both(
    inner: Callable[[int], None] | None, outer: Callable[[int], None] | None
) -> Callable[[int], None] | None:
    """``inner`` then ``outer`` (a sweep job's status, then the sweep's last line)."""
    if inner is None or outer is None:
        return inner or outer

    def final(signum: int) -> None:
        try:
            inner(signum)
        finally:
            outer(signum)

    return final


@contextmanager
def stop_on_signals(
    final: Callable[[int], None] | None = None,
    on_signal: Callable[[int, bool], None] | None = None,
) -> Iterator[None]:
    """Inside, SIGTERM, SIGINT and SIGHUP are recorded and acted on at safe points
    (:class:`RunInterrupted`, exit code 143, 130, 129); a second one calls ``final(signum)`` (write
    the status) and exits at once. ``on_signal(signum, first)`` is called in the handler for each
    (a sweep passes them on to its jobs). Outside, the handlers that were there before. A signal
    the process ignores (``nohup``) stays ignored. Nested, the inner block adds its ``final``
    (called first) and may replace ``on_signal``. Does nothing outside the main thread (Python delivers signals
    only there).
    """
    if _State.active:
        outer = _State.final, _State.on_signal
        _State.final, _State.on_signal = _both(final, outer[0]), on_signal or outer[1]
        try:
            yield
        finally:
            _State.final, _State.on_signal = outer
        return
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.received, _State.pending, _State.final = [], None, final
    _State.on_signal = on_signal
    # A signal the caller ignores stays ignored (nohup: SIGHUP; a shell's background job: SIGINT).
    ignored = {s for s in STOP_SIGNALS if signal.getsignal(s) is signal.SIG_IGN}
    before = {s: signal.signal(s, _handler) for s in STOP_SIGNALS if s not in ignored}
    _State.active = True
    try:
        with ExitStack() as stack:
            stack.enter_context(stop_hook(check))
            stack.enter_context(after_critical(_release))
            stack.enter_context(_watchdog())
            yield
    finally:
        _State.active, _State.on_signal = False, None
        for s, h in before.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
