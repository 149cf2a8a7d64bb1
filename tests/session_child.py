"""A second test session, run by tests/test_instances.py next to its own (not collected by the
suite: the file name does not start with test_). It reports what its session is made of."""

import json
import os
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.waiting import wait_for


def test_child_session(create_sandbox, docker_client):
    """Makes a sandbox, reports this session's label, database, prefixes and the sandbox's
    network; with VIBEBOX_CHILD_HOLD, then waits (holding the sandbox) to be killed."""
    sandbox = create_sandbox()
    container = docker_client.containers.get(sandbox["id"])
    report = {
        "pid": os.getpid(),
        "instance": settings.VIBEBOX_INSTANCE,
        "database": connection.settings_dict["NAME"],
        "cache_prefix": settings.CACHES["default"]["KEY_PREFIX"],
        "channels_prefix": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "container": container.name,
        "labels": container.labels,
        "networks": sorted(container.attrs["NetworkSettings"]["Networks"]),
    }
    path = Path(os.environ["VIBEBOX_CHILD_REPORT"])
    path.with_suffix(".tmp").write_text(json.dumps(report))
    path.with_suffix(".tmp").rename(path)  # whole or not at all: the parent reads it as soon as it exists
    if os.environ.get("VIBEBOX_CHILD_HOLD"):
        wait_for(lambda: False, timeout=240, interval=1, what="the parent test to kill this session")


def test_nothing():
    """Needs no database nor engine: for a session that should stop before running anything."""
