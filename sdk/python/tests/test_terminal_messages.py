"""The terminal stream's text messages, as the sync and async terminals read them (no server:
the messages are the ones docs/api.md's terminal protocol lists)."""

import json

from vibebox_sdk.streams import TerminalProtocol


def test_truncated_messages_are_counted_and_not_output():
    term = TerminalProtocol(None, {"type": "session", "sessionId": "term_x", "cols": 80, "rows": 24})
    assert term._output(b"before") == b"before"
    assert term._output(json.dumps({"type": "truncated", "droppedBytes": 300})) is None
    assert term._output(json.dumps({"type": "truncated", "droppedBytes": 12})) is None
    assert term._output(json.dumps({"type": "truncated", "droppedBytes": "bogus"})) is None
    assert term._output(json.dumps({"type": "something-new"})) is None  # unknown types are skipped
    assert term.dropped_bytes == 312
    assert term._output(json.dumps({"type": "exit", "exitCode": 3})) is None
    assert term.exit_code == 3
