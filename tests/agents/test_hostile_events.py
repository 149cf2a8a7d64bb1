"""Claude's event stream is printed in the sandbox, so it is read as hostile (issue 17, item 3):
a line is never buffered past its limit, JSON is depth-limited and finite, fields of any shape
are survived, and the result's numbers are checked before they are stored."""

import json

import pytest

from apps.agents import asks
from apps.agents.models import ClaudeAsk, ClaudeEvent, ClaudeSession, ClaudeSetup
from tests.conftest import sandbox_row

MiB = 1024 * 1024


@pytest.fixture
def ask(owner, templates):
    sandbox = sandbox_row(owner, templates["python-3"])
    ClaudeSetup.objects.create(sandbox=sandbox, version="2", home="/home/agent", token_hash="h" * 64)
    session = ClaudeSession.objects.create(id="session-1", sandbox=sandbox, cwd="/workspace")
    return ClaudeAsk.objects.create(session=session, sandbox=sandbox, prompt="hello")


def stored(ask) -> list[ClaudeEvent]:
    return list(ClaudeEvent.objects.filter(ask=ask).order_by("seq"))


def test_an_endless_line_is_never_buffered_whole(ask):
    lines = asks._Lines(ask)
    for _ in range(40):  # 40 MiB without a newline
        lines.feed("stdout", b"x" * MiB)
        assert len(lines.lines._buffer) <= asks.EVENT_LINE_LIMIT
    lines.feed("stdout", b'tail\n{"type": "system", "subtype": "init", "model": "m"}\n')
    lines.flush()
    events = stored(ask)
    # The over-long line is kept as one cut output event; the next line is read normally.
    assert [e.type for e in events] == ["output", "init"]
    assert events[0].data["truncated"] is True and len(events[0].data["text"]) == 4000


def test_malformed_deep_and_non_finite_events_are_survived(ask):
    lines = asks._Lines(ask)
    hostile = [
        b"[" * 100_000 + b"]" * 100_000,  # deeper than any parser should go
        b'{"type": "result", "total_cost_usd": NaN}',  # not JSON: a strict renderer would 500 on it
        b'{"type": "assistant", "message": "not an object"}',
        b'{"type": "assistant", "message": {"content": "text, not blocks"}}',
        b'{"type": "assistant", "message": {"content": [{"type": "tool_use", "name": ["x"], "input": 7}]}}',
        b'{"type": ["a", "list"], "message": {"content": [1, null, {"type": {"odd": true}}]}}',
        b'{"type": "system", "subtype": "init", "model": {"nested": [1, 2]}}',
        b"[1, 2, 3]",
        b'{"type": "result", "total_cost_usd": "1.5", "num_turns": "many", "usage": [1], "duration_ms": -5,'
        b' "is_error": false, "result": {"an": "object"}, "subtype": 12}',
    ]
    lines.feed("stdout", b"\n".join(hostile) + b"\n")
    lines.flush()
    events = stored(ask)
    assert len(events) == len(hostile) - 1  # the bare array is not an event
    for event in events:
        json.dumps(event.data, allow_nan=False)  # every stored event renders as strict JSON
    assert events[0].type == "output" and events[1].type == "output"

    asks._finish(ask, ask.session, ask.sandbox, lines, None, "", False, "")
    ask.refresh_from_db()
    assert ask.status == ClaudeAsk.Status.FAILED
    assert (ask.num_turns, ask.cost_usd, ask.usage, ask.duration_ms) == (None, None, {}, None)


def test_events_past_the_limit_are_counted_not_stored(ask, monkeypatch):
    monkeypatch.setattr(asks, "EVENTS_LIMIT", 5)
    lines = asks._Lines(ask)
    lines.feed("stdout", b'{"type": "user"}\n' * 12)
    assert len(stored(ask)) == 5 and lines.dropped == 7
