"""Request ids, structured logs and the access log (docs/monitoring.md, "Traces and logs").

- `RequestContext` (ASGI, around the whole app in vibebox/asgi.py) gives every HTTP request an id:
  the client's `X-Request-Id` when it is sane (at most 128 of [A-Za-z0-9._-]), else a new
  `req_<16 hex>`. It answers it in `X-Request-Id` on every response (Django's, /mcp's, a preview's,
  a 413 from the body limit), with `traceparent` when tracing is on (vibebox/tracing.py), and writes
  one access line per request on the `vibebox.access` logger when the response is done.
- `RequestIdMiddleware` (Django, vibebox/middleware.py) binds the Django request to it: the route
  (the URL pattern, never the raw path), the sandbox id from the URL, and, once the API has
  authenticated the caller, the key's id and its organization.
- `ContextFilter` adds those, and the current trace and span ids, to every log record written while
  the request is handled (on any thread: the context is a contextvar, which asgiref copies into the
  threads Django's views run on), and redacts credentials (API keys, bearer tokens, preview tokens)
  from the message.
- `VIBEBOX_LOG_FORMAT`: `json` (one JSON object a line: `JsonFormatter`) or `text`; default `json`
  unless standard error is a terminal.

The fields never hold a secret: a key appears by its id (`key_...`), never its value; the access line
has the path without its query string (where preview tokens and signatures travel).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import os
import re
import secrets
import sys
import time

from vibebox.metrics import route_of  # one meaning of "route" for logs, traces and metrics

_request: contextvars.ContextVar[dict | None] = contextvars.ContextVar("vibebox_request", default=None)

_SANE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
FIELDS = ("request_id", "trace_id", "span_id", "org", "key_id", "sandbox_id", "route", "status", "duration_ms")

access_logger = logging.getLogger("vibebox.access")


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


def request_id_from(value: str | None) -> str:
    """The client's id if it is sane, else a new one."""
    return value if value and _SANE_ID.match(value) else new_request_id()


def current_request_id() -> str:
    info = _request.get()
    return info["request_id"] if info else ""


def bind(request_id: str, **fields) -> contextvars.Token:
    """Starts a request's context (RequestContext does; so does RequestIdMiddleware when a request
    reaches Django without it, as with Django's test client)."""
    return _request.set({"request_id": request_id, **fields})


def unbind(token: contextvars.Token) -> None:
    _request.reset(token)


def note(**fields) -> None:
    """Adds fields the URL does not tell (a create's new sandbox id) to the request's log context."""
    info = _request.get()
    if info is not None:
        info.update({name: str(value) for name, value in fields.items() if value})


def log_format() -> str:
    """VIBEBOX_LOG_FORMAT: json or text; default json, text when standard error is a terminal."""
    value = os.environ.get("VIBEBOX_LOG_FORMAT", "").strip().lower()
    if value in ("json", "text"):
        return value
    if value:
        raise ValueError(f"VIBEBOX_LOG_FORMAT is json or text, not {value!r}")
    try:
        return "text" if sys.stderr.isatty() else "json"
    except (AttributeError, ValueError):
        return "json"


# ---- what a request's context tells a log record ----


def _caller(info: dict) -> tuple[str, str]:
    """(org id, key id) of the request's caller, once authenticated: the API sets `auth` on the
    Django request to the ApiKey."""
    request = info.get("request")
    if request is None:
        return "", ""
    key = getattr(request, "auth", None)
    key_id = getattr(key, "pk", None) if key is not None and hasattr(key, "key_hash") else None
    org = getattr(key, "org_id", None) if key_id else None
    return (str(org) if org else ""), (str(key_id) if key_id else "")


def request_fields(info: dict | None) -> dict:
    if not info:
        return {}
    fields = {"request_id": info.get("request_id", "")}
    request = info.get("request")
    if request is not None:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            fields["route"] = route_of(request)
            if match.kwargs.get("sandbox_id"):
                fields["sandbox_id"] = str(match.kwargs["sandbox_id"])
        fields["org"], fields["key_id"] = _caller(info)
    for name in ("sandbox_id", "org"):  # noted by the code handling the request (`note`)
        if info.get(name) and not fields.get(name):
            fields[name] = info[name]
    return {name: value for name, value in fields.items() if value}


# Credentials that must never reach a log line, whatever code logged them.
_SECRETS = (
    (re.compile(r"\b(vb_(?:live|test)_)[A-Za-z0-9]{8,}"), r"\1[redacted]"),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1[redacted]"),
    (re.compile(r"(?i)(vibebox_token=)[^&\s\"']+"), r"\1[redacted]"),
    (
        re.compile(r"(?i)((?:password|passwd|secret|token|api_key|apikey)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,}]+"),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class ContextFilter(logging.Filter):
    """Puts the request's fields and the trace ids on every record (those a record already has, from
    `extra=`, are kept) and redacts credentials from its message. Install on handlers."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in request_fields(_request.get()).items():
            if not getattr(record, name, None):
                setattr(record, name, value)
        if not getattr(record, "trace_id", None):
            from vibebox import tracing

            trace_id, span_id = tracing.current_ids()
            if trace_id:
                record.trace_id, record.span_id = trace_id, span_id
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _time(record: logging.LogRecord) -> str:
    moment = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, then whichever of FIELDS the record has,
    and `exception` (the traceback) when there is one."""

    EXTRA = ("method", "path", "client")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*FIELDS, *self.EXTRA):
            value = getattr(record, name, None)
            if value not in (None, ""):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`<time> <LEVEL> <logger> <message>`, then the request id and trace id in brackets when set."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatException(self, ei) -> str:
        return redact(super().formatException(ei))  # a traceback's locals and messages may hold a key

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        tags = [getattr(record, name, "") for name in ("request_id", "trace_id")]
        tags = [tag for tag in tags if tag]
        return f"{line} [{' '.join(tags)}]" if tags else line


def formatter() -> logging.Formatter:
    """The formatter VIBEBOX_LOG_FORMAT names (settings.LOGGING uses it through `()`)."""
    return JsonFormatter() if log_format() == "json" else TextFormatter()


# ---- ASGI: the request id, the answer's headers, the access line ----


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


class RequestContext:
    """ASGI middleware (outermost but for tracing's): the request id, `X-Request-Id` and
    `traceparent` on the answer, and the access line."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        from vibebox import tracing

        request_id = request_id_from(_header(scope, b"x-request-id"))
        token = bind(request_id, method=scope.get("method", "GET"), path=scope.get("path", ""))
        info = _request.get()
        if scope["type"] == "websocket":
            try:
                return await self.app(scope, receive, send)
            finally:
                unbind(token)
        server_span = None
        if tracing.enabled():
            from opentelemetry import trace

            server_span = trace.get_current_span()
        started = time.perf_counter()
        status = {"code": 0}

        async def send_with_ids(message):
            if message["type"] == "http.response.start":
                status["code"] = message.get("status", 0)
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                if b"x-request-id" not in names:
                    headers.append((b"x-request-id", request_id.encode()))
                if server_span is not None:
                    _name_span(server_span, scope, info)  # before the span ends with the body
                parent = tracing.traceparent(server_span) if server_span is not None else ""
                if parent and b"traceparent" not in names:
                    headers.append((b"traceparent", parent.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            try:
                self._access(scope, info, status["code"] or 500, started)
            finally:
                unbind(token)

    @staticmethod
    def _access(scope, info: dict, status: int, started: float) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        fields = request_fields(info)
        client = scope.get("client")
        access_logger.info(
            "%s %s %s %.1fms",
            scope.get("method", "GET"),
            scope.get("path", ""),
            status,
            duration_ms,
            extra={
                **fields,
                "status": status,
                "duration_ms": duration_ms,
                "method": scope.get("method", "GET"),
                "path": scope.get("path", ""),
                "client": client[0] if client else "",
            },
        )


def _name_span(server_span, scope, info: dict) -> None:
    """The ASGI span only knew the method (vibebox/tracing.py): name it after the Django route that
    matched, if one did (`POST /api/v1/sandboxes/<str:sandbox_id>/exec`)."""
    route = request_fields(info).get("route", "")
    if route and route != "unmatched" and server_span.is_recording():
        server_span.update_name(f"{scope.get('method', 'GET')} /{route}")
        server_span.set_attribute("http.route", "/" + route)


def attach_django_request(request) -> str:
    """RequestIdMiddleware's part: binds the Django request to the context RequestContext started
    (answers the request id). Outside ASGI (Django's test client) there is none: a context is
    started for the request and ended by `detach`."""
    info = _request.get()
    if info is None:
        return ""
    info["request"] = request
    return info["request_id"]
