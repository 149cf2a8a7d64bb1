"""uploadFile and uploadArchive: GraphQL multipart requests (operations, map, file parts) through the
real /graphql view, into a real sandbox; the files are read back from the container."""

import io
import json
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.audit.models import AuditEntry
from tests.graphql.conftest import error_codes
from vibebox import bodylimit

pytestmark = pytest.mark.django_db

UPLOAD_FILE = """mutation($id: ID!, $file: Upload!, $path: String, $mode: String) {
    uploadFile(sandboxId: $id, file: $file, path: $path, mode: $mode) { path size mode } }"""
UPLOAD_ARCHIVE = """mutation($id: ID!, $archive: Upload!, $path: String!) {
    uploadArchive(sandboxId: $id, archive: $archive, path: $path) { path entries } }"""


def multipart(client, query: str, variables: dict, files: dict, mapping: dict | None = None) -> dict:
    """POST /graphql as the multipart request spec has it: each file's variable a null in
    `operations`, `map` naming where each part goes."""
    mapping = mapping if mapping is not None else {str(n): [f"variables.{name}"] for n, name in enumerate(files)}
    parts = {str(n): SimpleUploadedFile(name, data) for n, (name, data) in enumerate(files.items())}
    body = {"operations": json.dumps({"query": query, "variables": variables}), "map": json.dumps(mapping), **parts}
    response = client.post("/graphql", body, format="multipart")
    assert response.status_code in (200, 400), response.content
    return response.json()


def cat(docker_client, sandbox_id: str, path: str) -> str:
    return docker_client.containers.get(sandbox_id).exec_run(["cat", path]).output.decode()


def test_a_file_and_an_archive_go_in_as_multipart_requests(api_client, create_sandbox, docker_client):
    sid = create_sandbox(template="python-3")["id"]
    body = multipart(api_client, UPLOAD_FILE, {"id": sid, "file": None, "mode": "0600"}, {"file": b"print(42)\n"})
    assert "errors" not in body, body
    assert body["data"]["uploadFile"] == {"path": "/workspace/file", "size": 10, "mode": "0600"}
    assert cat(docker_client, sid, "/workspace/file") == "print(42)\n"

    into_dir = multipart(api_client, UPLOAD_FILE, {"id": sid, "file": None, "path": "sub/"}, {"file": b"x"})
    assert into_dir["data"]["uploadFile"]["path"] == "/workspace/sub/file"

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for name, data in {"a.txt": b"alpha", "pkg/b.txt": b"beta"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    body = multipart(
        api_client, UPLOAD_ARCHIVE, {"id": sid, "archive": None, "path": "tree"}, {"archive": archive.getvalue()}
    )
    assert "errors" not in body, body
    assert body["data"]["uploadArchive"]["path"] == "/workspace/tree"
    assert cat(docker_client, sid, "/workspace/tree/pkg/b.txt") == "beta"
    actions = set(AuditEntry.objects.filter(target_id=sid).values_list("action", flat=True))
    assert {"file.written", "archive.extracted"} <= actions


def test_an_unsafe_archive_writes_nothing(api_client, create_sandbox, docker_client):
    sid = create_sandbox(template="python-3")["id"]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"!"))
    body = multipart(
        api_client, UPLOAD_ARCHIVE, {"id": sid, "archive": None, "path": "t"}, {"archive": archive.getvalue()}
    )
    assert body["data"] is None and len(error_codes(body)) == 1, body
    assert cat(docker_client, sid, "/workspace/escape.txt").startswith("cat:")


def test_bad_multipart_requests_are_400s_naming_the_part(api_client, create_sandbox):
    sid = create_sandbox(template="python-3")["id"]
    variables = {"id": sid, "file": None}
    cases = [
        ({"0": ["variables.nothere"]}, "map"),  # no such variable
        ({"1": ["variables.file"]}, "map"),  # no such file part
        ({"0": "variables.file"}, "map"),  # not a list
        ({"0": ["query"]}, "map"),  # only the variables take files
    ]
    for mapping, field in cases:
        body = multipart(api_client, UPLOAD_FILE, variables, {"file": b"x"}, mapping)
        assert error_codes(body) == ["validation_error"], (mapping, body)
        assert field in json.dumps(body["errors"][0]["extensions"]["details"]), body
    missing = api_client.post("/graphql", {"map": "{}"}, format="multipart")
    assert missing.status_code == 400 and "operations" in missing.content.decode()


def test_a_file_variable_sent_as_json_and_an_outsider_are_refused(api_client, outsider_client, create_sandbox):
    sid = create_sandbox(template="python-3")["id"]
    as_json = api_client.post(
        "/graphql", {"query": UPLOAD_FILE, "variables": {"id": sid, "file": "aGk="}}, format="json"
    )
    assert error_codes(as_json.json()) == ["validation_error"]
    outsider = multipart(outsider_client, UPLOAD_FILE, {"id": sid, "file": None}, {"file": b"x"})
    assert error_codes(outsider) == ["sandbox_not_found"]


def test_multipart_graphql_has_the_upload_body_limit(settings):
    settings.VIBEBOX_UPLOAD_MAX_BYTES = 100 * 1024**2
    settings.VIBEBOX_REQUEST_MAX_BYTES = 1024**2
    as_upload = bodylimit.limit_for("POST", "/graphql", "multipart/form-data; boundary=x")
    assert as_upload > settings.VIBEBOX_UPLOAD_MAX_BYTES
    assert bodylimit.limit_for("POST", "/graphql", "application/json") == settings.VIBEBOX_REQUEST_MAX_BYTES
