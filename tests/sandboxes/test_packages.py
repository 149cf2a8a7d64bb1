"""Package installs and listings (POST/GET …/packages) against the real engine and the real
registries (PyPI and npm, through the machine's proxy, whose CA the images trust through
VIBEBOX_EXTRA_CA_CERTS). The mirror tests point the organization's mirror at a closed port on the
sandbox's own loopback: no traffic leaves the sandbox."""

import asyncio
import json

import pytest
from asgiref.sync import async_to_sync
from rest_framework.test import APIClient

from apps.audit.models import AuditEntry
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Execution, Sandbox
from apps.sandboxes.services.packages import SYSTEM_CA, _pairs, manager_env
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox import exceptions as errors
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

INSTALL_TIMEOUT = 300


def follow(sandbox_id: str, execution_id: str, secret: str) -> list[dict]:
    """The install's messages over the process stream, up to its exit."""

    async def scenario():
        headers = [(b"authorization", f"Bearer {secret}".encode())]
        comm = Communicator(application, f"/ws/sandboxes/{sandbox_id}/processes/{execution_id}", headers=headers)
        assert (await comm.connect())[0]
        messages = []
        deadline = asyncio.get_running_loop().time() + INSTALL_TIMEOUT
        while True:
            output = await comm.receive_output(timeout=max(0.1, deadline - asyncio.get_running_loop().time()))
            if output["type"] == "websocket.close":
                return messages
            message = json.loads(output["text"])
            messages.append(message)
            if message.get("type") == "exit":
                await comm.disconnect()
                return messages

    return async_to_sync(scenario)()


def install(api_client, api_key, sandbox_id, **body) -> tuple[dict, list[dict], Execution]:
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/packages", body, format="json")
    assert response.status_code == 202, response.content
    answer = response.json()
    messages = follow(sandbox_id, answer["executionId"], api_key[1])
    execution = wait_for(
        lambda: Execution.objects.exclude(status="running").filter(pk=answer["executionId"]).first(),
        timeout=60,
        what="the install's end recorded",
    )
    return answer, messages, execution


def output(messages: list[dict]) -> str:
    return "".join(m["data"] for m in messages if m.get("type") in ("stdout", "stderr"))


def run(api_client, sandbox_id, command: str, timeout: int = 60) -> dict:
    body = {"command": command, "timeout": timeout}
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def listed(api_client, sandbox_id, manager: str) -> dict:
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/packages", {"manager": manager})
    assert response.status_code == 200, response.content
    return response.json()


def test_pip_install_streams_is_recorded_and_imports(api_client, api_key, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    answer, messages, execution = install(api_client, api_key, sandbox_id, manager="pip", packages=["six==1.16.0"])
    assert answer["status"] == "running" and answer["processId"] == answer["executionId"]
    assert answer["manager"] == "pip" and answer["packages"] == ["six==1.16.0"] and answer["mirror"] is False
    assert messages[-1]["type"] == "exit" and messages[-1]["exitCode"] == 0, output(messages)
    assert "Successfully installed six-1.16.0" in output(messages)  # streamed as it ran
    assert execution.status == "completed" and execution.background is True
    assert execution.command == "pip install six==1.16.0"
    assert run(api_client, sandbox_id, "python -c 'import six; print(six.__version__)'")["stdout"] == "1.16.0\n"
    # into the template's virtualenv, as the sandbox user
    assert (
        run(api_client, sandbox_id, "ls -ld /opt/venv/lib/python3*/site-packages/six.py | awk '{print $3}'")["stdout"]
        == "sandbox\n"
    )
    packages = listed(api_client, sandbox_id, "pip")
    assert {"name": "six", "version": "1.16.0"} in packages["packages"]
    assert packages["manager"] == "pip" and packages["skipped"] == 0 and packages["truncated"] is False
    entry = AuditEntry.objects.get(action="packages.installed", target_id=sandbox_id)
    assert entry.changes["packages"] == ["six==1.16.0"] and entry.changes["execution"] == answer["executionId"]
    # the install is an execution like any command
    records = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/executions/{answer['executionId']}").json()
    assert records["exitCode"] == 0 and "six" in records["stdout"]


def test_npm_install_into_the_project_and_require(api_client, api_key, create_sandbox):
    sandbox_id = create_sandbox(template="node-20")["id"]
    _, messages, execution = install(api_client, api_key, sandbox_id, manager="npm", packages=["is-odd@3.0.1"])
    assert execution.status == "completed", output(messages)
    assert execution.cwd == "/workspace"
    answer, messages, execution = install(
        api_client, api_key, sandbox_id, manager="npm", packages=["left-pad@1.3.0"], dev=True, cwd="app"
    )
    assert execution.status == "completed", output(messages)
    # the record says where the install ran: the directory given (made for it), not the template's
    assert execution.cwd == "/workspace/app" and answer["cwd"] == "/workspace/app"
    record = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/executions/{answer['executionId']}").json()
    assert record["cwd"] == "/workspace/app", record
    # a directory the sandbox user cannot make: refused before anything runs
    executions = Execution.objects.filter(sandbox_id=sandbox_id).count()
    body = {"manager": "npm", "packages": ["left-pad@1.3.0"], "cwd": "/etc/vibebox-app"}
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/packages", body, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_path", response.content
    assert response.json()["error"]["details"] == {"cwd": "/etc/vibebox-app"}
    assert Execution.objects.filter(sandbox_id=sandbox_id).count() == executions
    assert run(api_client, sandbox_id, "node -e \"console.log(require('is-odd')(3))\"")["stdout"] == "true\n"
    manifest = json.loads(run(api_client, sandbox_id, "cat /workspace/package.json")["stdout"])
    assert manifest["dependencies"] == {"is-odd": "^3.0.1"}
    app = json.loads(run(api_client, sandbox_id, "cat /workspace/app/package.json")["stdout"])
    assert app["devDependencies"] == {"left-pad": "^1.3.0"}
    assert listed(api_client, sandbox_id, "npm")["packages"] == [{"name": "is-odd", "version": "3.0.1"}]
    response = api_client.get(f"/api/v1/sandboxes/{sandbox_id}/packages", {"manager": "npm", "cwd": "app"})
    assert response.json()["packages"] == [{"name": "left-pad", "version": "1.3.0"}]
    assert response.json()["cwd"] == "/workspace/app"


def test_bad_requests_are_refused_and_run_nothing(api_client, create_sandbox, outsider_client, client_for, owner):
    sandbox_id = create_sandbox(template="python-3")["id"]
    url = f"/api/v1/sandboxes/{sandbox_id}/packages"

    def refused(body, status=400):
        response = api_client.post(url, body, format="json")
        assert response.status_code == status, response.content
        return response.json()["error"]

    for spec in ["-r/etc/passwd", "--index-url=https://evil.example/simple", "-e.", "six; rm -rf /", "six six",
                 "git+https://github.com/benjaminp/six", "./six", "/tmp/six.whl", "six==1.16.0 --pre", "",
                 "https://files.pythonhosted.org/six.whl", "six\n--user"]:  # fmt: skip
        error = refused({"manager": "pip", "packages": ["requests", spec]})
        assert error["code"] == "invalid_package_spec", spec
        assert error["details"]["index"] == 1 and error["details"]["spec"] == spec
    assert refused({"manager": "pip", "packages": ["-U"]})["details"]["reason"].startswith("options are not")
    error = refused({"manager": "npm", "packages": ["left-pad"]})
    assert error["code"] == "unsupported_package_manager"
    assert error["details"]["supported"] == ["pip", "uv"] and error["details"]["manager"] == "npm"
    assert refused({"manager": "apt", "packages": ["curl"]})["code"] == "unsupported_package_manager"
    assert refused({"manager": "pip", "packages": []})["code"] == "validation_error"
    assert refused({"manager": "pip", "packages": ["six"], "dev": True})["code"] == "validation_error"
    assert refused({"manager": "pip", "packages": ["six"], "index": "x"})["code"] == "unknown_field"
    response = api_client.get(url, {"manager": "cargo"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "unsupported_package_manager"
    assert api_client.get(url).json()["error"]["code"] == "validation_error"  # manager is required
    # another organization's sandbox does not exist for them; no key: 401; a key without execute: 403
    assert outsider_client.post(url, {"manager": "pip", "packages": ["six"]}, format="json").status_code == 404
    assert outsider_client.get(url, {"manager": "pip"}).status_code == 404
    assert APIClient().post(url, {"manager": "pip", "packages": ["six"]}, format="json").status_code == 401
    reader = client_for(owner, [SANDBOXES_READ, SANDBOXES_WRITE])
    response = reader.post(url, {"manager": "pip", "packages": ["six"]}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    assert reader.get(url, {"manager": "pip"}).status_code == 403
    assert not Execution.objects.filter(sandbox_id=sandbox_id).exists()
    assert not AuditEntry.objects.filter(action="packages.installed").exists()


def test_org_mirror_setting_reaches_the_install(api_client, api_key, owner, create_sandbox, client_for):
    org = personal_org_ensure(user=owner)
    url = f"/api/v1/orgs/{org.slug}"
    for bad in [{"pip": "ftp://mirror/simple"}, {"pip": "https://user:token@mirror/simple"}, {"apt": "https://m"},
                {"npm": "https://m/\"x"}, {"pip": 5}]:  # fmt: skip
        response = api_client.patch(url, {"registryMirrors": bad}, format="json")
        assert response.status_code == 400, (bad, response.content)
        assert response.json()["error"]["code"] in ("invalid_registry_mirror", "validation_error")
    mirrors = {"pip": "http://127.0.0.1:9/simple", "npm": "http://127.0.0.1:9/npm/"}
    response = api_client.patch(url, {"registryMirrors": mirrors}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["registryMirrors"] == mirrors
    changed = api_client.patch(url, {"registryMirrors": {"npm": None, "go": "https://proxy.example/go"}}, format="json")
    assert changed.json()["registryMirrors"] == {"pip": mirrors["pip"], "go": "https://proxy.example/go"}
    entry = AuditEntry.objects.filter(action="org.updated").order_by("-seq").first()
    assert entry.changes["registry_mirrors"][1] == {"pip": mirrors["pip"], "go": "https://proxy.example/go"}
    # a key without orgs:manage cannot change them
    response = client_for(owner, [SANDBOXES_READ]).patch(url, {"registryMirrors": {"pip": None}}, format="json")
    assert response.status_code == 403

    sandbox_id = create_sandbox(
        template="python-3", env={"PIP_RETRIES": "0", "PIP_TIMEOUT": "5", "SSL_CERT_FILE": "/workspace/own.pem"}
    )["id"]
    answer, messages, execution = install(api_client, api_key, sandbox_id, manager="pip", packages=["six"])
    assert answer["mirror"] is True
    assert execution.status == "failed"  # nothing listens there
    text = output(messages)
    assert "Looking in indexes: http://127.0.0.1:9/simple" in text, text
    assert AuditEntry.objects.get(action="packages.installed").changes["mirror"] is True
    # pip's environment: the mirror, and the CA bundle the server was given (in the image's system store)
    env = manager_env(Sandbox.objects.get(pk=sandbox_id), "pip", cwd="/workspace")
    assert env["PIP_INDEX_URL"] == mirrors["pip"]
    assert env["PIP_CERT"] == SYSTEM_CA and env["NODE_EXTRA_CA_CERTS"] == SYSTEM_CA
    assert "SSL_CERT_FILE" not in env  # the sandbox's own setting wins


FAKE_PIP = """import json, sys
mode = open("/workspace/mode").read().strip()
if mode == "entries":
    print(json.dumps([{"name": "ok-pkg", "version": "1.0"}, {"name": "bad name; rm -rf /", "version": "1"},
                      {"name": "x", "version": 5}, "not an object", {"name": "long", "version": "9" * 500}]))
elif mode == "huge":
    sys.stdout.write("[" + " " * (5 * 1024 * 1024) + "]")
elif mode == "nan":
    print('[{"name": "a", "version": NaN}]')
elif mode == "deep":
    print("[" * 5000 + "]" * 5000)
else:
    print("boom", file=sys.stderr)
    sys.exit(3)
"""


def test_listing_treats_the_managers_output_as_hostile(api_client, create_sandbox):
    """`python3 -m pip` in /workspace runs the sandbox's own `pip` package there: what it prints
    is whatever the sandbox wants."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    script = "mkdir -p /workspace/pip && touch /workspace/pip/__init__.py && cat > /workspace/pip/__main__.py <<'EOF'\n"
    script += f"{FAKE_PIP}EOF\n"
    run(api_client, sandbox_id, script)
    url = f"/api/v1/sandboxes/{sandbox_id}/packages"

    def listing(mode: str):
        run(api_client, sandbox_id, f"echo {mode} > /workspace/mode")
        return api_client.get(url, {"manager": "pip"})

    body = listing("entries").json()
    assert body["packages"] == [{"name": "ok-pkg", "version": "1.0"}] and body["skipped"] == 3
    for mode, reason in [("huge", "too_large"), ("fail", "exit")]:
        response = listing(mode)
        assert response.status_code == 422, response.content
        error = response.json()["error"]
        assert error["code"] == "package_list_failed" and error["details"]["reason"] == reason
    assert listing("fail").json()["error"]["details"]["stderr"] == "boom\n"
    for mode in ("nan", "deep"):
        response = listing(mode)
        assert response.status_code == 422 and response.json()["error"]["code"] == "package_list_failed", mode


ROOT = "path+file:///workspace#0.1.0"
GREET = "registry+sparse+http://registry:8080/cargo/#greet@1.0.3"


def test_cargo_listing_reads_resolved_versions_and_distrusts_them():
    """`cargo metadata` (the parser of the real command's output; the listing itself runs in
    tests/sandboxes/test_packages_managers.py): the members' direct dependencies with the
    versions resolved, the requirements when there is no resolve, anything odd skipped."""
    metadata = {
        "packages": [
            {"name": "workspace", "version": "0.1.0", "id": ROOT, "dependencies": [{"name": "greet", "req": "^1"}]},
            {"name": "greet", "version": "1.0.3", "id": GREET, "dependencies": [{"name": "inner", "req": "^2"}]},
            {"name": "inner", "version": "2.1.0", "id": "inner-id", "dependencies": []},
            {"name": "evil; rm -rf /", "version": "1", "id": "evil-id"},
            {"name": "odd", "version": 5, "id": "odd-id"},
            "not a package",
        ],
        "workspace_members": [ROOT],
        "resolve": {
            "root": ROOT,
            "nodes": [
                {
                    "id": ROOT,
                    "deps": [
                        {"name": "greet", "pkg": GREET},
                        {"pkg": "evil-id"},
                        {"pkg": "odd-id"},
                        {"pkg": "unknown-id"},
                        {"pkg": 7},
                        "x",
                    ],
                },
                {"id": GREET, "deps": [{"name": "inner", "pkg": "inner-id"}]},  # not a direct one
                None,
            ],
        },
    }
    pairs = _pairs("cargo", json.dumps(metadata).encode())
    assert pairs == [("greet", "1.0.3"), ("evil; rm -rf /", "1"), ("odd", 5)]  # packages_list skips the last two
    no_deps = {**metadata, "packages": metadata["packages"][:1], "resolve": None}
    assert _pairs("cargo", json.dumps(no_deps).encode()) == [("greet", "^1")]
    for hostile in (b"[]", b'{"resolve": {"nodes": 5}, "packages": {}}', b'{"resolve": [], "packages": [1, 2]}'):
        assert _pairs("cargo", hostile) == []
    for broken in (b"{", b"[" * 5000 + b"]" * 5000, b'{"a": NaN}'):
        with pytest.raises(errors.PackageListFailed):
            _pairs("cargo", broken)
