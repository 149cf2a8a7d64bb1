"""End to end: the real server (uvicorn, as in the Procfile) on loopback, with the README example."""

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import live_server

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def live_server_url(transactional_db, templates):
    with live_server() as (url, _pid):
        yield url


def _readme_curl_block() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Three lines of API", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    # The export line holds placeholders; the test provides the real values.
    return "\n".join(line for line in block.splitlines() if not line.startswith("export "))


def _json_documents(text: str) -> list:
    decoder, docs, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        doc, index = decoder.raw_decode(text, index)
        docs.append(doc)
    return docs


def test_readme_curl_example_against_the_live_server(live_server_url, api_key, docker_client, cleanup_sandbox_ids):
    script = _readme_curl_block()
    assert "curl" in script
    env = {**os.environ, "VIBEBOX_API_URL": live_server_url, "VIBEBOX_API_KEY": api_key[1]}
    # Run the create and read lines first, to look at the container before the delete line.
    lines = [line for line in script.splitlines() if line.strip()]
    create_and_read = "\n".join(line for line in lines if "DELETE" not in line)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", create_and_read], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    created, read = _json_documents(result.stdout)
    cleanup_sandbox_ids.append(created["id"])
    assert created["status"] == "running" and created["name"] == "my-dev" and created["timeout"] == 7200
    assert read["id"] == created["id"]
    attrs = docker_client.api.inspect_container(created["id"])
    assert attrs["Config"]["Labels"]["vibebox.sandbox-id"] == created["id"]
    assert attrs["HostConfig"]["CapDrop"] == ["ALL"]

    delete = "\n".join(line for line in lines if "DELETE" in line)
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", delete], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not docker_client.containers.list(all=True, filters={"name": created["id"]})


def test_live_server_readyz_and_error_envelope(live_server_url):
    with urllib.request.urlopen(f"{live_server_url}/readyz", timeout=5) as response:
        assert json.load(response)["status"] == "ok"
    request = urllib.request.Request(f"{live_server_url}/api/v1/sandboxes")
    try:
        urllib.request.urlopen(request, timeout=5)
        raise AssertionError("expected 401")
    except urllib.error.HTTPError as exc:
        assert exc.code == 401
        assert json.load(exc)["error"]["code"] == "not_authenticated"


def test_oversized_upload_is_refused_before_the_body_is_read(live_server_url, api_key, create_sandbox, settings):
    sandbox_id = create_sandbox()["id"]
    request = urllib.request.Request(
        f"{live_server_url}/api/v1/sandboxes/{sandbox_id}/files?path=huge.bin",
        data=b"x" * 10,
        method="POST",
        headers={"Authorization": f"Bearer {api_key[1]}", "Content-Length": str(10 * 1024**4)},
    )
    try:
        urllib.request.urlopen(request, timeout=10)
        raise AssertionError("expected 413")
    except urllib.error.HTTPError as exc:
        assert exc.code == 413
        assert json.load(exc)["error"]["code"] == "request_too_large"
