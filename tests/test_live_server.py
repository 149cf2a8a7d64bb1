"""End to end: the real server (uvicorn, as in the Procfile) on loopback, with the README example."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server_url(transactional_db, templates):
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{settings.DATABASES['default']['NAME']}",
    }
    # The Procfile's web server and flags.
    web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    flags = [f for f in shlex.split(web.split("vibebox.asgi:application", 1)[1]) if "$" not in f]
    flags = [f for f in flags if f not in ("--host", "--port")]
    command = [str(ROOT / ".venv" / "bin" / "uvicorn"), "vibebox.asgi:application", *flags]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


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
        assert json.load(exc)["error"]["code"] == "payload_too_large"
