"""`make run` for real: the Makefile's `run` recipe (bootstrap, reconcile --startup, warmpools --fill,
then honcho with the Procfile: web, Celery worker, webhooks' Celery worker, Celery beat, model
gateway, egress proxy) as subprocesses, on its own instance label, data directory (SQLite file, beat schedule),
Redis server and ports.

Expiry and auto-pause are left to beat: nothing here calls reconcile, the test only watches the API
and the engine. `make -o setup run` runs the same recipe as `make run` without the host setup
(Docker engine, Redis, virtualenv: in place already); the migrate and image steps of `make setup`
run first for the fresh data directory.
"""

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from bench.common import listens
from tests import waiting
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
PROCESSES = [line.split(":", 1)[0] for line in (ROOT / "Procfile").read_text().splitlines() if ":" in line]
# Generous: on two busy cores Django's start alone has taken over 10 s, and this starts five processes.
DEADLINE = 240


def wait_for(condition, what: str, deadline: float = DEADLINE, log: Path | None = None):
    """tests.waiting.wait_for, failing with the processes' log tail as well."""
    try:
        return waiting.wait_for(condition, timeout=deadline, interval=0.5, what=what)
    except waiting.WaitTimeout as exc:
        lines = log.read_text(errors="replace").splitlines() if log else []
        # Beat's passes fill the tail every 2 s: show what went wrong as well as what came last.
        trouble = [line for line in lines if any(word in line for word in ("WARNING", "ERROR", "Traceback"))]
        tail = "\n".join(["-- warnings and errors:", *trouble[-40:], "-- the last lines:", *lines[-30:]])
        pytest.fail(f"{exc}\n{tail}")


@contextlib.contextmanager
def redis_server(directory: Path):
    """A Redis server of one's own on a free loopback port (broker, cache, channel layer), its
    files in `directory`; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)

    def answers():
        try:
            return client.ping()
        except redis.ConnectionError:
            assert process.poll() is None, "redis-server exited"
            return False

    try:
        wait_for(answers, "the test's redis-server", deadline=60)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of this test's own (redis_server)."""
    with redis_server(tmp_path) as url:
        yield url


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


class MakeRun:
    def __init__(self, env: dict, log: Path, docker_client):
        self.env, self.log, self.docker = env, log, docker_client
        self.url = f"http://127.0.0.1:{env['VIBEBOX_PORT']}"
        self.instance = env["VIBEBOX_INSTANCE"]
        self.key = ""
        self.process: subprocess.Popen | None = None

    def make(self, *args: str) -> str:
        done = subprocess.run(["make", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"make {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout + done.stderr

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [str(PYTHON), "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["make", "-o", "setup", "run"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, as a terminal would give it
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def pids(self) -> dict[str, int]:
        """The Procfile's processes as honcho started them."""
        found = re.findall(r"system\s*\| (\w+)\.1 started \(pid=(\d+)\)", self.output())
        return {name: int(pid) for name, pid in found}

    def api(self, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def healthy(self) -> bool:
        assert self.process.poll() is None, f"make run exited ({self.process.returncode}):\n{self.output()}"
        web = self.pids().get("web")
        if web is None or not listens(web, int(self.env["VIBEBOX_PORT"])):  # not another test's server
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=5):
                return True
        except OSError:
            return False

    def containers(self, *labels: str):
        filters = {"label": ["vibebox.managed=1", f"vibebox.instance={self.instance}", *labels]}
        return self.docker.containers.list(all=True, filters=filters)

    def row_status(self, sandbox_id: str) -> str | None:
        with sqlite3.connect(f"file:{self.env['VIBEBOX_DATA_DIR']}/vibebox.sqlite3?mode=ro", uri=True) as db:
            row = db.execute("SELECT status FROM sandboxes_sandbox WHERE id = ?", (sandbox_id,)).fetchone()
        return row[0] if row else None

    def group(self) -> dict[str, int]:
        """Live processes of make's process group (make, honcho), by pid."""
        found = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[2]) == self.process.pid:
                found[stat.parent.name] = int(stat.parent.name)
        return found

    def stop(self) -> list[str]:
        """Ctrl-C for `make run`: SIGINT to its process group (make and honcho; honcho stops the
        Procfile's processes). Answers the names of those still alive 60 s later (then killed: this
        test started them)."""
        everyone = {**self.pids(), **{f"make run ({pid})": pid for pid in self.group().values()}}
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        end = time.monotonic() + 60
        while any(_alive(pid) for pid in everyone.values()) and time.monotonic() < end:
            time.sleep(0.2)
        left = [name for name, pid in everyone.items() if _alive(pid)]
        for name in left:
            os.kill(everyone[name], signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=10)
        return left


@pytest.fixture
def make_run(tmp_path, own_redis, docker_client):
    instance = f"mkrun{os.getpid()}"
    # Nothing of the test session's own configuration leaks in: `make run` reads vibebox.settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIBEBOX_", "DJANGO_", "CELERY_"))}
    env.pop("DATABASE_URL", None)
    env.update(
        VIBEBOX_DATA_DIR=str(tmp_path / "var"),
        VIBEBOX_INSTANCE=instance,
        VIBEBOX_CACHE_PREFIX=f"vibebox-{instance}",
        REDIS_URL=own_redis,
        VIBEBOX_HOST="127.0.0.1",
        VIBEBOX_PORT=str(free_port()),
        VIBEBOX_GATEWAY_PORT=str(free_port()),
        VIBEBOX_EGRESS_PROXY_PORT=str(free_port()),
        # Beat reconciles every 2 s, so expiry and auto-pause come quickly.
        VIBEBOX_RECONCILE_INTERVAL="2s",
        # And the shortest autoPause is 4 s, not 10 s: the test waits for the expiry and the
        # auto-pause with seven processes running, and each second of it costs CPU.
        VIBEBOX_AUTO_PAUSE_MIN="4s",
        # Beat does not fill pools during the test: a pooled container comes from `warmpools --fill`
        # (before the processes start) or from the refill after a take.
        VIBEBOX_POOL_INTERVAL="1h",
        VIBEBOX_POOL_SIZES="python-3=1",
        # The worker would build every template image make setup left (minutes of both cores) in
        # the middle of the suite; make test-templates builds them.
        VIBEBOX_TEMPLATE_BACKGROUND_BUILDS="0",
        PYTHONUNBUFFERED="1",
    )
    server = MakeRun(env, tmp_path / "make-run.log", docker_client)
    try:
        yield server
    finally:
        left = server.stop() if server.process else []
        server.manage("dropinstance", "--yes")
        leftovers = [c.name for c in server.containers()]
        assert not left, f"still running after make run was stopped: {left}"
        assert not leftovers, f"containers left behind: {leftovers}"


SEED_STUCK_ROW = """
from django.contrib.auth import get_user_model
from apps.sandboxes.models import Sandbox
from apps.sandboxes.services.create import sandbox_create

owner = get_user_model().objects.create_user(username="before-the-restart")
sandbox = sandbox_create(owner=owner, template="python-3", name="stuck")
# The previous server died half-way through destroying it: the row says so, the container runs on.
Sandbox.objects.filter(pk=sandbox.pk).update(status="destroying")
print(sandbox.id)
"""


@pytest.mark.timeout(900)
def test_make_run_serves_and_beat_expires_and_pauses(make_run, docker_client):
    assert set(PROCESSES) == {"web", "worker", "builds", "webhooks", "beat", "gateway", "egress"}
    # What `make setup` does for a fresh data directory: migrate, templates and images.
    make_run.make("-o", "host", "-o", "venv", "images")
    stuck = make_run.manage("shell", "-c", SEED_STUCK_ROW).split()[-1]
    assert make_run.containers(f"vibebox.sandbox-id={stuck}")

    make_run.start()
    wait_for(make_run.healthy, "the web process to answer /healthz", log=make_run.log)
    output = make_run.output()

    # bootstrap: the first admin and API key, printed once.
    make_run.key = re.search(r"API key:\s+(\S+)", output).group(1)
    status, body = make_run.api("GET", "/api/v1/sandboxes")
    assert status == 200, body
    # reconcile --startup finished the row stuck in `destroying`: container gone, row destroyed.
    assert re.search(rf"reconciled: .*'finished': \['{stuck}'\]", output), output
    assert make_run.row_status(stuck) == "destroyed"
    assert not make_run.containers(f"vibebox.sandbox-id={stuck}")
    # warmpools --fill started the pool's container before the processes (beat's pool pass is an hour away).
    assert "warm pools: 1 containers started" in output, output
    pooled = make_run.containers("vibebox.pool=python-3.13")
    assert [c.status for c in pooled] == ["running"]

    # The model gateway serves on the sandbox network's gateway address.
    network = docker_client.networks.get(f"vibebox-{make_run.instance}")
    gateway = f"http://{network.attrs['IPAM']['Config'][0]['Gateway']}:{make_run.env['VIBEBOX_GATEWAY_PORT']}"

    def gateway_answers():
        try:
            urllib.request.urlopen(f"{gateway}/v1/models", timeout=5).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer: it serves (it wants a sandbox's token)
        except OSError:
            return False
        return True

    wait_for(gateway_answers, "the model gateway", log=make_run.log)

    status, expiring = make_run.api("POST", "/api/v1/sandboxes", {"template": "python-3", "timeout": "6s"})
    assert status == 201, expiring
    assert expiring["warm"] is True and expiring["id"] == pooled[0].name  # taken from the pool
    status, idle = make_run.api("POST", "/api/v1/sandboxes", {"template": "python-3", "autoPause": "4s"})
    assert status == 201, idle

    def expired():
        status, body = make_run.api("GET", f"/api/v1/sandboxes/{expiring['id']}")
        return (status == 404 or body["status"] == "destroyed") and not make_run.containers(
            f"vibebox.sandbox-id={expiring['id']}"
        )

    def paused():
        status, body = make_run.api("GET", f"/api/v1/sandboxes/{idle['id']}")
        assert status == 200 and body["status"] in ("running", "paused"), body
        container = make_run.containers(f"vibebox.sandbox-id={idle['id']}")
        return body["status"] == "paused" and [c.status for c in container] == ["paused"]

    wait_for(expired, "beat to expire the sandbox with a 6 s timeout", log=make_run.log)
    wait_for(paused, "beat to auto-pause the sandbox idle for 4 s", log=make_run.log)
    assert make_run.row_status(expiring["id"]) == "destroyed"

    # The web process refilled the pool after the take (production setting; beat's pass is an hour away).
    def refilled():
        taken = {expiring["id"], idle["id"]}
        return [c for c in make_run.containers("vibebox.pool=python-3.13") if c.name not in taken]

    wait_for(refilled, "the warm pool's refill after the take", log=make_run.log)

    # Beat sent the reconcile task and the worker ran it: the passes that expired and paused. A
    # pass reports when it ends, after the rest of its work (a loaded machine makes that seconds
    # after the sandbox was seen destroyed): wait for the reports before stopping the worker.
    def passes() -> list[str]:
        lines = make_run.output().splitlines()
        return [line for line in lines if "reconcile_sandboxes[" in line and "succeeded" in line]

    def reported():
        done = passes()
        expired_by = any("'expired'" in line and expiring["id"] in line for line in done)
        paused_by = any("'auto_paused'" in line and idle["id"] in line for line in done)
        return done if expired_by and paused_by else None

    wait_for(reported, "the reconcile passes' reports of the expiry and the auto-pause", log=make_run.log)
    pids = make_run.pids()
    assert set(pids) == set(PROCESSES) and all(_alive(pid) for pid in pids.values()), make_run.output()
    left = make_run.stop()
    assert not left, f"still running after make run was stopped: {left}"

    output = make_run.output()
    assert "Sending due task reconcile-sandboxes (apps.sandboxes.tasks.reconcile_sandboxes)" in output
    # Passes never overlap (apps/sandboxes/tasks.py): two once destroyed the same expired sandbox.
    assert not [line for line in passes() if "'failed'" in line], output

    # `make run` again on the same data directory: no second admin or key (the first key still
    # works), and the paused sandbox is still paused.
    make_run.log = make_run.log.with_name("make-run-again.log")
    make_run.start()
    wait_for(make_run.healthy, "the web process to answer /healthz again", log=make_run.log)
    output = make_run.output()
    assert "API key:" not in output and "VibeBox will serve on" in output, output
    status, body = make_run.api("GET", f"/api/v1/sandboxes/{idle['id']}")
    assert status == 200 and body["status"] == "paused", body
    assert [c.status for c in make_run.containers(f"vibebox.sandbox-id={idle['id']}")] == ["paused"]
    assert make_run.api("DELETE", f"/api/v1/sandboxes/{idle['id']}")[0] == 204
    left = make_run.stop()
    assert not left, f"still running after make run was stopped again: {left}"


def _procfile_argv(name: str, **env: str) -> list[str]:
    """The arguments the Procfile's `name` line runs with `env` (bash expands it as honcho's shell
    does; `exec` swapped for a printer of its arguments, one a line)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:"))
    command = line.split(":", 1)[1].strip().replace("exec ", "printf '%s\\n' ", 1)
    base = {k: v for k, v in os.environ.items() if not k.startswith("VIBEBOX_")}
    done = subprocess.run(["bash", "-c", command], env={**base, **env}, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def test_web_and_celery_workers_are_set_by_the_environment():
    """VIBEBOX_WEB_WORKERS is uvicorn's --workers, VIBEBOX_CELERY_WORKERS the `celery` queue's
    worker's --concurrency (docs/operations.md, "Several processes and HAProxy"); 1 and 2 unset."""
    web = _procfile_argv("web", VIBEBOX_WEB_WORKERS="3")
    assert web[web.index("--workers") + 1] == "3"
    assert "--concurrency=4" in _procfile_argv("worker", VIBEBOX_CELERY_WORKERS="4")
    assert "--concurrency=2" in _procfile_argv("worker")
    default = _procfile_argv("web")
    assert default[default.index("--workers") + 1] == "1"
