"""Two test sessions share one engine: each has its own label, database, prefixes and networks, and
neither's start-up sweep touches the other's sandboxes; a dead session's leftovers are swept.

The second session is a real pytest run (tests/session_child.py) started while this one holds a
sandbox with a file in it."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import docker
import pytest
from django.conf import settings
from django.db import connection

from apps.marketplace.catalog import built_in_templates
from apps.sandboxes.runtime import get_driver
from tests import sessions
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
OURS = settings.VIBEBOX_INSTANCE


def sh(client, sandbox_id, command):
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def child_session(tmp_path, test: str, **env: str) -> subprocess.Popen:
    """`pytest tests/session_child.py::<test>` as a session of its own: no VIBEBOX_TEST_INSTANCE
    unless given (it inherits VIBEBOX_TEST_SESSION, our label for our servers, and must not use it),
    and no xdist worker's variables (it is no worker: its label gets no worker number)."""
    base = {k: v for k, v in os.environ.items() if k != "VIBEBOX_TEST_INSTANCE" and not k.startswith("PYTEST_XDIST")}
    env = {**base, "VIBEBOX_CHILD_REPORT": str(tmp_path / "report.json"), **env}
    command = [sys.executable, "-m", "pytest", f"tests/session_child.py::{test}", "-q", "-p", "no:cacheprovider"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(child: subprocess.Popen) -> tuple[int, str]:
    output, _ = child.communicate(timeout=600)
    return child.returncode, output


@pytest.fixture
def our_sandbox(create_sandbox, api_client, docker_client):
    """A running sandbox of this session with a file in its workspace."""
    sandbox = create_sandbox()
    sh(api_client, sandbox["id"], "echo mine > /workspace/mine.txt")
    return docker_client.containers.get(sandbox["id"])


def assert_intact(container, api_client):
    container.reload()
    assert container.status == "running"
    assert container.labels["vibebox.instance"] == OURS
    assert sorted(container.attrs["NetworkSettings"]["Networks"]) == [f"vibebox-{OURS}"]
    assert sh(api_client, container.name, "cat /workspace/mine.txt")["stdout"] == "mine\n"


def assert_gone(client: docker.DockerClient, label: str) -> None:
    assert not client.containers.list(all=True, filters={"label": f"vibebox.instance={label}"})
    assert not client.volumes.list(filters={"label": f"vibebox.instance={label}"})
    assert not [n for n in client.networks.list(names=[f"vibebox-{label}"]) if n.name.startswith(f"vibebox-{label}")]
    assert not client.volumes.list(filters={"label": f"{sessions.MARKER_LABEL}={label}"})
    assert not any(path.exists() for path in sessions.sqlite_files(settings.DATA_DIR, label))


def test_a_second_session_gets_its_own_everything_and_leaves_ours_alone(
    our_sandbox, api_client, docker_client, tmp_path
):
    code, output = finish(child_session(tmp_path, "test_child_session"))
    assert code == 0, output
    child = json.loads((tmp_path / "report.json").read_text())

    label = child["instance"]
    assert label != OURS and len(label) <= sessions.MAX_LABEL
    assert child["database"] != connection.settings_dict["NAME"]
    assert child["cache_prefix"] == child["channels_prefix"] == f"vibebox-{label}"
    assert settings.CACHES["default"]["KEY_PREFIX"] == f"vibebox-{OURS}"
    assert child["labels"]["vibebox.instance"] == label
    assert child["networks"] == [f"vibebox-{label}"]
    # Its start-up sweep and its end left our sandbox (and its network) alone; its own is gone.
    assert_intact(our_sandbox, api_client)
    assert_gone(docker_client, label)


def test_a_session_on_a_live_sessions_label_stops_before_touching_anything(our_sandbox, api_client, tmp_path):
    code, output = finish(child_session(tmp_path, "test_nothing", VIBEBOX_TEST_INSTANCE=OURS))
    assert code == pytest.ExitCode.USAGE_ERROR, output
    assert f"test instance {OURS!r} is held by another test session" in output
    assert_intact(our_sandbox, api_client)
    # Our database: not replaced (SQLite's file is there; a database server still has it).
    if connection.vendor == "sqlite":
        assert Path(connection.settings_dict["NAME"]).exists()
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [connection.settings_dict["NAME"]])
            assert cursor.fetchone() == (1,)


def test_what_a_killed_session_left_is_swept_and_an_unknown_owners_is_not(
    our_sandbox, api_client, docker_client, tmp_path
):
    child = child_session(tmp_path, "test_child_session", VIBEBOX_CHILD_HOLD="1")
    report = tmp_path / "report.json"
    try:
        wait_for(lambda: report.exists() or child.poll() is not None, timeout=300, what="the child's sandbox")
        assert report.exists(), finish(child)[1]
        dead = json.loads(report.read_text())
        assert dead["pid"] == child.pid
    finally:
        child.send_signal(signal.SIGKILL)  # no teardown: its sandbox, network, marker, database stay
        child.communicate(timeout=60)
    label = dead["instance"]
    assert docker_client.containers.get(dead["container"]).status == "running"
    # A session in another pid space (another container on this engine): not provably dead.
    foreign = sessions.new_label("x")
    docker_client.volumes.create(
        name=sessions.marker_name(foreign),
        labels={sessions.MARKER_LABEL: foreign, sessions.OWNER_LABEL: "0123456789abcdef:1:1"},
    )
    foreign_volume = docker_client.volumes.create(name=f"{foreign}-data", labels={"vibebox.instance": foreign})
    try:
        swept = sessions.sweep_dead(
            docker_client, data_dir=settings.DATA_DIR, remove_network=get_driver().remove_network
        )
        # (a colleague's session starting meanwhile may have swept it first: the end is the same)
        assert foreign not in swept and OURS not in swept
        assert_gone(docker_client, label)
        docker_client.volumes.get(sessions.marker_name(foreign))
        docker_client.volumes.get(foreign_volume.name)
        assert_intact(our_sandbox, api_client)
    finally:
        foreign_volume.remove(force=True)
        docker_client.volumes.get(sessions.marker_name(foreign)).remove(force=True)


def test_a_clean_up_in_the_middle_of_a_session_leaves_its_fixtures(docker_client):
    """test_schema_fuzz cleans up what it made mid-session; removing the session's git servers too
    made a worker's later git tests (and the fixtures' teardown) find them gone."""
    label = sessions.new_label("m")
    image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    made = {}
    try:
        for kind, labels in (
            ("sandbox", {"vibebox.managed": "1", "vibebox.instance": label}),
            ("fixture", {"vibebox.test-fixture": "git", "vibebox.test-instance": label}),
        ):
            made[kind] = docker_client.containers.create(image, ["sleep", "60"], name=f"{label}-{kind}", labels=labels)
        removed = sessions.remove_instance(docker_client, label, fixtures=False)
        assert removed == [f"container {label}-sandbox"]
        assert docker_client.containers.get(made["fixture"].id).name == f"{label}-fixture"
        assert sessions.remove_instance(docker_client, label) == [f"container {label}-fixture"]
    finally:
        for container in made.values():
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
