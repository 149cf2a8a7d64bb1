"""The API's JSON parser: DRF's, with the nesting limit of vibebox.safejson.

The standard parser recurses once per level, so a body of 100,000 `[` raised RecursionError (a
500). Here anything that is not a JSON document of at most `safejson.MAX_DEPTH` levels, with
finite numbers only (`NaN`, `Infinity` and `1e400` have no place in a request) and no NUL character
in a string or key (`\u0000`: PostgreSQL stores none, in text or jsonb; DRF's CharFields refuse it
already, this covers the JSON fields too: `400 nul_character`), is a ParseError: `400 invalid_json`.
"""

import math

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

from vibebox import exceptions as errors
from vibebox import safejson


class _NulCharacter(ValueError):
    pass


def _check_values(value) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError("numbers must be finite")
        elif isinstance(item, str):
            if "\x00" in item:
                raise _NulCharacter
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_json(raw: bytes, encoding: str = "utf-8"):
    """The document in `raw`; ParseError (400 invalid_json) for anything else, and 400
    nul_character for a string or key holding a NUL character."""
    try:
        value = safejson.loads(raw.decode(encoding))
        _check_values(value)
    except _NulCharacter:
        raise errors.NulCharacter(details={"in": "body"}) from None
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError and safejson.TooDeep are ValueErrors
        raise ParseError(f"The request body is not valid JSON: {exc}") from None
    return value


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        return parse_json(stream.read(), encoding)
