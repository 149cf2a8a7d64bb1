"""Package installs with go, cargo, gem, bundler and maven in their templates (go-1.24, rust-1.85,
ruby-3.3, java-21), for real: the public registries of these managers are not reachable from this
machine (only PyPI and npm are, through its proxy), so each organization's registry mirror points
at a registry served by a container on a Docker network of the test's own (as an operator's
internal mirror would be reached, through VIBEBOX_EXTRA_NETWORKS): Go's module proxy protocol and a
Cargo sparse registry, made here with real module and crate archives. The sandbox installs from
it with the real go and cargo, builds against what it installed and runs it. gem, bundler and
maven are shown reaching their mirror (they have no small static registry format to serve).

Marked `templates` like tests/templates: these images are built by `make test-templates`."""

import contextlib
import hashlib
import io
import json
import tarfile
import zipfile

import docker
import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import built_in_templates
from apps.orgs.services import org_update, personal_org_ensure
from tests.sandboxes.test_packages import install, listed, output, run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.templates]

INSTANCE = django_settings.VIBEBOX_INSTANCE
NETWORK = f"vibebox-{INSTANCE}-registry"
LABELS = {"vibebox.test-fixture": "registry", "vibebox.test-instance": INSTANCE}
BASE = "http://registry:8080"


def _tar(files: dict[str, bytes], *, gz: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gz else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def go_module() -> dict[str, bytes]:
    """example.com/vibebox/greet v1.0.0 in the module proxy protocol (go help goproxy)."""
    path, version = "example.com/vibebox/greet", "v1.0.0"
    mod = b"module example.com/vibebox/greet\n\ngo 1.21\n"
    source = b'package greet\n\nfunc Hello() string { return "hello from a mirrored module" }\n'
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{path}@{version}/go.mod", mod)
        zf.writestr(f"{path}@{version}/greet.go", source)
    root = f"go/{path}/@v"
    return {
        f"{root}/list": f"{version}\n".encode(),
        f"{root}/{version}.info": json.dumps({"Version": version, "Time": "2024-01-01T00:00:00Z"}).encode(),
        f"{root}/{version}.mod": mod,
        f"{root}/{version}.zip": archive.getvalue(),
    }


def cargo_registry() -> dict[str, bytes]:
    """A sparse registry (the Cargo book's "Registry index") holding the crate greet 1.0.0."""
    manifest = b'[package]\nname = "greet"\nversion = "1.0.0"\nedition = "2021"\n\n[dependencies]\n'
    lib = b'pub fn hello() -> &\'static str { "hello from a mirrored crate" }\n'
    crate = _tar({"greet-1.0.0/Cargo.toml": manifest, "greet-1.0.0/src/lib.rs": lib}, gz=True)
    entry = {
        "name": "greet",
        "vers": "1.0.0",
        "deps": [],
        "cksum": hashlib.sha256(crate).hexdigest(),
        "features": {},
        "yanked": False,
    }
    return {
        "cargo/config.json": json.dumps({"dl": f"{BASE}/cargo/dl/{{crate}}/{{version}}.crate"}).encode(),
        "cargo/gr/ee/greet": (json.dumps(entry) + "\n").encode(),
        "cargo/dl/greet/1.0.0.crate": crate,
    }


@pytest.fixture(scope="module")
def registry_server(docker_client):
    for stale in docker_client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in LABELS.items()]}):
        stale.remove(force=True)
    try:
        network = docker_client.networks.get(NETWORK)
    except docker.errors.NotFound:
        network = docker_client.networks.create(NETWORK, driver="bridge", labels=LABELS)
    image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    container = docker_client.containers.run(
        image,
        ["sh", "-c", "while [ ! -f /srv/ready ]; do sleep 0.1; done; exec python3 -m http.server 8080 -d /srv/www"],
        name=f"vibebox-{INSTANCE}-registry",
        hostname="registry",
        user="root",
        detach=True,
        labels=LABELS,
        network=NETWORK,
    )
    files = {f"www/{name}": data for name, data in {**go_module(), **cargo_registry()}.items()}
    container.put_archive("/srv", _tar({**files, "ready": b""}))
    yield container
    container.remove(force=True)
    with contextlib.suppress(docker.errors.APIError):  # a sandbox still attached: the next run reuses it
        network.remove()


@pytest.fixture
def registry(registry_server, settings, owner):
    """Sandboxes made in this test join the registry's network; the owner's organization mirrors to it."""
    settings.VIBEBOX_EXTRA_NETWORKS = [NETWORK]
    org = personal_org_ensure(user=owner)
    mirrors = {"go": f"{BASE}/go", "cargo": f"{BASE}/cargo/", "gem": f"{BASE}/gems/", "maven": f"{BASE}/maven"}
    org_update(org=org, registry_mirrors=mirrors)
    return registry_server


def test_go_get_from_the_mirror_builds_and_runs(api_client, api_key, create_sandbox, registry):
    sandbox_id = create_sandbox(template="go-1.24", env={"GOSUMDB": "off"})["id"]
    module = "example.com/vibebox/greet"
    answer, messages, execution = install(api_client, api_key, sandbox_id, manager="go", packages=[f"{module}@v1.0.0"])
    assert answer["mirror"] is True and execution.status == "completed", output(messages)
    assert execution.command == f"go get {module}@v1.0.0"
    program = (
        'package main\n\nimport (\n\t"fmt"\n\t"example.com/vibebox/greet"\n)\n\n'
        "func main() { fmt.Println(greet.Hello()) }\n"
    )
    run(api_client, sandbox_id, f"cat > /workspace/main.go <<'EOF'\n{program}EOF")
    ran = run(api_client, sandbox_id, "cd /workspace && go run . 2>&1")
    assert ran["stdout"] == "hello from a mirrored module\n", ran
    assert {"name": module, "version": "v1.0.0"} in listed(api_client, sandbox_id, "go")["packages"]


def test_cargo_add_from_the_mirror_builds_and_runs(api_client, api_key, create_sandbox, registry):
    sandbox_id = create_sandbox(template="rust-1.85")["id"]
    _, messages, execution = install(api_client, api_key, sandbox_id, manager="cargo", packages=["greet@1.0.0"])
    assert execution.status == "completed", output(messages)
    main = 'fn main() { println!("{}", greet::hello()); }\n'
    run(api_client, sandbox_id, f"cat > /workspace/src/main.rs <<'EOF'\n{main}EOF")
    assert "greet" in run(api_client, sandbox_id, "cat /workspace/Cargo.toml")["stdout"]
    built = run(api_client, sandbox_id, "cd /workspace && cargo run -q --offline 2>&1")
    assert built["stdout"] == "hello from a mirrored crate\n", built["stdout"]
    assert listed(api_client, sandbox_id, "cargo")["packages"] == [{"name": "greet", "version": "^1.0.0"}]


def test_gem_bundler_and_maven_reach_their_mirror(api_client, api_key, create_sandbox, registry):
    ruby = create_sandbox(template="ruby-3.3")["id"]
    _, messages, execution = install(api_client, api_key, ruby, manager="gem", packages=["rake:13.2.1"])
    assert execution.status == "failed" and "registry:8080/gems" in output(messages), output(messages)
    _, messages, execution = install(api_client, api_key, ruby, manager="bundler", packages=["rake:13.2.1"])
    assert execution.status == "failed" and "registry:8080/gems" in output(messages), output(messages)
    assert "Gemfile" in run(api_client, ruby, "ls /workspace")["stdout"]  # bundle init made the project
    assert any(p["name"] == "bundler" for p in listed(api_client, ruby, "gem")["packages"])

    java = create_sandbox(template="java-21")["id"]
    _, messages, execution = install(
        api_client, api_key, java, manager="maven", packages=["org.apache.commons:commons-lang3:3.17.0"]
    )
    assert execution.status == "failed" and "registry:8080/maven" in output(messages), output(messages)
    assert listed(api_client, java, "maven")["packages"] == []  # nothing in the local repository
