"""JSON from untrusted sources (request bodies, WebSocket messages, anything a sandbox prints).

The standard parser recurses once per nesting level: a body of 100,000 `[` raises RecursionError,
which callers do not expect (a 500), and a document just under the interpreter's limit still
breaks the code that walks it later. `loads` refuses both with a ValueError subclass, so every
caller's existing `except ValueError` turns them into its usual "invalid JSON" answer.
"""

import json

MAX_DEPTH = 64


class TooDeep(ValueError):
    """The document nests deeper than allowed (or deeper than the parser can go)."""


def loads(data: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH):
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep(f"JSON nested deeper than {max_depth} levels") from None
    check_depth(value, max_depth=max_depth)
    return value


def check_depth(value, *, max_depth: int = MAX_DEPTH) -> None:
    """Raises TooDeep when `value` nests containers more than `max_depth` levels (iteratively:
    the check itself never recurses)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            raise TooDeep(f"JSON nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
