"""The OpenAPI document: generated without warnings, valid, deterministic, with the shapes the
SDKs rely on; and real answers of the API validate against the schemas it declares for them."""

import json
import os
import subprocess
import sys

import jsonschema
import pytest
from django.core.management import call_command
from drf_spectacular.drainage import reset_generator_stats
from rest_framework.test import APIClient

from apps.agents.models import ChangeSet, ClaudeAsk, ClaudeEvent, ClaudeSession
from apps.sandboxes.models import Sandbox

from .conftest import ROOT
from .sandboxes.test_files import make_tar
from .waiting import wait_for

SCHEMA = "#/components/schemas/"
SANDBOX = "/api/v1/sandboxes/{sandbox_id}"


def _generate(path) -> dict:
    reset_generator_stats()
    call_command("spectacular", "--fail-on-warn", "--validate", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def doc(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("openapi") / "schema.json")


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def body_schema(doc, path, method, status=200) -> dict:
    return doc["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]


def component(doc, ref_or_schema) -> dict:
    ref = ref_or_schema["$ref"] if isinstance(ref_or_schema, dict) else SCHEMA + ref_or_schema
    return doc["components"]["schemas"][ref.removeprefix(SCHEMA)]


# ---- the document ----


def test_generation_has_no_warnings_or_errors_and_validates(doc):
    assert doc["openapi"].startswith("3.") and len(doc["paths"]) > 50  # the fixture failed otherwise


def test_the_document_is_deterministic(tmp_path):
    """Two processes with different hash seeds write the same bytes."""
    outputs = []
    for seed in ("1", "2"):
        target = tmp_path / f"schema-{seed}.json"
        env = {**os.environ, "PYTHONHASHSEED": seed, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        subprocess.run(
            [sys.executable, "manage.py", "spectacular", "--format", "openapi-json", "--file", str(target)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]


def test_every_operation_is_typed_and_has_a_unique_id(doc):
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(doc):
        assert path.startswith("/api/v1/"), path
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                schema = content["schema"]
                if media_type == "text/event-stream":  # the schema of each event's `data:` (files/watch)
                    assert "$ref" in schema, (path, method)
                    continue
                if media_type != "application/json":
                    assert schema == {"type": "string", "format": "binary"}, (path, method)
                    continue
                typed = "$ref" in schema or "$ref" in schema.get("items", {})
                assert typed, f"{method} {path} {status} answers an untyped body: {schema}"


def test_error_envelope_on_every_operation(doc):
    envelope = component(doc, "ErrorResponse")
    assert envelope["required"] == ["error", "requestId"]
    assert envelope["properties"]["error"]["required"] == ["code", "message", "details"]
    assert "sandbox_not_found" in component(doc, "ErrorCode")["enum"]
    error_ref = {"$ref": SCHEMA + "ErrorResponse"}
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        expected = {"401", "403", "429", "default"} | ({"404"} if "{" in path else set())
        expected |= {"400"} if "requestBody" in operation else set()
        assert expected <= set(responses), (method, path)
        for status in expected:
            assert responses[status]["content"]["application/json"]["schema"] == error_ref
    assert "409" in doc["paths"][f"{SANDBOX}/stop"]["post"]["responses"]
    assert "413" in doc["paths"][f"{SANDBOX}/files"]["post"]["responses"]
    assert "422" in doc["paths"][f"{SANDBOX}/git/clone"]["post"]["responses"]


def test_lists_are_shaped_as_the_server_answers(doc):
    for path, item in [("/api/v1/sandboxes", "Sandbox"), (f"{SANDBOX}/executions", "Execution")]:
        page = component(doc, body_schema(doc, path, "get"))
        assert set(page["properties"]) == set(page["required"]) == {"count", "next", "previous", "results"}
        assert page["properties"]["results"]["items"] == {"$ref": SCHEMA + item}
        assert {"limit", "offset"} <= {p["name"] for p in doc["paths"][path]["get"]["parameters"]}
    for path in ["/api/v1/snapshots", f"{SANDBOX}/snapshots"]:
        assert component(doc, body_schema(doc, path, "get"))["properties"]["results"]["items"] == {
            "$ref": SCHEMA + "Snapshot"
        }
    assert body_schema(doc, "/api/v1/keys", "get") == {"type": "array", "items": {"$ref": SCHEMA + "ApiKey"}}
    assert body_schema(doc, "/api/v1/templates", "get") == {"type": "array", "items": {"$ref": SCHEMA + "Template"}}


def test_enums_have_the_names_pinned_in_settings(doc, settings):
    for name in settings.SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]:
        assert name in doc["components"]["schemas"], name


def test_lifecycle_actions_answer_the_sandbox(doc):
    for action in ["start", "stop", "restart", "pause", "resume"]:
        operation = doc["paths"][f"{SANDBOX}/{action}"]["post"]
        assert operation["operationId"] == f"sandboxes_{action}"
        assert body_schema(doc, f"{SANDBOX}/{action}", "post") == {"$ref": SCHEMA + "Sandbox"}
    assert component(doc, "SandboxStatusEnum")["enum"][:3] == ["creating", "starting", "running"]


def test_exec_shapes(doc):
    result = component(doc, body_schema(doc, f"{SANDBOX}/exec", "post"))
    assert set(result["required"]) == {
        "executionId", "stdout", "stderr", "exitCode", "duration", "status", "truncated", "oomKilled",
    }  # fmt: skip
    assert result["properties"]["exitCode"]["nullable"] is True
    background = component(doc, body_schema(doc, f"{SANDBOX}/exec", "post", 202))
    assert set(background["properties"]) == {"processId", "executionId", "status"}
    request = component(
        doc, doc["paths"][f"{SANDBOX}/exec"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    assert request["additionalProperties"] is False
    command, timeout = request["properties"]["command"], request["properties"]["timeout"]
    assert [option["type"] for option in command["oneOf"]] == ["string", "array"]
    assert [option["type"] for option in timeout["oneOf"]] == ["number", "string"] and timeout["nullable"]
    memory = component(doc, "ResourcesInputRequest")["properties"]["memory"]
    assert [option["type"] for option in memory["oneOf"]] == ["integer", "string"]


def test_file_and_env_shapes(doc):
    listing = component(doc, body_schema(doc, f"{SANDBOX}/files", "get"))
    assert listing["properties"]["entries"]["items"] == {"$ref": SCHEMA + "FileEntry"}
    entry = component(doc, "FileEntry")
    assert set(entry["required"]) == {
        "path", "name", "size", "isDir", "type", "mode", "modifiedAt", "symlinkTarget",
    }  # fmt: skip
    assert entry["properties"]["symlinkTarget"]["nullable"] is True
    assert component(doc, "FileTypeEnum")["enum"] == ["file", "directory", "symlink", "other"]
    parameters = {p["name"] for p in doc["paths"][f"{SANDBOX}/files"]["post"]["parameters"]}
    assert {"path", "mode", "extract", "autoResume"} <= parameters
    upload = component(doc, body_schema(doc, f"{SANDBOX}/files", "post", 201))
    assert upload["oneOf"] == [{"$ref": SCHEMA + "FileUploaded"}, {"$ref": SCHEMA + "ArchiveUploaded"}]
    download = doc["paths"][f"{SANDBOX}/files/{{path}}"]["get"]["responses"]["200"]["content"]
    assert download["*/*"]["schema"]["format"] == "binary"
    assert "post" not in doc["paths"][f"{SANDBOX}/files/{{path}}"]
    assert set(doc["paths"][f"{SANDBOX}/files/mkdir"]) == {"post"}
    assert set(doc["paths"][f"{SANDBOX}/files/move"]) == {"post"}

    env = component(doc, body_schema(doc, f"{SANDBOX}/env", "get"))
    assert env["additionalProperties"] == {"$ref": SCHEMA + "EnvVarValue"}
    patch = doc["paths"][f"{SANDBOX}/env"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    values = component(doc, patch)["additionalProperties"]
    assert values["nullable"] is True and values["oneOf"][0] == {"type": "string"}
    variable = component(doc, body_schema(doc, f"{SANDBOX}/env/{{name}}", "get"))
    assert set(variable["required"]) == {"name", "value", "secret"}


def test_git_auth_is_a_tagged_union(doc):
    auth = component(doc, component(doc, "GitCloneRequest")["properties"]["auth"])
    assert auth["discriminator"]["propertyName"] == "type"
    assert set(auth["discriminator"]["mapping"]) == {"token", "ssh"}


# ---- real answers against their schemas ----


def _json_schema(node):
    """OpenAPI 3.0 schema → JSON Schema: `nullable` allows null; objects with properties accept no
    others (so an answer with an undocumented field fails)."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if "properties" in node and "additionalProperties" not in node:
        node["additionalProperties"] = False
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


class Checker:
    def __init__(self, doc, client):
        self.doc, self.client = doc, client

    def __call__(self, method, template, expect, data=None, query="", **ids):
        url = template.format(**ids) + (f"?{query}" if query else "")
        call = getattr(self.client, method)
        response = call(url) if data is None else call(url, data, format="json")
        assert response.status_code == expect, (method, url, response.content)
        self.validate(method, template, response)
        return response.json() if response.content else None

    def validate(self, method, template, response):
        declared = self.doc["paths"][template][method]["responses"]
        assert str(response.status_code) in declared, (method, template, response.status_code)
        content = declared[str(response.status_code)].get("content")
        if not content:
            assert not response.content
            return
        schema = {"allOf": [content["application/json"]["schema"]], "components": self.doc["components"]}
        jsonschema.Draft7Validator(_json_schema(schema)).validate(response.json())


def test_the_checker_holds_answers_to_their_schema(doc):
    def validate(body):
        schema = {"allOf": [{"$ref": SCHEMA + "EnvVar"}], "components": doc["components"]}
        jsonschema.Draft7Validator(_json_schema(schema)).validate(body)

    validate({"name": "A", "value": "1", "secret": False})
    for bad in [{"name": "A", "value": "1"}, {"name": "A", "value": "1", "secret": False, "extra": 1}]:
        with pytest.raises(jsonschema.ValidationError):
            validate(bad)


@pytest.fixture
def check(doc, api_client):
    return Checker(doc, api_client)


def _claude_records(sandbox_id: str) -> tuple[str, str]:
    """A finished ask with its events and a pending change set, as Claude Code would leave them."""
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    session = ClaudeSession.objects.create(
        id="sess-1", sandbox=sandbox, title="t", cwd="/home/sandbox/wt", branch="claude/sess-1"
    )
    ask = ClaudeAsk.objects.create(
        session=session,
        sandbox=sandbox,
        prompt="add a file",
        options={"model": None, "permissionMode": "acceptEdits", "allowedTools": [], "maxTurns": None},
        status=ClaudeAsk.Status.COMPLETED,
        result="done",
        num_turns=2,
        cost_usd="0.01",
        usage={"input_tokens": 3},
        duration_ms=1200,
        exit_code=0,
    )
    events = [
        {"type": "assistant", "message": {"content": [{"type": "text", "text": "ok"}]}},
        {
            "type": "assistant",
            "message": {"content": [{"type": "tool_use", "id": "tu1", "name": "Write", "input": {}}]},
        },
        {"type": "user", "message": {"content": [{"type": "tool_result", "tool_use_id": "tu1", "content": "ok"}]}},
        {"type": "result", "result": "done", "is_error": False, "total_cost_usd": 0.01, "num_turns": 2},
    ]
    for seq, data in enumerate(events):
        ClaudeEvent.objects.create(ask=ask, seq=seq, type=data["type"], data=data)
    files = [{"path": "a.txt", "status": "added", "additions": 1, "deletions": 0, "binary": False}]
    ChangeSet.objects.create(session=session, ask=ask, base_commit="a" * 40, head_commit="b" * 40, files=files)
    return session.id, ask.id


def test_sandbox_answers_match_their_schemas(transactional_db, check, api_client, templates, cleanup_sandbox_ids):
    """Transactional: the background command's thread records its execution through its own connection."""
    created = check("post", "/api/v1/sandboxes", 201, {"template": "python-3", "metadata": {"k": "v"}})
    cleanup_sandbox_ids.append(created["id"])
    ids = {"sandbox_id": created["id"]}
    check("get", "/api/v1/sandboxes", 200)
    check("get", SANDBOX, 200, **ids)
    check("patch", SANDBOX, 200, {"timeout": "1h", "autoPause": None}, **ids)

    result = check("post", f"{SANDBOX}/exec", 200, {"command": "echo hi; echo e >&2; exit 3"}, **ids)
    check("post", f"{SANDBOX}/exec", 200, {"command": ["true"], "timeout": 1}, **ids)
    check("post", f"{SANDBOX}/execute", 200, {"code": "1 + 1", "language": "python"}, **ids)
    started = check("post", f"{SANDBOX}/exec", 202, {"command": "sleep 30", "background": True}, **ids)
    check("get", f"{SANDBOX}/processes", 200, **ids)
    check("post", f"{SANDBOX}/processes/{{process_id}}/kill", 200, process_id=started["processId"], **ids)
    wait_for(  # until its thread has recorded the end
        lambda: not check("get", f"{SANDBOX}/processes", 200, **ids)["processes"],
        what="the killed process to be recorded",
    )
    check("get", f"{SANDBOX}/executions", 200, **ids)
    check("get", f"{SANDBOX}/executions/{{execution_id}}", 200, execution_id=result["executionId"], **ids)

    check("patch", f"{SANDBOX}/env", 200, {"A": "1", "S": {"value": "s3cr3t", "secret": True}, "X": None}, **ids)
    check("put", f"{SANDBOX}/env", 200, {"A": "2", "S": {"value": "s3cr3t"}}, **ids)
    check("get", f"{SANDBOX}/env", 200, **ids)
    check("get", f"{SANDBOX}/env/{{name}}", 200, name="S", **ids)
    check("delete", f"{SANDBOX}/env/{{name}}", 204, name="A", **ids)

    files = f"/api/v1/sandboxes/{created['id']}/files"
    response = api_client.post(f"{files}?path=d/f.txt&mode=0640", b"hello", content_type="application/octet-stream")
    assert response.status_code == 201, response.content
    check.validate("post", f"{SANDBOX}/files", response)
    response = api_client.post(f"{files}?path=x", make_tar([("t.txt", b"t", 0o644)]), content_type="application/gzip")
    assert response.status_code == 201 and response.json() == {"path": "/workspace/x", "entries": 1}
    check.validate("post", f"{SANDBOX}/files", response)
    check("get", f"{SANDBOX}/files", 200, query="path=d&recursive=true", **ids)
    check("post", f"{SANDBOX}/files/mkdir", 201, {"path": "m/n"}, **ids)
    check("post", f"{SANDBOX}/files/move", 200, {"source": "d/f.txt", "destination": "m/g.txt"}, **ids)
    check("delete", f"{SANDBOX}/files/{{path}}", 204, query="recursive=true", path="m", **ids)

    check("post", f"{SANDBOX}/exec", 200, {"command": "git init -q -b main r && echo x > r/a"}, **ids)
    author = {"name": "A", "email": "a@example.com"}
    check("post", f"{SANDBOX}/git/commit", 200, {"path": "r", "message": "m", "all": True, "author": author}, **ids)
    check("post", f"{SANDBOX}/git/checkout", 200, {"path": "r", "branch": "b", "create": True}, **ids)
    check("post", f"{SANDBOX}/exec", 200, {"command": "echo y >> r/a && echo n > r/new"}, **ids)
    for name in ["status", "diff", "log", "branches"]:
        check("get", f"{SANDBOX}/git/{name}", 200, query="path=r", **ids)

    check("get", f"{SANDBOX}/logs", 200, query="tail=all", **ids)
    check("get", f"{SANDBOX}/metrics", 200, **ids)
    check("get", f"{SANDBOX}/claude/status", 200, **ids)
    session_id, ask_id = _claude_records(created["id"])
    check("get", f"{SANDBOX}/claude/asks", 200, **ids)
    check("get", f"{SANDBOX}/claude/asks/{{ask_id}}", 200, ask_id=ask_id, **ids)
    check("get", f"{SANDBOX}/claude/sessions", 200, **ids)
    check("get", f"{SANDBOX}/claude/sessions/{{session_id}}", 200, query="transcript=1", session_id=session_id, **ids)
    check("get", f"{SANDBOX}/claude/changes", 200, query="diff=false", **ids)

    check("post", f"{SANDBOX}/pause", 200, **ids)
    check("post", f"{SANDBOX}/exec", 409, {"command": "true"}, **ids)
    check("post", f"{SANDBOX}/resume", 200, **ids)
    check("post", f"{SANDBOX}/start", 409, **ids)
    check("delete", SANDBOX, 204, **ids)


def test_other_answers_and_errors_match_their_schemas(check, api_key, templates):
    check("get", "/api/v1/keys", 200)
    created = check("post", "/api/v1/keys", 201, {"name": "k", "expiresIn": "1d", "scopes": ["sandboxes:read"]})
    check("get", "/api/v1/keys/{key_id}", 200, key_id=created["id"])
    check("get", "/api/v1/keys/{key_id}/usage", 200, key_id=api_key[0].id)
    check("post", "/api/v1/keys/{key_id}/rotate", 201, {"gracePeriod": 60}, key_id=created["id"])
    check("get", "/api/v1/templates", 200)
    check("get", "/api/v1/templates/{name}", 200, name="python-3")
    check("get", "/api/v1/snapshots", 200)
    run = check("post", "/api/v1/agent-runs", 201, {"name": "r", "tasks": [{"name": "t"}]})
    check("get", "/api/v1/agent-runs", 200)
    check("patch", "/api/v1/agent-runs/{run_id}", 200, {"status": "completed"}, run_id=run["id"])

    check("get", SANDBOX, 404, sandbox_id="sbx_missing")
    check("post", "/api/v1/sandboxes", 400, {"template": "python-3", "bogus": 1})
    check("post", "/api/v1/sandboxes", 400, {"template": "python-3", "timeout": "soon"})
    check("get", "/api/v1/pools", 403)
    anonymous = Checker(check.doc, APIClient())
    anonymous("get", "/api/v1/sandboxes", 401)


def test_the_document_states_the_ranges_and_patterns_the_server_enforces(doc, settings):
    """Issue 17, item 19: what the server accepts is what the document says (schemathesis checks
    it both ways in tests/test_schema_fuzz.py)."""
    from vibebox.units import DURATION_PATTERN, SIZE_PATTERN

    exec_body = component(
        doc, doc["paths"][f"{SANDBOX}/exec"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    )
    number, text = exec_body["properties"]["timeout"]["oneOf"]
    assert number["minimum"] == 0 and number["maximum"] == settings.VIBEBOX_EXEC_MAX_TIMEOUT
    assert text["pattern"] == DURATION_PATTERN
    create_body = component(doc, "SandboxCreateRequest")
    create = create_body["properties"]
    zero, paused, _ = create["autoPause"]["oneOf"]
    assert zero["enum"] == [0] and paused["minimum"] == settings.VIBEBOX_AUTO_PAUSE_MIN
    assert create["timeout"]["oneOf"][0]["maximum"] == settings.VIBEBOX_MAX_TIMEOUT
    assert create["name"]["pattern"].startswith("^(?!sbx_)")
    assert create["metadata"]["maxProperties"] == settings.VIBEBOX_METADATA_MAX_KEYS
    resources = component(doc, "ResourcesInputRequest")["properties"]
    assert resources["cpu"]["maximum"] == settings.VIBEBOX_MAX_CPU and resources["cpu"]["minimum"] == 0.01
    memory, memory_text = resources["memory"]["oneOf"]
    assert (memory["minimum"], memory["maximum"]) == (settings.VIBEBOX_MIN_MEMORY, settings.VIBEBOX_MAX_MEMORY)
    assert memory_text["pattern"] == SIZE_PATTERN
    key = component(doc, "ApiKeyCreateRequest")["properties"]
    pattern, blank = key["rateLimit"]["oneOf"]
    assert pattern["pattern"].startswith("^[1-9][0-9]{0,6}/") and blank == {"type": "string", "maxLength": 0}
    assert create_body["anyOf"] == [{"required": ["template"]}, {"required": ["snapshot"]}]
    assert component(doc, "ApiKeyCreateRequest")["not"] == {"required": ["expiresAt", "expiresIn"]}
    assert key["expiresIn"]["oneOf"][0]["maximum"] == 10 * 365 * 86400
    limit, offset = (
        next(p for p in doc["paths"]["/api/v1/sandboxes"]["get"]["parameters"] if p["name"] == name)["schema"]
        for name in ("limit", "offset")
    )
    assert (limit["minimum"], limit["maximum"], offset["minimum"]) == (1, 500, 0)
    assert set(doc["paths"][f"{SANDBOX}/files/{{path}}"]) == {"get", "delete"}
