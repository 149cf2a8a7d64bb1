"""Waiting on a condition with a deadline, instead of sleeping and hoping (a busy 2-core machine
makes any fixed pause too short some day)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not come true in time (an AssertionError: tests report it as a failure)."""


def wait_for(predicate: Callable[[], T], *, timeout: float = 60, interval: float = 0.1, what: str = "") -> T:
    """Calls `predicate` until it answers something true, and answers that; raises WaitTimeout after
    `timeout` seconds, naming `what` and the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"waited {timeout:g} s for {what or predicate!r}; last: {value!r}")
        time.sleep(interval)


async def async_wait_for(
    predicate: Callable[[], Awaitable[T] | T], *, timeout: float = 60, interval: float = 0.1, what: str = ""
) -> T:
    """wait_for for coroutines: `predicate` may be a plain or an async function."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"waited {timeout:g} s for {what or predicate!r}; last: {value!r}")
        await asyncio.sleep(interval)
