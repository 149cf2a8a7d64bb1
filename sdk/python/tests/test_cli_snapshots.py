"""vibebox snapshot create|ls|restore|new|rm against the live server."""

from __future__ import annotations

import json

from conftest import cli


def test_snapshot_commands(cli_env, vb):
    with vb.with_sandbox("python-3", name="cli-snap") as box:
        box.files.write("state.txt", "v1")
        made = cli(cli_env, "snapshot", "create", "cli-snap", "first", "--json")
        assert made.returncode == 0, made.stderr
        snap = json.loads(made.stdout)
        assert snap["name"] == "first" and snap["sandboxName"] == "cli-snap"
        try:
            box.files.write("state.txt", "v2")
            restored = cli(cli_env, "snapshot", "restore", "cli-snap", snap["id"], "--json")
            assert restored.returncode == 0, restored.stderr
            assert json.loads(restored.stdout)["status"] == "running"
            assert box.files.read_text("state.txt") == "v1"

            listed = cli(cli_env, "snapshot", "ls", "--json")
            assert [s["id"] for s in json.loads(listed.stdout)] == [snap["id"]]
            assert snap["id"] in cli(cli_env, "snapshot", "ls", "cli-snap").stdout

            copy = cli(cli_env, "snapshot", "new", snap["id"], "cli-snap-copy", "--json")
            assert copy.returncode == 0, copy.stderr
            with vb.get(json.loads(copy.stdout)["id"]) as copied:
                assert copied.files.read_text("state.txt") == "v1"
        finally:
            removed = cli(cli_env, "snapshot", "rm", snap["id"])
            assert removed.returncode == 0, removed.stderr
        missing = cli(cli_env, "snapshot", "restore", "cli-snap", snap["id"])
        assert missing.returncode == 3
        assert "snapshot_not_found" in missing.stderr
