"""vibebox_exec_total's outcomes for real commands: ok, error (another exit code), timeout (its
timeout fired), killed (a signal ended it: exit 128 + signal), counted once per command."""

import pytest

from tests.monitoring.test_metrics import scrape, value


@pytest.mark.django_db
def test_each_outcome_of_a_command(client, api_client, create_sandbox):
    sandbox_id = create_sandbox()["id"]
    before = scrape(client)
    commands = [
        ({"command": "true"}, "ok"),
        ({"command": "exit 2"}, "error"),
        ({"command": "sleep 30", "timeout": 1}, "timeout"),
        ({"command": "kill -KILL $$"}, "killed"),
        ({"command": "kill -TERM $$"}, "killed"),
    ]
    for body, _ in commands:
        response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
        assert response.status_code == 200, response.content
    after = scrape(client)
    for outcome in ("ok", "error", "timeout", "killed"):
        expected = sum(1 for _, wanted in commands if wanted == outcome)
        added = (value(after, "vibebox_exec_total", kind="exec", outcome=outcome) or 0) - (
            value(before, "vibebox_exec_total", kind="exec", outcome=outcome) or 0
        )
        assert added == expected, outcome
    timed = (value(after, "vibebox_exec_seconds_count", kind="exec", language="") or 0) - (
        value(before, "vibebox_exec_seconds_count", kind="exec", language="") or 0
    )
    assert timed == len(commands)
    # The timeout's duration is about its timeout: in the buckets above 0.5 s, not below.
    over_half = (value(after, "vibebox_exec_seconds_bucket", kind="exec", language="", le="+Inf") or 0) - (
        value(after, "vibebox_exec_seconds_bucket", kind="exec", language="", le="0.5") or 0
    )
    assert over_half >= 1
