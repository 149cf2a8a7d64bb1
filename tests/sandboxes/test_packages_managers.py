"""Package installs with go, cargo, gem, bundler and maven in their templates (go-1.24, rust-1.85,
ruby-3.3, java-21), for real: the public registries of these managers are not reachable from this
machine (only PyPI and npm are, through its proxy), so each organization's registry mirror points
at a registry served by a container on a Docker network of the test's own (as an operator's
internal mirror would be reached, through VIBEBOX_EXTRA_NETWORKS): Go's module proxy protocol, a
Cargo sparse registry and RubyGems' compact index, made here with real module, crate and gem
archives (the gem built by `gem build`), and a Maven repository made of Debian's Maven packages
(the dependency plugin with its dependencies, and commons-lang3). The sandbox installs from it
with the real go, cargo, gem, bundler and mvn, and runs code that uses what it installed.

Marked `templates` like tests/templates: these images are built by `make test-templates`."""

import base64
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


GO_MOD = b"module example.com/vibebox/greet\n\ngo 1.21\n"
GO_SOURCE = b'package greet\n\nfunc Hello() string { return "hello from a mirrored module" }\n'


def go_hashes() -> list[tuple[str, str]]:
    """The module's lines of go.sum: golang.org/x/mod/sumdb/dirhash's Hash1 of its files, then of its go.mod."""

    def h1(files: dict[str, bytes]) -> str:
        summary = "".join(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n" for name in sorted(files))
        return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()

    prefix = "example.com/vibebox/greet@v1.0.0/"
    zipped = {f"{prefix}go.mod": GO_MOD, f"{prefix}greet.go": GO_SOURCE}
    return [("", h1(zipped)), ("/go.mod", h1({"go.mod": GO_MOD}))]


def go_module() -> dict[str, bytes]:
    """example.com/vibebox/greet v1.0.0 in the module proxy protocol (go help goproxy)."""
    path, version = "example.com/vibebox/greet", "v1.0.0"
    mod, source = GO_MOD, GO_SOURCE
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


GEMSPEC = """Gem::Specification.new do |s|
  s.name = "greet"
  s.version = "1.0.0"
  s.summary = "A gem of the tests' mirror"
  s.authors = ["VibeBox tests"]
  s.files = ["lib/greet.rb"]
  s.license = "MIT"
end
"""


# The gem's spec as rubygems.org serves it to `gem install` (quick/Marshal.4.8/<gem>.gemspec.rz).
QUICK_SPEC = (
    'require "rubygems/package"; spec = Gem::Package.new("greet-1.0.0.gem").spec; '
    'File.binwrite("greet-1.0.0.gemspec.rz", Gem.deflate(Marshal.dump(spec)))'
)


def rubygems_registry(docker_client) -> dict[str, bytes]:
    """The gem greet 1.0.0 (built by the real `gem build` in the ruby-3.3 image, offline) behind
    RubyGems' compact index (/versions, /info/<name>) and /gems/<file>, as rubygems.org serves."""
    image = next(s.image for s in built_in_templates() if s.name == "ruby-3.3")
    builder = docker_client.containers.create(
        image,
        ["sh", "-c", f"cd /tmp/g && gem build greet.gemspec && ruby -e '{QUICK_SPEC}'"],
        network_disabled=True,
        labels=LABELS,
        user="root",
    )
    try:
        builder.put_archive(
            "/tmp",
            _tar(
                {
                    "g/greet.gemspec": GEMSPEC.encode(),
                    "g/lib/greet.rb": b'module Greet; def self.hello = "hello from a mirrored gem"; end\n',
                }
            ),
        )
        builder.start()
        assert builder.wait(timeout=120)["StatusCode"] == 0, builder.logs().decode()
        built = {}
        for name in ("greet-1.0.0.gem", "greet-1.0.0.gemspec.rz"):
            stream, _ = builder.get_archive(f"/tmp/g/{name}")
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                built[name] = tar.extractfile(name).read()
        gem = built["greet-1.0.0.gem"]
    finally:
        builder.remove(force=True)
    info = f"---\n1.0.0 |checksum:{hashlib.sha256(gem).hexdigest()}\n".encode()
    digest = hashlib.md5(info, usedforsecurity=False).hexdigest()
    versions = f"created_at: 2024-01-01T00:00:00Z\n---\ngreet 1.0.0 {digest}\n".encode()
    return {
        "gems/versions": versions,
        "gems/info/greet": info,
        "gems/gems/greet-1.0.0.gem": gem,
        "gems/quick/Marshal.4.8/greet-1.0.0.gemspec.rz": built["greet-1.0.0.gemspec.rz"],
    }


# Debian's Maven packages install a Maven repository (/usr/share/maven-repo): the dependency
# plugin with everything it needs, and commons-lang3. junit5 brings junit-bom, which doxia's
# parent POM imports. The image is built once (from the java-21 template's image, with apt) and
# kept by its tag; the repository is copied out with its symlinks resolved.
MAVEN_PACKAGES = "libmaven-dependency-plugin-java libcommons-lang3-java junit5"
MAVEN_DOCKERFILE = """FROM {image}
USER root
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {packages} \\
    && apt-get clean && rm -rf /var/lib/apt/lists/* \\
    && cp -rL /usr/share/maven-repo /srv/maven
"""
LANG3 = "org.apache.commons:commons-lang3:3.17.0"


def checksums(files: dict[str, bytes]) -> dict[str, bytes]:
    """The .sha1 beside every file of a Maven repository, which Maven checks on download. (No
    maven-metadata.xml: the install names the plugin by its full coordinates, so nothing looks up a
    prefix or a version.)"""
    return {
        f"{name}.sha1": hashlib.sha1(data, usedforsecurity=False).hexdigest().encode() for name, data in files.items()
    }


def maven_repository(docker_client) -> dict[str, bytes]:
    image = next(s.image for s in built_in_templates() if s.name == "java-21")
    dockerfile = MAVEN_DOCKERFILE.format(image=image, packages=MAVEN_PACKAGES)
    tag = f"vibebox-test/maven-repo:{hashlib.sha256(dockerfile.encode()).hexdigest()[:12]}"
    try:
        docker_client.images.get(tag)
    except docker.errors.ImageNotFound:
        docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
        for older in docker_client.images.list(name="vibebox-test/maven-repo"):  # of an older java-21 image
            if tag not in older.tags:
                with contextlib.suppress(docker.errors.APIError):  # another run's, still in use
                    docker_client.images.remove(older.id, force=False)
    holder = docker_client.containers.create(tag, ["true"], network_disabled=True, labels=LABELS)
    try:
        stream, _ = holder.get_archive("/srv/maven")
        files = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            for member in tar:
                if member.isfile():
                    files[member.name] = tar.extractfile(member).read()
    finally:
        holder.remove(force=True)
    assert "maven/org/apache/commons/commons-lang3/3.17.0/commons-lang3-3.17.0.jar" in files
    return {**files, **checksums(files)}


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
    served = {**go_module(), **cargo_registry(), **rubygems_registry(docker_client), **maven_repository(docker_client)}
    files = {f"www/{name}": data for name, data in served.items()}
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
    # Checksum verification stays on (the go command asks the mirror for the checksum database
    # first); a module only the mirror has is a private one: GONOSUMDB, as for any private module.
    sandbox_id = create_sandbox(template="go-1.24", env={"GONOSUMDB": "example.com/vibebox"})["id"]
    module = "example.com/vibebox/greet"
    answer, messages, execution = install(api_client, api_key, sandbox_id, manager="go", packages=[f"{module}@v1.0.0"])
    assert answer["mirror"] is True and execution.status == "completed", output(messages)
    assert execution.command == f"go get {module}@v1.0.0"
    program = (
        'package main\n\nimport (\n\t"fmt"\n\t"example.com/vibebox/greet"\n)\n\n'
        "func main() { fmt.Println(greet.Hello()) }\n"
    )
    run(api_client, sandbox_id, f"cat > /workspace/main.go <<'EOF'\n{program}EOF")
    ran = run(api_client, sandbox_id, "cd /workspace && go run . 2>&1", timeout=600)
    assert ran["stdout"] == "hello from a mirrored module\n", ran
    assert {"name": module, "version": "v1.0.0"} in listed(api_client, sandbox_id, "go")["packages"]
    assert run(api_client, sandbox_id, "go env GOSUMDB")["stdout"] == "sum.golang.org\n"
    # go.sum holds the module's hashes (the go command's dirhash "h1"), as it computed them
    go_sum = run(api_client, sandbox_id, "cat /workspace/go.sum")["stdout"]
    assert go_sum == "".join(f"{module} v1.0.0{suffix} {h1}\n" for suffix, h1 in go_hashes()), go_sum


def test_cargo_add_from_the_mirror_builds_and_runs(api_client, api_key, create_sandbox, registry):
    sandbox_id = create_sandbox(template="rust-1.85")["id"]
    _, messages, execution = install(api_client, api_key, sandbox_id, manager="cargo", packages=["greet@1.0.0"])
    assert execution.status == "completed", output(messages)
    main = 'fn main() { println!("{}", greet::hello()); }\n'
    run(api_client, sandbox_id, f"cat > /workspace/src/main.rs <<'EOF'\n{main}EOF")
    assert "greet" in run(api_client, sandbox_id, "cat /workspace/Cargo.toml")["stdout"]
    built = run(api_client, sandbox_id, "cd /workspace && cargo run -q --offline 2>&1", timeout=600)
    assert built["stdout"] == "hello from a mirrored crate\n", built["stdout"]
    # the version Cargo.lock resolved, not the requirement Cargo.toml has (^1.0.0)
    assert listed(api_client, sandbox_id, "cargo")["packages"] == [{"name": "greet", "version": "1.0.0"}]


def test_gem_and_bundler_install_from_the_mirror(api_client, api_key, create_sandbox, registry):
    sandbox_id = create_sandbox(template="ruby-3.3")["id"]
    _, messages, execution = install(api_client, api_key, sandbox_id, manager="gem", packages=["greet:1.0.0"])
    assert execution.status == "completed", output(messages)
    ran = run(api_client, sandbox_id, "ruby -e 'require \"greet\"; puts Greet.hello' 2>&1")
    assert ran["stdout"] == "hello from a mirrored gem\n", ran["stdout"]
    assert {"name": "greet", "version": "1.0.0"} in listed(api_client, sandbox_id, "gem")["packages"]

    _, messages, execution = install(
        api_client, api_key, sandbox_id, manager="bundler", packages=["greet:1.0.0"], cwd="app"
    )
    assert execution.status == "completed", output(messages)
    assert "greet" in run(api_client, sandbox_id, "cat /workspace/app/Gemfile")["stdout"]
    ran = run(
        api_client, sandbox_id, "cd /workspace/app && bundle exec ruby -e 'require \"greet\"; puts Greet.hello' 2>&1"
    )
    assert ran["stdout"] == "hello from a mirrored gem\n", ran["stdout"]
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/packages", {"manager": "bundler", "cwd": "app"})
    assert {"name": "greet", "version": "1.0.0"} in response.json()["packages"], response.content


PROGRAM = """import org.apache.commons.lang3.StringUtils;

public class Main {
    public static void main(String[] args) {
        System.out.println(StringUtils.capitalize(StringUtils.reverse("nevam a morf")));
    }
}
"""
POM = """<project><modelVersion>4.0.0</modelVersion>
<groupId>example</groupId><artifactId>app</artifactId><version>1</version>
<dependencies><dependency>
<groupId>org.apache.commons</groupId><artifactId>commons-lang3</artifactId><version>3.17.0</version>
</dependency></dependencies></project>
"""


def test_maven_get_from_the_mirror_compiles_and_runs(api_client, api_key, create_sandbox, registry):
    java = create_sandbox(template="java-21")["id"]
    answer, messages, execution = install(api_client, api_key, java, manager="maven", packages=[LANG3])
    text = output(messages)
    assert answer["mirror"] is True and execution.status == "completed", text
    assert execution.command == f"mvn dependency:get {LANG3}"
    # the plugin by its full coordinates (no lookup of a prefix or a version), from the mirror
    assert "dependency:3.8.1:get (default-cli)" in text and "BUILD SUCCESS" in text, text
    assert "Could not validate integrity" not in text  # the mirror's .sha1 files were there, and checked
    local = "/home/sandbox/.m2/repository/org/apache/commons/commons-lang3/3.17.0"
    remote = run(api_client, java, f"cat {local}/_remote.repositories")["stdout"]
    assert "commons-lang3-3.17.0.jar>vibebox-mirror=" in remote, remote  # Maven's note of where it came from
    jar = f"{local}/commons-lang3-3.17.0.jar"
    run(api_client, java, f"mkdir -p /workspace/hello && cat > /workspace/hello/Main.java <<'EOF'\n{PROGRAM}EOF")
    ran = run(
        api_client, java, f"cd /workspace/hello && javac -cp {jar} -d out Main.java && java -cp {jar}:out Main 2>&1"
    )
    assert ran["stdout"] == "From a maven\n", ran
    assert {"name": "org.apache.commons:commons-lang3", "version": "3.17.0"} in listed(api_client, java, "maven")[
        "packages"
    ]
    # a project: its dependencies as the dependency plugin lists them (through the mirror too)
    run(api_client, java, f"mkdir -p /workspace/app && cat > /workspace/app/pom.xml <<'EOF'\n{POM}EOF")
    response = api_client.get(f"/api/v1/sandboxes/{java}/packages", {"manager": "maven", "cwd": "app"})
    assert response.status_code == 200, response.content
    assert response.json()["packages"] == [{"name": "org.apache.commons:commons-lang3", "version": "3.17.0"}]
