"""Structured logs (vibebox/logs.py) in-process: the JSON formatter and the context filter as
settings.LOGGING installs them, credentials redacted, VIBEBOX_LOG_FORMAT, and the request id
Django's middleware answers and binds to log records (Django's test client: no ASGI door)."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from vibebox import logs


def formatted(record: logging.LogRecord, formatter: logging.Formatter | None = None) -> str:
    logs.ContextFilter().filter(record)
    return (formatter or logs.JsonFormatter()).format(record)


def record(message: str, *args, name: str = "apps.test", level: int = logging.INFO, **extra) -> logging.LogRecord:
    made = logging.getLogger(name).makeRecord(name, level, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_a_json_line_has_the_fields_and_only_the_ones_set():
    line = json.loads(formatted(record("made %s", "it", status=201, duration_ms=1.5)))
    assert line["message"] == "made it" and line["level"] == "INFO" and line["logger"] == "apps.test"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["status"] == 201 and line["duration_ms"] == 1.5
    assert "request_id" not in line and "trace_id" not in line  # outside a request


def test_inside_a_request_s_context_every_record_carries_its_id():
    token = logs.bind("req-abc", method="GET", path="/x")
    try:
        logs.note(sandbox_id="sbx_1")
        line = json.loads(formatted(record("inside")))
    finally:
        logs.unbind(token)
    assert line["request_id"] == "req-abc" and line["sandbox_id"] == "sbx_1"


def test_an_exception_is_one_json_line_with_its_traceback():
    try:
        raise ValueError("boom vb_live_AAAAAAAAAAAAAAAAAAAA")
    except ValueError:
        made = logging.getLogger("apps.test").makeRecord(
            "apps.test", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    text = formatted(made)
    assert "\n" not in text
    line = json.loads(text)
    assert "ValueError: boom" in line["exception"] and "AAAAAAAAAAAA" not in line["exception"]
    plain = logs.TextFormatter().format(made)  # the text format (make run on a terminal) redacts too
    assert "ValueError: boom" in plain and "AAAAAAAAAAAA" not in plain


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("key vb_live_3xYzAbCdEfGhIjKlMnOpQrStUv used", "3xYzAbCdEfGhIjKlMnOpQrStUv"),
        ("key vb_test_3xYzAbCdEfGhIjKlMnOpQrStUv used", "3xYzAbCdEfGhIjKlMnOpQrStUv"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("GET /preview/sbx/3000/?a=1&vibebox_token=sbx:3000:99:sig&b=2", "sbx:3000:99:sig"),
        ("login password=hunter2 failed", "hunter2"),
        ('{"token": "abcdef123456"}', "abcdef123456"),
    ],
)
def test_credentials_never_reach_a_line_whatever_code_logged_them(message, secret):
    for formatter in (logs.JsonFormatter(), logs.TextFormatter()):
        assert secret not in formatted(record(message), formatter)
    assert "[redacted]" in formatted(record(message))


def test_the_format_setting(monkeypatch):
    monkeypatch.setenv("VIBEBOX_LOG_FORMAT", "text")
    assert isinstance(logs.formatter(), logs.TextFormatter)
    monkeypatch.setenv("VIBEBOX_LOG_FORMAT", "JSON")
    assert isinstance(logs.formatter(), logs.JsonFormatter)
    monkeypatch.setenv("VIBEBOX_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="json or text"):
        logs.formatter()
    monkeypatch.delenv("VIBEBOX_LOG_FORMAT")
    assert logs.log_format() == ("text" if sys.stderr.isatty() else "json")


def test_the_text_format_ends_with_the_request_and_trace_ids():
    text = formatted(record("hello", request_id="req_1", trace_id="ab" * 16), logs.TextFormatter())
    assert text.endswith(f"apps.test hello [req_1 {'ab' * 16}]")


def test_settings_logging_uses_the_formatter_and_the_filter():
    from django.conf import settings

    config = settings.LOGGING
    assert config["formatters"]["vibebox"]["()"] == "vibebox.logs.formatter"
    assert config["handlers"]["console"]["filters"] == ["context"]
    assert config["loggers"]["uvicorn.access"]["handlers"] == ["console"]


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("abc", True),
        ("A.b-c_9", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("", False),
    ],
)
def test_the_request_id_is_the_client_s_when_sane(client, db, sent, echoed):
    headers = {"HTTP_X_REQUEST_ID": sent} if sent else {}
    answered = client.get("/healthz", **headers)["X-Request-Id"]
    if echoed:
        assert answered == sent
    else:
        assert answered != sent and answered.startswith("req_") and len(answered) == 20


def test_an_error_envelope_names_the_request_id(client, db):
    answer = client.get("/api/v1/sandboxes", HTTP_X_REQUEST_ID="mine-1")
    assert answer.status_code == 401 and answer.json()["requestId"] == "mine-1" == answer["X-Request-Id"]
