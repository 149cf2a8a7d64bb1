"""deploy/compose.yaml run for real: `make test-compose` (scripts/test-compose.sh builds the images
with debootstrap and Debian's packages, copies the work tree, writes the operator's files with free
ports and sets VIBEBOX_TEST_COMPOSE=1; docs/deploy.md, "What is run"). Skipped otherwise.

The stack comes up (`docker compose up --wait`: every service healthy, setup done), then the
smoke test goes through HAProxy as a client would: /readyz, an API key made with the documented
management command, a sandbox from a warm pool, a command and a file in it, a webhook delivered by
the Celery workers (beat queues it, the webhooks worker sends it), and Prometheus scraping web-1.
The last test takes it down (`stop`, `dropinstance`, `down -v`) and checks that nothing of it is left; the
module's fixture does the same if that test never ran, and prints the services' logs on a failure.
"""

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import docker
import pytest
import requests

from tests.waiting import wait_for
from tests.webhooks.conftest import receiver  # noqa: F401 (the loopback receiver fixture)

pytestmark = pytest.mark.skipif(
    os.environ.get("VIBEBOX_TEST_COMPOSE") != "1", reason="make test-compose runs these (scripts/test-compose.sh)"
)

COMPOSE = os.environ.get("VIBEBOX_COMPOSE", "")
PROJECT = os.environ.get("VIBEBOX_COMPOSE_PROJECT", "")
STACK_INSTANCE = os.environ.get("VIBEBOX_COMPOSE_STACK_INSTANCE", "")
HAPROXY = f"http://{os.environ.get('VIBEBOX_COMPOSE_HAPROXY', '')}"
PROMETHEUS = f"http://{os.environ.get('VIBEBOX_COMPOSE_PROMETHEUS', '')}"
WEB1 = os.environ.get("VIBEBOX_COMPOSE_WEB1", "")

VIBEBOX_SERVICES = [
    "web-1",
    "web-2",
    "web-3",
    "worker-1",
    "worker-2",
    "builds",
    "webhooks",
    "beat",
    "gateway",
    "egress",
]
LONG_RUNNING = ["postgres", "redis", *VIBEBOX_SERVICES, "haproxy", "prometheus"]


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # compose's line erasing, even with --ansi never


def compose(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([COMPOSE, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"compose {' '.join(args)}: exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def containers() -> list[dict]:
    """`compose ps -a`, one dict per container (Service, State, Health, ExitCode...)."""
    out = compose("ps", "-a", "--format", "json").stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def manage(*args: str) -> str:
    """A management command in web-1's container, as docs/deploy.md shows an operator."""
    return compose("exec", "-T", "web-1", ".venv/bin/python", "manage.py", *args, timeout=120).stdout


def _print_logs() -> None:
    """The services that are not as they should be, with their last lines; all of them if each
    looks right (the failure was a request's)."""
    try:
        listed = containers()
    except Exception as exc:  # compose itself failed: say so and go on to down
        print(f"compose ps failed: {exc}")
        return
    print("\n".join(f"{c['Service']}: {c['State']} {c.get('Health', '')} exit {c.get('ExitCode')}" for c in listed))
    bad = [
        c["Service"]
        for c in listed
        if (c["Service"] == "setup" and c.get("ExitCode") != 0)
        or (c["Service"] != "setup" and (c["State"] != "running" or c.get("Health") not in ("", "healthy")))
    ]
    for service in bad or [c["Service"] for c in listed]:
        logs = compose("logs", "--no-color", "--tail", "60", service, check=False)
        print(f"----- {service} -----\n" + ANSI.sub("", logs.stdout + logs.stderr))


def take_down(*, strict: bool = True) -> None:
    """What docs/deploy.md tells an operator to remove the deployment for good: stop every process
    (nothing refills a pool meanwhile), remove the instance's sandboxes, pools and network (the
    stack made them through the engine, not compose) with a one-off setup container, then compose's
    own containers, volumes and networks. `strict`: each step must succeed."""
    compose("stop", "--timeout", "20", timeout=300, check=strict)
    dropped = compose(
        "run",
        "--rm",
        "--no-deps",
        "-T",
        "setup",
        ".venv/bin/python",
        "manage.py",
        "dropinstance",
        "--yes",
        timeout=300,
        check=strict,
    )
    if strict:
        assert f"instance {STACK_INSTANCE}: removed" in dropped.stderr, dropped.stderr
    compose("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)


class Stack:
    def __init__(self, request):
        self.request = request
        self.failed_before = request.session.testsfailed
        self.down = False
        self.broken = False  # `up` failed

    def take_down(self, *, strict: bool = True) -> None:
        """Prints the services' logs first when a test of this module failed (while they are
        there to print), then takes the stack down (take_down above)."""
        if self.broken or self.request.session.testsfailed > self.failed_before:
            capture = self.request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                _print_logs()
        self.down = True
        take_down(strict=strict)


@pytest.fixture(scope="module")
def stack(request):
    state = Stack(request)
    try:
        up = compose("up", "-d", "--wait", "--wait-timeout", "600", timeout=900, check=False)
        if up.returncode != 0:
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print(f"\ncompose up: exit {up.returncode}\n{up.stdout}\n{up.stderr}")
            state.broken = True
            pytest.fail("the stack did not come up: see the services' logs above")
        yield state
    finally:
        if not state.down:  # a failure before the last test: down whatever it takes
            state.take_down(strict=False)


@pytest.fixture(scope="module")
def api_key(stack) -> str:
    key = manage("createapikey", "--user", f"compose-smoke-{uuid.uuid4().hex[:6]}", "--scopes", "all").strip()
    assert key.startswith("vb_live_"), key
    return key


@pytest.fixture(scope="module")
def api(api_key):
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"
    yield session
    session.close()


def test_every_service_is_healthy(stack):
    listed = {c["Service"]: c for c in containers()}
    assert set(listed) == {*LONG_RUNNING, "setup"}, sorted(listed)
    assert listed["setup"]["State"] == "exited" and listed["setup"]["ExitCode"] == 0, listed["setup"]
    for service in LONG_RUNNING:
        assert (listed[service]["State"], listed[service]["Health"]) == ("running", "healthy"), listed[service]
    # The VibeBox services run the image compose built from deploy/Dockerfile; the others Debian's.
    images = {listed[s]["Image"] for s in VIBEBOX_SERVICES}
    assert images == {os.environ["VIBEBOX_COMPOSE_APP_IMAGE"]}, images


def test_readyz_through_haproxy(stack):
    answer = requests.get(f"{HAPROXY}/readyz", timeout=30)
    assert answer.status_code == 200, answer.text
    # HAProxy answered from one of the web slots (haproxy.cfg names the server that served it).
    assert answer.headers["X-VibeBox-Backend"] in {"web1", "web2", "web3"}


def test_a_sandbox_s_life_through_haproxy(stack, api, receiver):  # noqa: F811 (the fixture)
    # A webhook first: the sandbox's events reach it through the Celery workers (beat's
    # deliver-webhooks and the webhooks queue), signed (the receiver checks with standardwebhooks).
    hook = api.post(
        f"{HAPROXY}/api/v1/webhooks",
        json={"url": receiver.url, "events": ["sandbox.created", "sandbox.destroyed"]},
        timeout=30,
    )
    assert hook.status_code == 201, hook.text
    receiver.secrets.append(hook.json()["secret"])

    created = api.post(f"{HAPROXY}/api/v1/sandboxes", json={"template": "python-3", "timeout": "10m"}, timeout=120)
    assert created.status_code == 201, created.text
    sandbox = created.json()
    sid = sandbox["id"]
    assert sandbox["status"] == "running" and sandbox["warm"] is True, sandbox  # from setup's warm pool
    engine = docker.from_env()
    try:
        labels = {"label": [f"vibebox.sandbox-id={sid}", f"vibebox.instance={STACK_INSTANCE}"]}
        assert len(engine.containers.list(filters=labels)) == 1

        ran = api.post(
            f"{HAPROXY}/api/v1/sandboxes/{sid}/exec", json={"command": "python3 -c 'print(6 * 7)'"}, timeout=120
        )
        assert ran.status_code == 200, ran.text
        assert (ran.json()["stdout"], ran.json()["exitCode"]) == ("42\n", 0)

        body = b"written through HAProxy\n"
        put = api.post(
            f"{HAPROXY}/api/v1/sandboxes/{sid}/files", params={"path": "notes/hello.txt"}, data=body, timeout=60
        )
        assert put.status_code == 201, put.text
        got = api.get(f"{HAPROXY}/api/v1/sandboxes/{sid}/files/notes/hello.txt", timeout=60)
        assert (got.status_code, got.content) == (200, body)
        cat = api.post(
            f"{HAPROXY}/api/v1/sandboxes/{sid}/exec", json={"command": "cat /workspace/notes/hello.txt"}, timeout=120
        )
        assert cat.json()["stdout"] == body.decode()

        gone = api.delete(f"{HAPROXY}/api/v1/sandboxes/{sid}", timeout=120)
        assert gone.status_code in (200, 202, 204), gone.text
        wait_for(
            lambda: api.get(f"{HAPROXY}/api/v1/sandboxes/{sid}", timeout=30).json().get("status") == "destroyed",
            timeout=120,
            interval=1,
            what="the sandbox destroyed",
        )
        assert engine.containers.list(all=True, filters=labels) == []
    finally:
        engine.close()

    def delivered():
        return {r["json"]["type"] for r in receiver.requests if r["verified"] and r["json"]["data"]["id"] == sid}

    types = wait_for(
        lambda: {"sandbox.created", "sandbox.destroyed"} <= delivered() and delivered(),
        timeout=180,
        interval=1,
        what="the sandbox's webhooks",
    )
    assert {"sandbox.created", "sandbox.destroyed"} <= types

    # The webhooks worker counted them in the shared metrics volume, and web-1 (another container)
    # answers them: one /metrics for every process of the host.
    token = (Path(os.environ["VIBEBOX_COMPOSE_DIR"]) / "secrets" / "metrics-token").read_text().strip()

    def delivered_total() -> float:
        scraped = requests.get(f"http://{WEB1}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert scraped.status_code == 200, scraped.text[:2000]
        found = re.search(r'^vibebox_webhook_deliveries_total\{outcome="delivered"\} (\S+)$', scraped.text, re.M)
        return float(found.group(1)) if found else 0.0

    # (the worker counts a delivery once it is answered: a moment after the receiver saw it)
    wait_for(lambda: delivered_total() >= 2, timeout=60, interval=1, what="2 deliveries counted")


def test_prometheus_scrapes_web_1(stack):
    """deploy/monitoring/prometheus.yml's vibebox job (web-1, with the metrics token from the
    compose secret) is up: Prometheus read the token file as its user and /metrics accepted it."""

    def up():
        answer = requests.get(f"{PROMETHEUS}/api/v1/query", params={"query": 'up{job="vibebox"}'}, timeout=10).json()
        return answer["data"]["result"]

    result = wait_for(lambda: [r for r in up() if r["value"][1] == "1"], timeout=120, interval=2, what="up == 1")
    assert result[0]["metric"]["instance"] == WEB1
    # Without the token, /metrics refuses even a loopback client (the token is set).
    refused = requests.get(f"http://{WEB1}/metrics", timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (401, "metrics_token_required")


def test_down_removes_everything(stack):
    """Last: `dropinstance` then `down -v` leave no container, volume or network of the stack, and
    none of its instance (sandboxes, pools, their volumes and network)."""
    stack.take_down()
    engine = docker.from_env()
    try:
        project = {"label": f"com.docker.compose.project={PROJECT}"}
        instance = {"label": f"vibebox.instance={STACK_INSTANCE}"}
        # Compose's containers (`oneoff` is theirs alone: compose also labels the image it builds
        # with the project, and a VibeBox process of another run on this engine may make its
        # disk-limit probe, a container it removes at once, from that image, the largest here).
        composes = {"label": [f"com.docker.compose.project={PROJECT}", "com.docker.compose.oneoff"]}
        assert engine.containers.list(all=True, filters=composes) == []
        assert engine.volumes.list(filters=project) == []
        assert engine.networks.list(filters=project) == []
        assert engine.containers.list(all=True, filters=instance) == []
        assert engine.volumes.list(filters=instance) == []
        assert engine.networks.list(names=[f"vibebox-{STACK_INSTANCE}"]) == []
    finally:
        engine.close()
