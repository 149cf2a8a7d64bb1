"""deploy/compose.yaml, read as YAML: what it says, checked without running it (`make test-compose`
runs it: tests/deploy/test_compose_stack.py; docs/deploy.md, "What is run")."""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.procfile import ROOT, procfile

COMPOSE = ROOT / "deploy" / "compose.yaml"
VIBEBOX_IMAGE = "vibebox:latest"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _unescape(text: str) -> str:
    """What the container gets: compose interpolates $VAR itself and turns $$ into $."""
    return text.replace("$$", "$")


def _shell_command(service: dict) -> str:
    command = service["command"]
    assert isinstance(command, list) and command[:2] == ["sh", "-c"] and len(command) == 3, command
    return _unescape(command[2])


def _vibebox_services(compose: dict) -> dict:
    return {name: s for name, s in compose["services"].items() if s.get("image") == VIBEBOX_IMAGE}


def test_every_procfile_process_runs_with_its_command(compose):
    services = _vibebox_services(compose)
    for process, command in procfile().items():
        mine = {name: s for name, s in services.items() if re.fullmatch(rf"{process}(-\d+)?", name)}
        assert mine, f"no service runs the Procfile's {process}"
        for name, service in mine.items():
            assert _shell_command(service) == command, name
    # Several web processes and default-queue workers, each slot with a port of its own (the
    # Celery node name and the web port derive from it); exactly one beat.
    webs = [s for n, s in services.items() if n.startswith("web-")]
    workers = [s for n, s in services.items() if n.startswith("worker-")]
    assert len(webs) >= 2 and len(workers) >= 2
    assert len({s["environment"]["VIBEBOX_PORT"] for s in webs}) == len(webs)
    assert len({s["environment"]["VIBEBOX_PORT"] for s in workers}) == len(workers)
    assert [n for n in services if n.startswith("beat")] == ["beat"]


# The one interpolation compose itself does in commands: a port, with its production default.
PORT_VARIABLE = re.compile(r"\$\{VIBEBOX_[A-Z0-9]+_PORT:-\d+\}")


def test_a_single_unescaped_dollar_would_be_compose_s(compose):
    """compose interpolates a lone $VAR when it reads the file (from the operator's shell): every
    $ meant for the container's shell is doubled; the only lone ones are the documented ports
    (`${VIBEBOX_<NAME>_PORT:-<default>}`)."""
    for name, service in compose["services"].items():
        command = service.get("command")
        texts = [command] if isinstance(command, str) else list(command or [])
        health = service.get("healthcheck", {}).get("test", [])
        for text in [*texts, *health]:
            text = PORT_VARIABLE.sub("", text.replace("$$", ""))
            assert not re.search(r"(?<!\$)\$(?!\$)", text), (name, text)


def test_the_ports_default_to_production_s(compose):
    """Each port variable's default is the port docs/deploy.md and the other files name, and the
    web slots' ports are given to HAProxy through the same variables."""
    services = compose["services"]
    assert "port=${VIBEBOX_POSTGRES_PORT:-5432}" in services["postgres"]["command"]
    assert "${VIBEBOX_REDIS_PORT:-6379}" in services["redis"]["command"]
    assert "--web.listen-address=127.0.0.1:${VIBEBOX_PROMETHEUS_PORT:-9090}" in services["prometheus"]["command"]
    assert services["haproxy"]["environment"]["VIBEBOX_HAPROXY_BIND"] == "${VIBEBOX_HAPROXY_BIND:-:8080}"
    for n, port in ((1, 8000), (2, 8010), (3, 8020)):
        assert services[f"web-{n}"]["environment"]["VIBEBOX_PORT"] == f"${{VIBEBOX_WEB{n}_PORT:-{port}}}"
    # Prometheus scrapes web-1 at its default port.
    prometheus_yml = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus.yml").read_text())
    assert prometheus_yml["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]


def test_the_backing_services_and_the_layout(compose):
    services = compose["services"]
    for needed in ("postgres", "redis", "haproxy", "prometheus", "setup"):
        assert needed in services
    assert services["postgres"]["image"].startswith("postgres:15")
    # HAProxy's configuration is deploy/haproxy/haproxy.cfg (written with the HA work), Prometheus's
    # the monitoring files as they are.
    assert "./haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in services["haproxy"]["volumes"]
    # Its servers (the file's VIBEBOX_WEB<n> variables) are the web slots, every one of them.
    balanced = {v for k, v in services["haproxy"]["environment"].items() if re.fullmatch(r"VIBEBOX_WEB\d+", k)}
    slots = {f"127.0.0.1:{s['environment']['VIBEBOX_PORT']}" for n, s in services.items() if n.startswith("web-")}
    assert balanced == slots
    mounted = services["prometheus"]["volumes"]
    for name in ("prometheus.yml", "alerts.yml"):
        assert f"./monitoring/{name}:/etc/prometheus/{name}:ro" in mounted
        assert (ROOT / "deploy" / "monitoring" / name).exists()
    # The token file prometheus.yml names is the compose secret's target.
    prometheus_yml = yaml.safe_load((ROOT / "deploy" / "monitoring" / "prometheus.yml").read_text())
    token_file = prometheus_yml["scrape_configs"][0]["authorization"]["credentials_file"]
    assert {"source": "metrics-token", "target": token_file} in services["prometheus"]["secrets"]
    # The VibeBox processes: the image deploy/Dockerfile builds, the engine's socket, the shared
    # data and metrics volumes, the environment file, the host's network (sandbox bridge, firewall).
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and re.search(r"^ARG BASE_IMAGE=debian:", dockerfile, re.M)
    for name, service in _vibebox_services(compose).items():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}, name
        assert service["env_file"] == "vibebox.env" and service["network_mode"] == "host", name
        # One PID namespace: the metrics files are named after pids (vibebox/metrics.py).
        assert service["pid"] == "host", name
        assert "/var/run/docker.sock:/var/run/docker.sock" in service["volumes"], name
        if name != "setup":
            assert service["restart"] == "unless-stopped", name
            assert service["depends_on"]["setup"] == {"condition": "service_completed_successfully"}, name
            assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    # setup: debootstrap needs no more than Docker's defaults (docs/deploy.md); never privileged.
    setup = services["setup"]
    assert "privileged" not in setup and "security_opt" not in setup
    assert set(setup["cap_add"]) == {"NET_ADMIN", "NET_RAW"}


def test_every_long_running_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        if name == "setup":
            continue
        check = service.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
    services = compose["services"]
    assert "/readyz" in services["web-1"]["healthcheck"]["test"][1]
    for name in ("worker-1", "worker-2", "builds", "webhooks"):
        queue_node = _shell_command(services[name]).split('--hostname="', 1)[1].split("$", 1)[0]
        assert "inspect ping" in services[name]["healthcheck"]["test"][1], name
        assert f'--destination "{queue_node}' in _unescape(services[name]["healthcheck"]["test"][1]), name


SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)$", re.I)


def test_no_secret_is_inlined(compose):
    """Secrets come from vibebox.env (not in the repository) or compose secrets (files): no
    environment entry of the compose file names one with a value."""

    def environments():
        for name, service in compose["services"].items():
            env = service.get("environment") or {}
            if isinstance(env, list):
                env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
            yield name, env

    for name, env in environments():
        for key, value in env.items():
            if SECRET_NAME.search(key):
                raise AssertionError(f"{name}: {key} is inlined")
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"{name}: {key} holds credentials"
    assert compose["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    for secret in compose["secrets"].values():
        assert set(secret) == {"file"} and secret["file"].startswith("./secrets/")
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|secret|token)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{16,}", text)
    # The example environment holds placeholders only.
    example = (ROOT / "deploy" / "vibebox.env.example").read_text()
    for line in example.splitlines():
        key, _, value = line.partition("=")
        if SECRET_NAME.search(key.strip()) and value:
            assert value.startswith("<") and value.endswith(">"), line
        assert not re.search(r"://[^/@\s<]+:[^/@\s<]+@", value), line


def test_the_procfile_commands_are_what_shells_run():
    # The comparison above is with the Procfile's text; it must also be one shell command each.
    for process, command in procfile().items():
        assert shlex.split(command)[0] == "exec", process
    assert Path(ROOT / "Procfile").exists()


def test_the_operator_s_secrets_are_never_committed():
    """The files compose reads secrets from are git-ignored."""
    for path in ("deploy/vibebox.env", "deploy/secrets/postgres-password", "deploy/secrets/metrics-token"):
        result = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
        assert result.returncode == 0, f"{path} is not ignored"


def test_the_dockerfile_copies_what_exists_to_where_the_procfile_runs():
    """deploy/Dockerfile (built by `make test-compose`): Debian underneath by default (the base a
    build argument), the app where the Procfile's relative .venv/bin/... paths resolve, every COPY
    source present, the build context's ignore file beside it, and no extra CA unless one is put
    in deploy/ca/ (git-ignored)."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line and not line[0].isspace()]
    instructions = [(word, rest) for word, *rests in instructions if not word.startswith("#") for rest in rests or [""]]
    assert instructions[0] == ("ARG", "BASE_IMAGE=debian:bookworm-slim")
    assert instructions[1] == ("FROM", "${BASE_IMAGE}")
    assert ("WORKDIR", "/opt/vibebox") in instructions
    assert any(word == "RUN" and "python3 -m venv .venv" in rest for word, rest in instructions)
    for word, rest in instructions:
        if word == "COPY":
            *sources, _target = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), source
    ignored = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().split()
    assert {"var", ".venv", ".git", "deploy/secrets", "deploy/vibebox.env"} <= set(ignored)
    assert ("COPY", "deploy/ca/ /usr/local/share/ca-certificates/vibebox/") in instructions
    tracked = subprocess.run(["git", "ls-files", "deploy/ca"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout.split() == ["deploy/ca/README"]
    assert subprocess.run(["git", "check-ignore", "-q", "deploy/ca/proxy.crt"], cwd=ROOT).returncode == 0


def test_the_test_override_swaps_images_and_paths_only(compose):
    """deploy/compose.test.yaml (make test-compose) changes what a machine without a registry cannot
    have and nothing the smoke test is about: the VibeBox services keep their commands, environment
    and healthchecks' tests; the backing services get the Debian image and its paths."""
    override = yaml.safe_load((ROOT / "deploy" / "compose.test.yaml").read_text())
    assert set(override["services"]) == set(compose["services"])
    allowed = {
        "vibebox": {"image", "build", "healthcheck"},
        "postgres": {"image", "entrypoint", "stop_signal"},
        "redis": {"image", "user", "working_dir"},
        "haproxy": {"image", "command", "healthcheck", "stop_signal"},
        "prometheus": {"image", "user", "working_dir", "entrypoint", "volumes"},
    }
    for name, service in override["services"].items():
        kind = "vibebox" if compose["services"][name].get("image") == VIBEBOX_IMAGE else name
        assert set(service) <= allowed[kind], (name, set(service) - allowed[kind])
        assert set(service.get("healthcheck", {})) <= {"interval"}, name
        if "build" in service:
            assert service["build"] == {"args": {"BASE_IMAGE": "${VIBEBOX_COMPOSE_BASE_IMAGE:?a Debian 12 image}"}}
    # Prometheus: only its configuration file is another (the run's web-1 port).
    volumes = override["services"]["prometheus"]["volumes"]
    assert [v.rsplit(":", 2)[1:] for v in volumes] == [["/etc/prometheus/prometheus.yml", "ro"]]
