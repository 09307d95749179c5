"""The stop hook: registered hooks run at every safe point, raise through it, and go away."""

from __future__ import annotations

import pytest

from infoflow.stopping import safe_point, stop_hook


class Stop(Exception):
    pass


def test_no_hook_is_a_no_op():
    safe_point()


def test_hooks_run_in_order_and_leave_with_their_block():
    calls: list[str] = []
    with stop_hook(lambda: calls.append("a")):
        with stop_hook(lambda: calls.append("b")):
            safe_point()
        safe_point()
    safe_point()
    assert calls == ["a", "b", "a"]


def test_a_raising_hook_raises_at_the_safe_point_and_is_removed_after():
    def hook():
        raise Stop

    with pytest.raises(Stop), stop_hook(hook):
        safe_point()
    safe_point()  # the hook left with its block, even though it raised


def test_the_same_function_registered_twice_is_removed_once_per_block():
    calls: list[int] = []

    def hook():
        calls.append(1)

    with stop_hook(hook):
        with stop_hook(hook):
            safe_point()
        safe_point()
    safe_point()
    assert calls == [1, 1, 1]


def test_a_non_callable_is_refused():
    with pytest.raises(ValueError, match="callable"), stop_hook(42):  # type: ignore[arg-type]
        pass
