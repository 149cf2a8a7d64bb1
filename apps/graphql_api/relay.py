"""Relay-style global ids and cursor connections.

A global id is `base64("<TypeName>:<pk or public id>")`, so a client can refetch any object with
`node(id:)`. Connections take `first` (1 to VIBEBOX_GRAPHQL_MAX_PAGE_SIZE, refused above it, as the
REST pagination refuses a limit out of range) and `after` (an opaque offset cursor).
"""

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import strawberry
from django.conf import settings
from django.db.models import QuerySet

from vibebox import exceptions as errors

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 20
_CURSOR_PREFIX = "offset:"


def to_global_id(type_name: str, pk) -> strawberry.ID:
    return strawberry.ID(base64.b64encode(f"{type_name}:{pk}".encode()).decode())


def from_global_id(global_id: str) -> tuple[str, str]:
    """(type name, pk); a malformed id is a `not_found` (as REST answers an unknown id), never a 500."""
    try:
        type_name, _, pk = base64.b64decode(str(global_id).encode(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.NotFound("No object has this id.", details={"id": str(global_id)}) from None
    if not type_name or not pk:
        raise errors.NotFound("No object has this id.", details={"id": str(global_id)})
    return type_name, pk


def pk_of(global_id: str, type_name: str, not_found: type[errors.ApplicationError] = errors.NotFound) -> str:
    """The pk inside a global id that must name a `type_name` (else `not_found`)."""
    kind, pk = from_global_id(global_id)
    if kind != type_name:
        raise not_found(details={"id": str(global_id)})
    return pk


@strawberry.interface(description="An object with a global id, refetchable with `node(id:)`.")
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class Edge(Generic[T]):
    cursor: str
    node: T


@strawberry.type
class Connection(Generic[T]):
    edges: list[Edge[T]]
    page_info: PageInfo
    _count: strawberry.Private[Callable[[], int]]

    @strawberry.field(description="How many objects the whole list has (one COUNT query; ask only when needed).")
    def total_count(self) -> int:
        return self._count()

    @strawberry.field(description="The page's objects, without their cursors.")
    def nodes(self) -> list[T]:
        return [edge.node for edge in self.edges]


def encode_cursor(offset: int) -> str:
    return base64.b64encode(f"{_CURSOR_PREFIX}{offset}".encode()).decode()


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.b64decode(cursor.encode(), validate=True).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        offset = int(text.removeprefix(_CURSOR_PREFIX))
        if offset < 0:
            raise ValueError(text)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _invalid("after", "not a cursor of this list") from None
    return offset


def _invalid(name: str, message: str) -> errors.ApplicationError:
    return errors.ValidationFailed(
        f"{name}: {message}.", details={"fields": {name: [{"message": message, "code": "invalid"}]}}
    )


def page_size(first: int | None) -> int:
    maximum = settings.VIBEBOX_GRAPHQL_MAX_PAGE_SIZE
    if first is None:
        return min(DEFAULT_PAGE_SIZE, maximum)
    if not 1 <= first <= maximum:
        raise _invalid("first", f"a whole number from 1 to {maximum}")
    return first


def paginate(
    rows: QuerySet | Sequence, *, first: int | None, after: str | None, wrap: Callable, on_page: Callable | None = None
) -> Connection:
    """One page of `rows` (a queryset is sliced in SQL, one row more to know if a next page exists);
    `wrap` turns a row into its GraphQL type; `on_page(rows)` lets loaders batch the page's keys."""
    size = page_size(first)
    start = decode_cursor(after) + 1 if after else 0
    window = list(rows[start : start + size + 1])
    has_next = len(window) > size
    window = window[:size]
    if on_page is not None:
        on_page(window)
    edges = [Edge(cursor=encode_cursor(start + index), node=wrap(row)) for index, row in enumerate(window)]
    count = rows.count if isinstance(rows, QuerySet) else (lambda: len(rows))
    return Connection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=start > 0,
            start_cursor=edges[0].cursor if edges else None,
            end_cursor=edges[-1].cursor if edges else None,
        ),
        _count=count,
    )
