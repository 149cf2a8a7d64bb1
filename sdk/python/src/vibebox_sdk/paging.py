"""Following a paginated list (`limit`/`offset`) to its end, or to the first `limit` items: the
one pager of the namespaces that list (`vb.webhooks`, `vb.marketplace`), sync and async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import calls

PAGE = 100  # items per request when a list follows every page

PageCall = Callable[[int, int], calls.Call]  # (size, offset) -> the request of that page


class Paged:
    """A namespace whose `_send(call)` answers a list call as `(items, more)`."""

    _send: Callable[[calls.Call], Any]

    def _collect(self, page: PageCall, limit: int | None) -> Any:
        found: list[Any] = []
        while limit is None or len(found) < limit:
            items, more = self._send(page(_size(limit, found), len(found)))
            found.extend(items)
            if not more or not items:
                break
        return found


class AsyncPaged(Paged):
    """The same, for a namespace of `AsyncVibeBox` (its `_send` is awaited)."""

    async def _collect(self, page: PageCall, limit: int | None) -> Any:  # type: ignore[override]
        found: list[Any] = []
        while limit is None or len(found) < limit:
            items, more = await self._send(page(_size(limit, found), len(found)))
            found.extend(items)
            if not more or not items:
                break
        return found


def _size(limit: int | None, found: list[Any]) -> int:
    return PAGE if limit is None else min(PAGE, limit - len(found))
