"""`vibebox webhooks`: the real console script against the live test server, delivering to a
receiver on loopback (the sender runs when the test runs it, `conftest.deliver`)."""

from __future__ import annotations

import json

from conftest import cli, deliver


def test_webhooks_from_create_to_rm(cli_env, server, receiver):
    created = cli(
        cli_env,
        "webhooks",
        "create",
        receiver.url,
        "--events",
        "sandbox.created,execution.failed",
        "--description",
        "cli hook",
        "--filter-template",
        "python-3",
        "--filter-metadata",
        "ci=run-1",
    )
    assert created.returncode == 0, created.stderr
    secret = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("secret"))
    assert secret.startswith("whsec_")
    hook_id = next(line.split()[-1] for line in created.stdout.splitlines() if line.startswith("id "))
    assert hook_id.startswith("whk_") and receiver.url in created.stdout
    assert "template=python-3 ci=run-1" in created.stdout
    assert "store the secret now: it is not shown again" in created.stderr and secret not in created.stderr
    receiver.secrets.append(secret)
    try:
        shown = cli(cli_env, "webhooks", "show", hook_id)
        assert shown.returncode == 0 and "cli hook" in shown.stdout and secret not in shown.stdout + shown.stderr
        as_json = json.loads(cli(cli_env, "webhooks", "show", hook_id, "--json").stdout)
        assert as_json["id"] == hook_id and "secret" not in as_json
        assert as_json["filter"] == {"template": "python-3", "metadata": {"ci": "run-1"}}

        listed = cli(cli_env, "webhooks", "ls")
        assert listed.returncode == 0 and "ID" in listed.stdout and hook_id in listed.stdout
        assert "active" in listed.stdout and secret not in listed.stdout
        assert hook_id in [h["id"] for h in json.loads(cli(cli_env, "webhooks", "ls", "--json").stdout)]

        updated = cli(cli_env, "webhooks", "update", hook_id, "--events", "*", "--inactive", "--no-filter", "--json")
        assert updated.returncode == 0, updated.stderr
        changed = json.loads(updated.stdout)
        assert (changed["events"], changed["active"], changed["filter"]) == (["*"], False, {})
        nothing = cli(cli_env, "webhooks", "update", hook_id)
        assert nothing.returncode == 2 and "give something to change" in nothing.stderr

        tested = cli(cli_env, "webhooks", "test", hook_id, "--json")  # inactive: a test is still sent
        assert tested.returncode == 0, tested.stderr
        queued = json.loads(tested.stdout)
        assert (queued["event"], queued["status"]) == ("webhook.test", "pending")
        assert deliver(server, hook_id) == 1
        assert [r["verified"] for r in receiver.requests] == [[secret]]

        table = cli(cli_env, "webhooks", "deliveries", hook_id)
        assert table.returncode == 0 and queued["id"] in table.stdout and "succeeded" in table.stdout
        shown = cli(cli_env, "webhooks", "delivery", hook_id, queued["id"])
        assert shown.returncode == 0, shown.stderr
        assert "webhook.test" in shown.stdout and queued["eventId"] in shown.stdout and "200" in shown.stdout
        detail = json.loads(cli(cli_env, "webhooks", "delivery", hook_id, queued["id"], "--json").stdout)
        assert [a["statusCode"] for a in detail["attemptLog"]] == [200]
        assert detail["payload"]["type"] == "webhook.test"

        again = cli(cli_env, "webhooks", "redeliver", hook_id, queued["id"], "--json")
        assert again.returncode == 0, again.stderr
        redelivery = json.loads(again.stdout)
        assert redelivery["redeliveryOf"] == queued["id"] and redelivery["eventId"] == queued["eventId"]
        assert deliver(server, hook_id) == 1 and len(receiver.seen) == 1 and len(receiver.requests) == 2
        listed = json.loads(cli(cli_env, "webhooks", "deliveries", hook_id, "--json").stdout)
        assert [d["id"] for d in listed] == [redelivery["id"], queued["id"]]  # newest first
        assert [
            d["id"]
            for d in json.loads(cli(cli_env, "webhooks", "deliveries", hook_id, "--limit", "1", "--json").stdout)
        ] == [redelivery["id"]]
        failed = cli(cli_env, "webhooks", "deliveries", hook_id, "--status", "failed", "--json")
        assert json.loads(failed.stdout) == []

        rotated = cli(cli_env, "webhooks", "rotate-secret", hook_id)
        assert rotated.returncode == 0, rotated.stderr
        new_secret = next(line.split()[-1] for line in rotated.stdout.splitlines() if line.startswith("secret"))
        assert new_secret.startswith("whsec_") and new_secret != secret
        assert "store the secret now" in rotated.stderr and "signs until" in rotated.stdout
    finally:
        removed = cli(cli_env, "webhooks", "rm", hook_id)
    assert removed.returncode == 0 and f"deleted {hook_id}" in removed.stdout
    missing = cli(cli_env, "webhooks", "show", hook_id)
    assert missing.returncode == 3 and "(webhook_not_found)" in missing.stderr and missing.stdout == ""


def test_webhooks_errors_and_exit_codes(cli_env):
    unknown = cli(cli_env, "webhooks", "create", "https://hooks.example.com/x", "--events", "sandbox.exploded")
    assert unknown.returncode == 1 and "(unknown_event)" in unknown.stderr and unknown.stdout == ""
    no_events = cli(cli_env, "webhooks", "create", "https://hooks.example.com/x")
    assert no_events.returncode == 2 and "--events" in no_events.stderr
    bad_metadata = cli(
        cli_env, "webhooks", "create", "https://hooks.example.com/x", "--events", "*", "--filter-metadata", "nokey"
    )
    assert bad_metadata.returncode == 2 and "KEY=VALUE" in bad_metadata.stderr
    for args in (("show", "whk_nosuchwebhook"), ("deliveries", "whk_nosuchwebhook"), ("rm", "whk_nosuchwebhook")):
        missing = cli(cli_env, "webhooks", *args)
        assert missing.returncode == 3 and "(webhook_not_found)" in missing.stderr, args

    created = json.loads(
        cli(cli_env, "webhooks", "create", "https://hooks.example.com/x", "--events", "*", "--json").stdout
    )
    assert created["secret"].startswith("whsec_")  # --json carries it too
    listed = cli(cli_env, "webhooks", "list", "--json")  # `list` and `delete`, as keys and roles name them
    assert created["id"] in [h["id"] for h in json.loads(listed.stdout)]
    try:
        gone = cli(cli_env, "webhooks", "delivery", created["id"], "dlv_nosuchdelivery")
        assert gone.returncode == 3 and "(delivery_not_found)" in gone.stderr
    finally:
        removed = cli(cli_env, "webhooks", "delete", created["id"], "--json")
        assert removed.returncode == 0 and json.loads(removed.stdout) == {"id": created["id"], "deleted": True}
