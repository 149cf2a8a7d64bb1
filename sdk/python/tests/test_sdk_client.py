"""The client's surface against the live server: sandboxes, helpers, templates, keys, errors."""

from __future__ import annotations

import docker
import pytest
from vibebox_sdk import (
    AuthenticationError,
    ClaudeNotEnabledError,
    ClaudeUnavailableError,
    ConflictError,
    NoMatchingNodeError,
    PermissionDeniedError,
    SandboxNotFoundError,
    SandboxPausedError,
    SnapshotNotFoundError,
    ValidationError,
    VibeBox,
)


def container_exists(sandbox_id: str) -> bool:
    client = docker.from_env()
    try:
        return bool(client.containers.list(all=True, filters={"label": [f"vibebox.sandbox-id={sandbox_id}"]}))
    finally:
        client.close()


def test_create_with_options_get_list_update_destroy(vb):
    sandbox = vb.create(
        template="python-3",
        name="sdk-full",
        auto_start=True,
        ephemeral=False,
        timeout="2h",
        env={"GREETING": "hello"},
        metadata={"team": "sdk"},
    )
    try:
        assert sandbox.status == "running"
        assert sandbox.name == "sdk-full"
        assert sandbox.info.metadata == {"team": "sdk"}
        assert 7100 < sandbox.info.timeout <= 7200
        assert sandbox.run("echo $GREETING").stdout == "hello\n"
        assert vb.get("sdk-full").id == sandbox.id
        assert vb.get(sandbox.id).name == "sdk-full"
        assert [s.id for s in vb.list(metadata={"team": "sdk"})] == [sandbox.id]
        assert vb.list(name="sdk-full", status="stopped") == []
        sandbox.update(name="sdk-renamed", metadata={"team": "sdk2"}, timeout=None)
        assert (sandbox.name, sandbox.info.metadata, sandbox.info.expires_at) == ("sdk-renamed", {"team": "sdk2"}, None)
        assert sandbox.refresh().name == "sdk-renamed"
    finally:
        sandbox.destroy()
    assert not container_exists(sandbox.id)
    assert vb.get(sandbox.id).status == "destroyed"  # the record stays readable by id
    with pytest.raises(SandboxNotFoundError) as info:
        vb.get("sdk-renamed")  # names are for live sandboxes
    assert info.value.request_id.startswith("req_")
    sandbox.destroy()  # idempotent


def test_lifecycle_returns_the_sandbox(sandbox):
    assert sandbox.stop().status == "stopped"
    assert sandbox.start().status == "running"
    assert sandbox.restart().status == "running"
    assert sandbox.pause().status == "paused"
    with pytest.raises(ConflictError) as info:
        sandbox.restart()
    assert info.value.code == "sandbox_state_conflict"
    assert sandbox.resume().status == "running"


def test_auto_start_false(vb):
    sandbox = vb.create("python-3", auto_start=False)
    try:
        assert sandbox.status == "stopped"
    finally:
        sandbox.destroy()


def test_with_sandbox_destroys_even_on_exception(vb):
    with pytest.raises(RuntimeError, match="boom"), vb.with_sandbox("python-3") as sandbox:
        sandbox_id = sandbox.id
        assert sandbox.run("print(1)").stdout == "1\n"
        raise RuntimeError("boom")
    assert not container_exists(sandbox_id)
    assert vb.get(sandbox_id).status == "destroyed"


def test_create_many_and_destroy_all(vb):
    boxes = vb.create_many([{"template": "python-3", "name": "many-1"}, {"template": "node-20", "name": "many-2"}])
    try:
        assert [b.name for b in boxes] == ["many-1", "many-2"]
        assert [b.template for b in boxes] == ["python-3.13", "node-20"]
        assert all(b.status == "running" for b in boxes)
    finally:
        assert vb.destroy_all(boxes) == 2
    assert not any(container_exists(b.id) for b in boxes)


def test_create_many_cleans_up_when_one_fails(vb):
    with pytest.raises(ValidationError) as info:
        vb.create_many([{"template": "python-3", "name": "ok-one"}, {"template": "no-such-template"}])
    assert info.value.code == "unknown_template"
    assert vb.list(name="ok-one") == []


def test_ephemeral_helpers(vb):
    sandbox = vb.ephemeral("python-3", "1h")
    try:
        assert sandbox.info.ephemeral is True
        assert 3500 < sandbox.info.timeout <= 3600
    finally:
        sandbox.destroy()

    seen = {}

    def work(box):
        seen["id"] = box.id
        assert box.info.ephemeral
        return box.run("print(40 + 2)").stdout

    assert vb.with_ephemeral("python-3", work, timeout="15m") == "42\n"
    assert not container_exists(seen["id"])

    result = vb.run_once("node-20", "console.log('Hello!'); return 6 * 7")
    assert (result.stdout, result.return_value, result.exit_code) == ("Hello!\n", 42, 0)
    assert vb.list() == []


def test_errors_carry_codes(vb, server):
    with pytest.raises(ValidationError) as info:
        vb.create("python-3", timeout="forever")
    assert info.value.code == "invalid_duration"
    assert info.value.status == 400
    with pytest.raises(NoMatchingNodeError) as info:  # node labels no engine of the server has
        vb.create("python-3", node_labels={"region": "nowhere"})
    assert isinstance(info.value, ValidationError) and info.value.details == {"nodeLabels": {"region": "nowhere"}}
    with pytest.raises(ConflictError) as info, vb.with_sandbox("python-3", name="dup"):
        vb.create("python-3", name="dup")
    assert info.value.code == "sandbox_name_taken"
    with pytest.raises(AuthenticationError), VibeBox(api_key="vb_live_wrong", base_url=server.url) as bad:
        bad.list()
    read_only = server.create_key("sdk-reader", "sandboxes:read")
    with pytest.raises(PermissionDeniedError) as info, VibeBox(api_key=read_only, base_url=server.url) as reader:
        reader.create("python-3")
    assert info.value.code == "insufficient_scope"


def test_another_owner_sees_404(vb, sandbox, outsider_key, server):
    with VibeBox(api_key=outsider_key, base_url=server.url) as other:
        with pytest.raises(SandboxNotFoundError):
            other.get(sandbox.id)
        assert other.list() == []
        stranger = other._transport.send  # the same calls, with the outsider's key
        from vibebox_sdk import calls

        with pytest.raises(SandboxNotFoundError):
            stranger(calls.exec_command(sandbox.id, {"command": "id"}))


def test_snapshots_round_trip(vb, sandbox):
    sandbox.files.write("state.txt", "before")
    snap = sandbox.snapshot("before-deploy")
    try:
        assert (snap.name, snap.sandbox_id, snap.template) == ("before-deploy", sandbox.id, "python-3.13")
        assert snap.size == snap.image_bytes + snap.workspace_bytes > 0
        assert [s.id for s in sandbox.snapshots()] == [snap.id]
        assert vb.snapshot(snap.id).name == "before-deploy"
        sandbox.files.write("state.txt", "after")
        assert sandbox.restore(snap) is sandbox
        assert sandbox.files.read_text("state.txt") == "before"
        with vb.create(snapshot=snap) as copy:
            assert copy.template == "python-3.13"
            assert copy.files.read_text("state.txt") == "before"
    finally:
        vb.delete_snapshot(snap)
    assert snap.id not in [s.id for s in vb.snapshots()]
    with pytest.raises(SnapshotNotFoundError):
        sandbox.restore(snap.id)


def test_paused_errors_and_pause_settings(vb):
    with vb.with_sandbox("python-3", auto_pause="10m", pause_stops_timeout=True, timeout="1h") as sandbox:
        assert (sandbox.info.auto_pause, sandbox.info.pause_stops_timeout) == (600, True)
        sandbox.pause()
        assert sandbox.info.paused_at
        with pytest.raises(SandboxPausedError):
            sandbox.files.read("anything")
        sandbox.update(auto_resume=True)
        assert sandbox.exec("echo up").stdout == "up\n"


def test_claude_needs_a_template_with_it(sandbox):
    with pytest.raises(ClaudeUnavailableError) as info:
        sandbox.claude.enable()
    assert info.value.details == {"template": "python-3.13"}
    with pytest.raises(ClaudeNotEnabledError):
        sandbox.claude.ask("Add tests")
    assert sandbox.claude.status()["enabled"] is False


def test_templates_health_and_keys(vb):
    names = [t.name for t in vb.templates()]
    assert {"node-20", "python-3.13"} <= set(names)
    node = vb.template("node-20")
    assert node.languages[0] == "javascript"
    assert node.workdir == "/workspace"
    health = vb.health()
    assert health["status"] == "ok"
    assert all(check["ok"] for check in health["checks"].values())

    created = vb.keys.create("ci key", scopes=["sandboxes:read"], expires_in="1d")
    assert created.key.startswith("vb_live_")
    assert created.scopes == ["sandboxes:read"]
    assert created.id in [k.id for k in vb.keys.list()]
    usage = vb.keys.usage(created.id)
    assert usage["key_id"] == created.id
    rotated = vb.keys.rotate(created.id, grace_period="1m")
    assert rotated.key != created.key
    vb.keys.revoke(rotated.id)
    assert vb.keys.get(rotated.id).active is False
