"""Shared fixtures. Everything runs against the real Docker engine, Redis and database."""

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import docker
import pytest
from asgiref.sync import async_to_sync
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from rest_framework.test import APIClient

from apps.billing.models import Plan
from apps.keys.scopes import ALL_SCOPES
from apps.keys.services import api_key_create
from apps.marketplace.catalog import built_in_templates
from apps.marketplace.models import BuildState
from apps.marketplace.services import template_build_state_set, template_upsert
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.images import pooled_template_names, templates_sync
from apps.sandboxes.models import Sandbox
from apps.sandboxes.runtime import get_driver
from bench.common import free_port, listens, procfile_server
from tests import sessions
from tests.database import child_database_url
from tests.faults import engine_fault  # noqa: F401 (the fixture, for every test)
from tests.gitservers import git, git_servers, recording_git_server  # noqa: F401 (fixtures: defined once)
from tests.waiting import wait_for

TEST_LABELS = {"vibebox.managed": "1", "vibebox.instance": django_settings.VIBEBOX_INSTANCE}
LABEL_FILTER = [f"{k}={v}" for k, v in TEST_LABELS.items()]
INSTANCE_LABEL = f"vibebox.instance={django_settings.VIBEBOX_INSTANCE}"


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env()
    yield client
    client.close()


def _test_containers(client):
    return client.containers.list(all=True, filters={"label": LABEL_FILTER})


def _remove_all(client, *, fixtures: bool = True):
    """Everything of this session's label: containers, volumes, its networks, snapshot images;
    without `fixtures`, the session-wide fixtures (git servers) stay."""
    sessions.remove_instance(
        client, django_settings.VIBEBOX_INSTANCE, remove_network=get_driver().remove_network, fixtures=fixtures
    )


def pytest_sessionstart(session):
    """Claims this session's label before any fixture runs (a second session on a live session's
    label must stop before its database set-up replaces the first one's SQLite file)."""
    client = docker.from_env()
    try:
        sessions.claim(client, django_settings.VIBEBOX_INSTANCE)
    except sessions.LabelInUse as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    finally:
        client.close()


# The files that take longest, longest first (their time in a `make test` of 2026-12-05, per
# file). `make test` hands whole files to its workers in collection order (--dist loadfile
# --no-loadscope-reorder): xdist's own order, most tests first, left single-test files such as
# the schema fuzzer for last, and the run ended with one worker busy and two idle. Files not
# listed keep their order, after these. Refresh the list from --durations when it drifts.
HEAVY_FIRST = (
    "sdk/typescript/test/test_typescript_sdk.py",
    "tests/sandboxes/test_hostile_output.py",
    "tests/sandboxes/test_faults_create.py",
    "tests/sandboxes/test_git_security.py",
    "sdk/python/tests/test_cli_sandboxes.py",
    "tests/test_schema_fuzz.py",
    "tests/test_request_limits.py",
    "sdk/python/tests/test_sdk_billing.py",
    "sdk/python/tests/test_sdk_marketplace.py",
    "tests/agents/test_claude_e2e.py",
    "sdk/python/tests/test_agent.py",
    "tests/billing/test_metering.py",
    "sdk/python/tests/test_sdk_client.py",
    "tests/sandboxes/test_pools.py",
    "tests/graphql/test_mutations.py",
    "tests/dashboard/test_browser.py",
    "tests/billing/test_quotas.py",
    "tests/nodes/test_placement.py",
    "tests/marketplace/test_community.py",
    "tests/sandboxes/test_faults_lifecycle.py",
    "tests/sandboxes/test_files.py",
    "sdk/python/tests/test_cli_exec.py",
    "tests/sandboxes/test_terminal.py",
    "tests/agents/test_gateway_failures.py",
    "tests/agents/test_claude_modes_e2e.py",
    "tests/test_make_run.py",
    "tests/sandboxes/test_backup_restore.py",
)


def pytest_collection_modifyitems(session, config, items):
    rank = {path: index for index, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))  # stable: files stay whole


def pytest_sessionfinish(session):
    with contextlib.closing(docker.from_env()) as client:
        sessions.release(client, django_settings.VIBEBOX_INSTANCE)


@pytest.fixture(scope="session", autouse=True)
def engine_sweep(docker_client):
    """Clears what this session's label holds and what provably dead sessions left (never another
    live session's: tests/sessions.py), and proves at the end that no test left a container behind."""
    sessions.sweep_dead(docker_client, data_dir=django_settings.DATA_DIR, remove_network=get_driver().remove_network)
    _remove_all(docker_client)
    yield
    leftovers = [c.name for c in _test_containers(docker_client)]
    _remove_all(docker_client)
    assert not leftovers, f"tests left containers behind: {leftovers}"


SEED_PLANS = importlib.import_module("apps.billing.migrations.0002_costs_seed_plans").seed


@pytest.fixture(autouse=True)
def seeded_plans(request):
    """The plans the data migration seeds (free, pro, team, internal: tests/settings.py's default),
    back before every test that uses the database: a transactional test ends with a flush that
    removes them for the tests after it in the same process, and without the default plan every
    quota check and cost fails. One query when they are there."""
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        request.getfixturevalue("_django_db_helper")
        if not Plan.objects.filter(slug=django_settings.VIBEBOX_DEFAULT_PLAN).exists():
            SEED_PLANS(django_apps, None)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, and on PostgreSQL, before it drops the test database, the database's other
    sessions ended: threads of this process keep connections of their own (asgiref's and channels'
    executor threads behind the WebSocket tests), and PostgreSQL refuses to drop a database in use
    (the database stayed, with a warning)."""
    yield
    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), contextlib.suppress(DatabaseError):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()


# The templates the suite creates sandboxes of; the other built-in ones are make test-templates'.
SUITE_TEMPLATES = ["node-22-claude-code", "node-20-claude-code"]


@pytest.fixture(scope="session")
def built_images(django_db_setup, django_db_blocker):
    """Builds any missing image of the templates the suite uses once (make test has normally built
    them already)."""
    with django_db_blocker.unblock():
        templates_sync(build=True, only=[*pooled_template_names(built_in_templates()), *SUITE_TEMPLATES])


@pytest.fixture
def templates(built_images, db, docker_client):
    """Template rows in the test database (transactional tests flush them after each test), by
    name and by alias (`templates["python-3"]` is python-3.13's). A template whose image is not
    built here is listed as queued, with no image."""
    rows = {}
    for source in built_in_templates():
        try:
            image = docker_client.images.get(source.image)
        except docker.errors.ImageNotFound:
            rows[source.name] = template_build_state_set(source=source, state=BuildState.QUEUED)
        else:
            rows[source.name] = template_upsert(source=source, image_size=image.attrs["Size"])
        for alias in source.spec.get("aliases") or []:
            rows[str(alias)] = rows[source.name]
    return rows


@pytest.fixture
def owner(db):
    return get_user_model().objects.create_user(username="owner", password="pw-owner")


@pytest.fixture
def outsider(db):
    return get_user_model().objects.create_user(username="outsider", password="pw-outsider")


def _client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def make_key():
    def make(user, scopes=ALL_SCOPES, **kwargs):
        key, secret = api_key_create(user=user, name=kwargs.pop("name", "test key"), scopes=scopes, **kwargs)
        return key, secret

    return make


@pytest.fixture
def api_key(owner, make_key):
    return make_key(owner)


@pytest.fixture
def api_client(api_key):
    return _client(api_key[1])


@pytest.fixture
def outsider_client(outsider, make_key):
    return _client(make_key(outsider)[1])


@pytest.fixture
def client_for(make_key):
    """A client for `user` holding only `scopes`."""

    def make(user, scopes=ALL_SCOPES, **kwargs):
        return _client(make_key(user, scopes, **kwargs)[1])

    return make


def streamed_body(response) -> bytes:
    """The whole body of a download streamed asynchronously (as views stream under ASGI)."""

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def sandbox_row(owner, template, **fields) -> Sandbox:
    """A sandbox row with no container behind it, in its owner's personal organization: for tests
    of what reads rows (access rules, pages, shapes)."""
    defaults = {"name": "row", "image": "x", "status": "running", "cpu": 1, "memory": 1 << 28}
    org = fields.pop("org", None) or personal_org_ensure(user=owner)
    return Sandbox.objects.create(owner=owner, org=org, template=template, **{**defaults, **fields})


@pytest.fixture
def cleanup_sandbox_ids():
    """Ids of sandboxes a test made through the API; their containers are removed afterwards."""
    ids: list[str] = []
    yield ids
    driver = get_driver()
    for sandbox_id in ids:
        driver.remove(sandbox_id, volume=f"{sandbox_id}-workspace")
    if ids:
        _remove_snapshot_images()


def _remove_snapshot_images():
    """Snapshot images outlive their sandbox, and the test's database rows are gone now: one a test
    left would show up in the next test's image listings (they name this session's instance)."""
    labels = [f"vibebox.instance={django_settings.VIBEBOX_INSTANCE}", "vibebox.snapshot-id"]
    with contextlib.closing(docker.from_env()) as client:
        for image in sessions.image_ids(client, {"label": labels}):
            with contextlib.suppress(docker.errors.NotFound):
                client.images.remove(image, force=True)


@pytest.fixture
def create_sandbox(api_client, templates, cleanup_sandbox_ids):
    """POSTs a sandbox through the API (as `owner`) and removes it at teardown."""

    def create(client=None, expect=201, **body):
        body.setdefault("template", "python-3")
        response = (client or api_client).post("/api/v1/sandboxes", body, format="json")
        assert response.status_code == expect, response.content
        if response.status_code == 201:
            cleanup_sandbox_ids.append(response.json()["id"])
        return response.json()

    return create


ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def live_server(*, workers: int = 1, output=None, **extra_env):
    """single_live_server; or, under `make test-ha` (VIBEBOX_TEST_HA=1), three web processes behind
    HAProxy with deploy/haproxy/haproxy.cfg (tests/ha/stack.py): the same (url, pid), the url
    HAProxy's, the pid the first web process's."""
    if os.environ.get("VIBEBOX_TEST_HA"):
        from tests.ha.stack import ha_stack

        with ha_stack(output=output, **extra_env) as stack:
            yield stack.url, stack.webs[0].pid
        return
    with single_live_server(workers=workers, output=output, **extra_env) as served:
        yield served


@contextlib.contextmanager
def single_live_server(*, workers: int = 1, output=None, port: int = 0, **extra_env):
    """The Procfile's web server (uvicorn and its flags) on loopback, on the test database, with
    `workers` processes (VIBEBOX_WEB_WORKERS). Needs a transactional test. Yields (http url, pid of
    the server, the master's when there are several workers). `output`: a file for the server's
    stdout and stderr (default: this process's stderr); given, not by redirecting sys.stderr, where
    another test's leftover thread could write too."""
    port = port or free_port()
    # Its processes' metrics, in a directory of its own (vibebox/metrics.py), as `make run` sets it.
    own_metrics_dir = "PROMETHEUS_MULTIPROC_DIR" not in extra_env
    metrics_dir = tempfile.mkdtemp(prefix="vibebox-metrics-") if own_metrics_dir else ""
    env = {
        **os.environ,
        **({"PROMETHEUS_MULTIPROC_DIR": metrics_dir} if own_metrics_dir else {}),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": child_database_url(),
        "VIBEBOX_PORT": str(port),  # as the Procfile passes it: the server's own origins derive from it
        **extra_env,
    }
    command = [*procfile_server(), "vibebox.asgi:application"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        cwd=ROOT,
        env=env,
        stdout=output or sys.stderr,
        stderr=output or sys.stderr,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, "the live server exited"
            if not listens(process.pid, port):  # not yet, or another server took the port
                return False
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    return True
            except OSError:
                return False

        # Generous: on a loaded 2-core machine Django's start alone has taken over 10 s.
        wait_for(healthy, timeout=120, interval=0.2, what=f"the live server on {url}")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=10)
        if own_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
