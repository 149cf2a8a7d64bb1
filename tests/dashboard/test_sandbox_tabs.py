"""Dashboard sandbox tabs: terminal, files, exec, logs (owner, outsider, anonymous, bad input),
against real containers; the tabs' WebSockets with the dashboard's session cookie."""

import io
import json
import time

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.test import Client

from apps.sandboxes.models import Execution, Sandbox
from apps.sandboxes.services import files
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sandbox(create_sandbox):
    return Sandbox.objects.get(pk=create_sandbox(template="python-3")["id"])


def names(sandbox, path="/workspace") -> set[str]:
    return {entry.name for entry in files.file_list(sandbox=sandbox, path=path)}


def put(sandbox, path: str, data: bytes) -> None:
    files.file_upload(sandbox=sandbox, path=path, fileobj=io.BytesIO(data), size=len(data))


def body(response) -> bytes:
    """The whole of a streamed download (the view streams asynchronously, as under ASGI)."""

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def urls(sandbox_id: str) -> dict[str, tuple[str, str]]:
    base = f"/sandboxes/{sandbox_id}"
    return {
        "terminal": ("get", f"{base}/terminal"),
        "terminal-sessions": ("get", f"{base}/terminal/sessions"),
        "files": ("get", f"{base}/files"),
        "download": ("get", f"{base}/files/download?path=a.txt"),
        "upload": ("post", f"{base}/files/upload"),
        "mkdir": ("post", f"{base}/files/mkdir"),
        "delete": ("post", f"{base}/files/delete"),
        "edit": ("get", f"{base}/files/edit?path=a.txt"),
        "save": ("post", f"{base}/files/edit"),
        "exec": ("get", f"{base}/exec"),
        "run": ("post", f"{base}/exec/run"),
        "history": ("get", f"{base}/exec/history"),
        "detail": ("get", f"{base}/exec/exe_nope"),
        "logs": ("get", f"{base}/logs"),
    }


def session_communicator(client: Client, path: str) -> Communicator:
    """A WebSocket on the real ASGI app carrying the dashboard's session cookie, as a browser would."""
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    origin = f"http://testserver:{settings.VIBEBOX_PORT}".encode()  # the page's full origin (vibebox/origins.py)
    headers = [(b"host", b"testserver"), (b"origin", origin), (b"cookie", cookie.encode())]
    return Communicator(application, path, headers=headers)


async def read_until(comm: Communicator, needle: bytes, timeout: float = 15.0) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        output = await comm.receive_output(timeout=max(0.1, deadline - time.monotonic()))
        assert output["type"] != "websocket.close", f"closed before {needle!r}: {seen[-300:]!r}"
        seen += output.get("bytes") or (output.get("text") or "").encode()
    return seen


# ---- access ----


def test_anonymous_is_sent_to_sign_in(db):
    client = Client()
    for name, (method, url) in urls("sbx_x").items():
        response = getattr(client, method)(url)
        assert response.status_code == 302, name
        assert response["Location"].startswith("/login/?next="), name


def test_outsider_gets_404_everywhere_and_changes_nothing(outsider_browser, sandbox):
    put(sandbox, "/workspace/a.txt", b"mine")
    for name, (method, url) in urls(sandbox.id).items():
        data = {"path": "/workspace/a.txt", "name": "x", "dir": "/workspace", "content": "theirs", "code": "1"}
        response = getattr(outsider_browser, method)(url, data) if method == "post" else outsider_browser.get(url)
        assert response.status_code == 404, name
    assert names(sandbox) == {"a.txt"}
    assert not Execution.objects.filter(sandbox=sandbox).exists()


def test_tabs_appear_in_the_sandbox_nav(browser, sandbox):
    page = browser.get(f"/sandboxes/{sandbox.id}/").content.decode()
    for tab in ("terminal", "files", "exec", "logs"):
        assert f'href="/sandboxes/{sandbox.id}/{tab}"' in page


def test_csrf_is_enforced_on_posts(owner, sandbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.post(f"/sandboxes/{sandbox.id}/files/mkdir", {"name": "x"}).status_code == 403
    assert client.post(f"/sandboxes/{sandbox.id}/exec/run", {"code": "print(1)"}).status_code == 403
    page = client.get(f"/sandboxes/{sandbox.id}/files")
    token = client.cookies["csrftoken"].value
    response = client.post(
        f"/sandboxes/{sandbox.id}/files/mkdir",
        {"name": "x", "dir": "/workspace"},
        HTTP_X_CSRFTOKEN=token,
    )
    assert page.status_code == 200 and response.status_code == 302
    assert "x" in names(sandbox)


# ---- terminal ----


def test_terminal_page_and_joining_a_session_with_the_session_cookie(browser, sandbox):
    page = browser.get(f"/sandboxes/{sandbox.id}/terminal")
    content = page.content.decode()
    assert page.status_code == 200
    assert 'id="terminal"' in content and f'data-ws="/ws/sandboxes/{sandbox.id}/terminal"' in content
    assert "js/terminal.js" in content and "vendor/xterm/xterm.js" in content and "addon-fit.js" in content
    assert "No open terminal sessions." in content

    async def scenario():
        first = session_communicator(browser, f"/ws/sandboxes/{sandbox.id}/terminal?cols=100&rows=30")
        connected, code = await first.connect(timeout=20)
        assert connected, code
        session = json.loads((await first.receive_output(timeout=10))["text"])
        assert session["type"] == "session"
        await first.send_to(bytes_data=b"echo hel''lo\r")
        assert b"hello" in await read_until(first, b"hello")

        listing = await sync_to_async(browser.get)(f"/sandboxes/{sandbox.id}/terminal/sessions")
        assert session["sessionId"] in listing.content.decode()
        assert f"?session={session['sessionId']}" in listing.content.decode()
        page_url = f"/sandboxes/{sandbox.id}/terminal?session={session['sessionId']}"
        joined_page = await sync_to_async(browser.get)(page_url)
        assert f'data-session="{session["sessionId"]}"' in joined_page.content.decode()

        second = session_communicator(browser, f"/ws/sandboxes/{sandbox.id}/terminal?session={session['sessionId']}")
        assert (await second.connect(timeout=20))[0]
        hello = json.loads((await second.receive_output(timeout=10))["text"])
        assert hello["sessionId"] == session["sessionId"] and (hello["cols"], hello["rows"]) == (100, 30)
        await second.send_to(bytes_data=b"echo from-the-''dashboard\r")
        assert b"from-the-dashboard" in await read_until(first, b"from-the-dashboard")
        await second.disconnect()
        await first.disconnect()

    async_to_sync(scenario)()


def test_terminal_page_of_a_stopped_sandbox_says_so(browser, api_client, sandbox):
    assert api_client.post(f"/api/v1/sandboxes/{sandbox.id}/stop").status_code == 200
    page = browser.get(f"/sandboxes/{sandbox.id}/terminal?session=not-a-session")
    assert page.status_code == 200
    assert 'data-running="0"' in page.content.decode() and "start it to open a terminal" in page.content.decode()
    assert 'data-session=""' in page.content.decode()  # not a term_ id: ignored


# ---- files ----


def test_listing_dirs_first_with_breadcrumbs_and_download(browser, sandbox):
    put(sandbox, "/workspace/b.txt", b"bee\n")
    put(sandbox, "/workspace/zdir/inner.py", b"print(1)\n")
    put(sandbox, "/workspace/A file.txt", b"spaced")
    page = browser.get(f"/sandboxes/{sandbox.id}/files")
    content = page.content.decode()
    assert page.status_code == 200 and 'id="file-list"' in content and 'id="file-input"' in content
    assert content.index(">zdir</a>") < content.index(">A file.txt</a>") < content.index(">b.txt</a>")
    assert 'aria-current="location" class="mono">workspace<' in content

    inner = browser.get(f"/sandboxes/{sandbox.id}/files?path=zdir").content.decode()
    assert ">inner.py</a>" in inner and "?path=/workspace" in inner
    assert ">b.txt</a>" not in inner

    partial = browser.get(f"/sandboxes/{sandbox.id}/files?path=/workspace&partial=list", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and b"<html" not in partial.content and b">b.txt</a>" in partial.content

    download = browser.get(f"/sandboxes/{sandbox.id}/files/download?path=/workspace/b.txt")
    assert download.status_code == 200 and body(download) == b"bee\n"
    assert 'filename="b.txt"' in download["Content-Disposition"]
    tar = browser.get(f"/sandboxes/{sandbox.id}/files/download?path=zdir&format=tar")
    assert tar.status_code == 200 and tar["Content-Type"] == "application/x-tar"
    assert b"inner.py" in body(tar)

    missing = browser.get(f"/sandboxes/{sandbox.id}/files/download?path=nope.txt")
    assert missing.status_code == 302 and missing["Location"] == f"/sandboxes/{sandbox.id}/files?path=%2Fworkspace"
    assert "Cannot download /workspace/nope.txt: No such file" in browser.get(missing["Location"]).content.decode()
    gone = browser.get(f"/sandboxes/{sandbox.id}/files?path=/workspace/nowhere")
    assert gone.status_code == 200 and b'id="files-problem"' in gone.content and b"No such file" in gone.content
    bad = browser.get(f"/sandboxes/{sandbox.id}/files?path=a%00b")  # a NUL in any URL: refused before the view
    assert bad.status_code == 400 and b"NUL character" in bad.content


def test_upload_by_xhr_and_by_plain_form(browser, sandbox):
    upload = f"/sandboxes/{sandbox.id}/files/upload"
    body = io.BytesIO(b"hello upload\n")
    body.name = "notes.txt"
    response = browser.post(upload, {"dir": "/workspace/docs", "file": body}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json()["path"] == "/workspace/docs"
    assert names(sandbox, "/workspace/docs") == {"notes.txt"}

    one, two = io.BytesIO(b"1"), io.BytesIO(b"22")
    one.name, two.name = "one.bin", "../../etc/two.bin"  # only the base name is used
    response = browser.post(upload, {"dir": "/workspace", "file": [one, two]})
    assert response.status_code == 302 and response["Location"] == f"/sandboxes/{sandbox.id}/files?path=%2Fworkspace"
    assert {"one.bin", "two.bin", "docs"} <= names(sandbox)
    assert "Uploaded one.bin, two.bin." in browser.get(response["Location"]).content.decode()


def test_upload_bad_input_changes_nothing(browser, sandbox, settings):
    upload = f"/sandboxes/{sandbox.id}/files/upload"
    response = browser.post(upload, {"dir": "/workspace"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and response.json()["error"]["message"] == "Choose a file to upload."
    settings.VIBEBOX_UPLOAD_MAX_BYTES = 3
    big = io.BytesIO(b"too big")
    big.name = "big.txt"
    response = browser.post(upload, {"dir": "/workspace", "file": big}, HTTP_ACCEPT="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    bad_dir = io.BytesIO(b"x")
    bad_dir.name = "x.txt"
    response = browser.post(upload, {"dir": "/", "file": bad_dir}, HTTP_ACCEPT="application/json")  # root's
    assert response.status_code == 403 and response.json()["error"]["code"] == "path_not_writable"
    assert names(sandbox) == set()


def test_mkdir_and_delete(browser, sandbox):
    base = f"/sandboxes/{sandbox.id}/files"
    response = browser.post(f"{base}/mkdir", {"dir": "/workspace", "name": "new dir"})
    assert response.status_code == 302 and "new dir" in names(sandbox)
    for bad in ("", "a/b", "..", "."):
        response = browser.post(f"{base}/mkdir", {"dir": "/workspace", "name": bad}, HTTP_ACCEPT="application/json")
        assert response.status_code == 400 and "without slashes" in response.json()["error"]["message"]
    assert names(sandbox) == {"new dir"}

    put(sandbox, "/workspace/new dir/f.txt", b"f")
    put(sandbox, "/workspace/keep.txt", b"k")
    response = browser.post(f"{base}/delete", {"path": "/workspace/keep.txt"})
    assert response.status_code == 302 and response["Location"] == f"{base}?path=%2Fworkspace"
    assert names(sandbox) == {"new dir"}
    # a folder without recursive is refused, with a message, and kept
    response = browser.post(f"{base}/delete", {"path": "/workspace/new dir"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 409 and names(sandbox) == {"new dir"}
    response = browser.post(f"{base}/delete", {"path": "/workspace/new dir", "recursive": "1"})
    assert response.status_code == 302 and names(sandbox) == set()
    for bad in ({}, {"path": "/workspace"}, {"path": "/"}):
        response = browser.post(f"{base}/delete", bad, HTTP_ACCEPT="application/json")
        assert response.status_code == 400, bad
    response = browser.post(f"{base}/delete", {"path": "/workspace/absent"}, HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert browser.get(f"{base}/delete").status_code == 405


def test_text_editor(browser, sandbox):
    base = f"/sandboxes/{sandbox.id}/files/edit"
    put(sandbox, "/workspace/app.py", b"print('<hi>')\n")
    page = browser.get(f"{base}?path=app.py")
    content = page.content.decode()
    assert page.status_code == 200 and 'id="file-editor"' in content and "print(&#x27;&lt;hi&gt;&#x27;)" in content
    response = browser.post(base, {"path": "/workspace/app.py", "content": "print(2)\r\n"})
    assert response.status_code == 302 and response["Location"] == f"{base}?path=%2Fworkspace%2Fapp.py"
    download = files.file_download(sandbox=sandbox, path="/workspace/app.py")
    assert b"".join(download.chunks) == b"print(2)\n"
    assert "Saved app.py." in browser.get(response["Location"]).content.decode()

    put(sandbox, "/workspace/blob.bin", b"\x00\x01\x02")
    put(sandbox, "/workspace/big.txt", b"a" * (1024 * 1024 + 1))
    for path, message in (
        ("blob.bin", "binary file"),
        ("big.txt", "over 1 MiB"),
        ("missing.txt", "No such file"),
        ("/workspace", "is a directory"),
    ):
        page = browser.get(f"{base}?path={path}")
        assert page.status_code in (400, 404) and message in page.content.decode(), path
        assert 'id="file-editor"' not in page.content.decode()
    assert browser.get(base).status_code == 302
    response = browser.post(base, {"path": "/workspace/big2.txt", "content": "a" * (1024 * 1024 + 1)})
    assert response.status_code == 400 and b"over 1 MiB" in response.content
    assert "big2.txt" not in names(sandbox)
    assert browser.delete(f"{base}?path=app.py").status_code == 405


# ---- exec ----


def test_exec_page_snippet_command_history_and_detail(browser, sandbox):
    page = browser.get(f"/sandboxes/{sandbox.id}/exec")
    content = page.content.decode()
    assert page.status_code == 200
    for element in ('id="exec-code"', 'name="code"', 'id="exec-run"', 'id="exec-output"', 'id="exec-language"'):
        assert element in content
    assert '<option value="python"' in content and "Nothing has run in this sandbox yet." in content

    run = f"/sandboxes/{sandbox.id}/exec/run"
    partial = browser.post(run, {"code": "print('hi ' * 2)\n1 + 1", "language": "python"}, HTTP_HX_REQUEST="true")
    text = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in text
    assert "hi hi" in text and "completed" in text and "Return value: <code>2</code>" in text
    assert partial["HX-Trigger"] == "exec-history"

    full = browser.post(run, {"command": "echo out; echo err >&2; exit 3"})
    text = full.content.decode()
    assert full.status_code == 200 and "<html" in text
    assert '<span class="stdout">out\n</span>' in text and '<span class="stderr">err\n</span>' in text
    assert "exit 3" in text and "failed" in text

    executions = list(Execution.objects.filter(sandbox=sandbox).order_by("started_at"))
    assert [e.kind for e in executions] == ["execute", "exec"]
    history = browser.get(f"/sandboxes/{sandbox.id}/exec/history", HTTP_HX_REQUEST="true").content.decode()
    assert executions[0].id in history and executions[1].id in history and "ms</td>" in history
    detail = browser.get(f"/sandboxes/{sandbox.id}/exec/{executions[1].id}", HTTP_HX_REQUEST="true")
    assert detail.status_code == 200 and "echo out" in detail.content.decode()
    assert "<html" not in detail.content.decode()
    # without htmx: the tab with the execution open (works without JavaScript)
    plain = browser.get(f"/sandboxes/{sandbox.id}/exec/{executions[1].id}")
    assert plain.status_code == 302
    page = browser.get(plain["Location"]).content.decode()
    assert f'id="exec-detail-{executions[1].id}"' in page
    assert browser.get(f"/sandboxes/{sandbox.id}/exec/exe_nope", HTTP_HX_REQUEST="true").status_code == 404
    assert browser.get(f"/sandboxes/{sandbox.id}/exec?execution=exe_nope").status_code == 404


def test_exec_bad_input_runs_nothing(browser, api_client, sandbox):
    run = f"/sandboxes/{sandbox.id}/exec/run"
    for data, status, message in (
        ({"code": "  "}, 400, "Type a command or some code"),
        ({}, 400, "Type a command or some code"),
        ({"code": "print(1)", "language": "cobol"}, 400, "cobol"),
        ({"command": "true", "timeout": "soon"}, 400, "soon"),
        ({"command": "true", "timeout": "100d"}, 400, "maximum"),
    ):
        response = browser.post(run, data, HTTP_HX_REQUEST="true")
        assert response.status_code == status and message in response.content.decode(), data
        assert 'class="error"' in response.content.decode()
    assert not Execution.objects.filter(sandbox=sandbox).exists()
    assert browser.get(run).status_code == 405
    assert api_client.post(f"/api/v1/sandboxes/{sandbox.id}/stop").status_code == 200
    response = browser.post(run, {"command": "true"})
    assert response.status_code == 409 and b"start it" in response.content
    assert b"start it to run commands" in browser.get(f"/sandboxes/{sandbox.id}/exec").content
    assert not Execution.objects.filter(sandbox=sandbox).exists()


def test_exec_websocket_streams_with_the_session_cookie(browser, sandbox, outsider_browser):
    async def scenario():
        comm = session_communicator(browser, f"/ws/sandboxes/{sandbox.id}/exec")
        assert (await comm.connect(timeout=20))[0]
        await comm.send_json_to({"command": "echo hello; echo oops >&2"})
        seen, exit_message = [], None
        while exit_message is None:
            message = await comm.receive_json_from(timeout=20)
            if message["type"] == "exit":
                exit_message = message
            else:
                seen.append((message["type"], message["data"]))
        assert ("stdout", "hello\n") in seen and ("stderr", "oops\n") in seen
        assert exit_message["exitCode"] == 0
        await comm.disconnect()
        other = session_communicator(outsider_browser, f"/ws/sandboxes/{sandbox.id}/exec")
        assert await other.connect(timeout=20) == (False, 4404)

    async_to_sync(scenario)()
    assert Execution.objects.get(sandbox=sandbox).stdout == "hello\n"
    history = browser.get(f"/sandboxes/{sandbox.id}/exec/history", HTTP_HX_REQUEST="true").content.decode()
    assert "echo hello" in history


# ---- logs ----


def test_logs_page_and_stream_with_the_session_cookie(browser, sandbox):
    page = browser.get(f"/sandboxes/{sandbox.id}/logs")
    content = page.content.decode()
    assert page.status_code == 200
    for element in ('id="log-output"', 'id="log-stdout"', 'id="log-stderr"', 'id="log-events"', 'id="log-pause"'):
        assert element in content
    assert f'data-ws="/ws/sandboxes/{sandbox.id}/logs"' in content and "js/logs.js" in content

    async def scenario():
        comm = session_communicator(browser, f"/ws/sandboxes/{sandbox.id}/logs?tail=200&follow=0")
        assert (await comm.connect(timeout=20))[0]
        lines = []
        while True:
            output = await comm.receive_output(timeout=20)
            if output["type"] == "websocket.close":
                break
            lines.append(json.loads(output["text"]))
        assert any(line["type"] == "event" and line["stream"] == "vibebox" for line in lines)
        return lines

    lines = async_to_sync(scenario)()
    assert all({"type", "stream", "text", "timestamp"} <= set(line) for line in lines)
