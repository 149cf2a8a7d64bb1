"""Stateful code contexts (docs/api.md, "Code contexts"): real sandboxes, real kernels in sandboxd."""

import asyncio
import base64
import json
import threading

import pytest

from apps.audit.models import AuditEntry
from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes.images import templates_sync
from apps.sandboxes.models import CodeContext, Execution
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


@pytest.fixture
def python(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def base(sandbox_id):
    return f"/api/v1/sandboxes/{sandbox_id}/contexts"


def create(client, sandbox_id, expect=201, **body):
    response = client.post(base(sandbox_id), {"language": "python", **body}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def run(client, sandbox_id, ctx, code, expect=200, **body):
    response = client.post(f"{base(sandbox_id)}/{ctx}/execute", {"code": code, **body}, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def main_text(answer):
    mains = [r for r in answer["results"] if r["isMainResult"]]
    return mains[0]["data"]["text/plain"] if mains else None


def test_state_values_output_errors_and_rich_results(api_client, python):
    ctx = create(api_client, python)
    assert set(ctx) == {"id", "language", "cwd", "status", "executionCount", "createdAt", "lastUsedAt"}
    assert ctx["id"].startswith("ctx_") and ctx["language"] == "python" and ctx["cwd"] == "/workspace"
    assert ctx["status"] == "idle" and ctx["executionCount"] == 0
    cid = ctx["id"]

    code = "import math\nx = 41\nprint('hi')\nimport sys; print('oops', file=sys.stderr)\nx + 1"
    first = run(api_client, python, cid, code)
    assert first["stdout"] == "hi\n" and first["stderr"] == "oops\n" and first["error"] is None
    assert first["results"] == [{"data": {"text/plain": "42"}, "isMainResult": True}]
    assert first["executionCount"] == 1 and first["truncated"] is False and first["durationMs"] >= 0
    # state kept: variables and imports
    second = run(api_client, python, cid, "round(math.pi * x, 1)")
    assert main_text(second) == "128.8" and second["executionCount"] == 2
    # output of subprocesses (file descriptors 1 and 2) too
    assert run(api_client, python, cid, "import os\nos.system('echo from-shell')")["stdout"] == "from-shell\n"
    # no value: no main result
    assert run(api_client, python, cid, "y = 1")["results"] == []
    # an exception: error with its traceback, the state stays
    error = run(api_client, python, cid, "def f():\n    return 1 / 0\nf()")
    assert error["error"]["name"] == "ZeroDivisionError" and error["error"]["value"] == "division by zero"
    assert "Traceback" in error["error"]["traceback"] and "return 1 / 0" in error["error"]["traceback"]
    assert "kernel" not in error["error"]["traceback"]
    assert run(api_client, python, cid, "def g(:")["error"]["name"] == "SyntaxError"
    # rich results: _repr_*_ methods (as IPython's), display() for more than one
    rich = run(
        api_client,
        python,
        cid,
        "import base64\n"
        "class Rich:\n"
        "    def _repr_html_(self): return '<b>bold</b>'\n"
        "    def _repr_markdown_(self): return '**bold**'\n"
        "    def _repr_svg_(self): return '<svg></svg>'\n"
        f"    def _repr_png_(self): return base64.b64decode('{PNG_1PX}')\n"
        "    def _repr_json_(self): return {'a': [1, 2]}\n"
        "    def __repr__(self): return 'Rich()'\n"
        "display(Rich(), 'second')\n"
        "Rich()",
    )
    assert [r["isMainResult"] for r in rich["results"]] == [False, False, True]
    data = rich["results"][2]["data"]
    assert data == {
        "text/plain": "Rich()",
        "text/html": "<b>bold</b>",
        "text/markdown": "**bold**",
        "image/svg+xml": "<svg></svg>",
        "image/png": PNG_1PX,
        "application/json": {"a": [1, 2]},
    }
    assert rich["results"][1]["data"] == {"text/plain": "'second'"}
    # top-level await
    assert main_text(run(api_client, python, cid, "import asyncio\nawait asyncio.sleep(0.01)\nx")) == "41"

    # recorded like execute, audited
    execution = Execution.objects.get(pk=first["executionId"])
    assert (execution.kind, execution.language, execution.status, execution.stdout) == (
        "execute",
        "python",
        "completed",
        "hi\n",
    )
    assert execution.return_value == "42"
    assert Execution.objects.get(pk=error["executionId"]).status == "failed"
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"context.created", "code.executed"} <= actions

    listed = api_client.get(base(python)).json()["contexts"]
    assert [c["id"] for c in listed] == [cid] and listed[0]["executionCount"] == 8
    assert api_client.get(f"{base(python)}/{cid}").json()["status"] == "idle"


def test_interrupt_keeps_state_restart_loses_it_delete(api_client, python):
    cid = create(api_client, python)["id"]
    run(api_client, python, cid, "kept = 'yes'")
    answers = {}
    loop = "n = 0\nopen('/tmp/looping', 'w').close()\nwhile True:\n    n += 1"

    def long_run():
        answers["loop"] = run(api_client, python, cid, loop, timeout="60s")

    thread = threading.Thread(target=long_run)
    thread.start()
    # interrupt once the loop runs (it marks that with a file); the context says busy meanwhile
    wait_for(
        lambda: (
            api_client.post(
                f"/api/v1/sandboxes/{python}/exec", {"command": "test -f /tmp/looping"}, format="json"
            ).json()["exitCode"]
            == 0
        ),
        timeout=30,
    )
    assert api_client.get(f"{base(python)}/{cid}").json()["status"] == "busy"
    interrupted = api_client.post(f"{base(python)}/{cid}/interrupt")
    assert interrupted.status_code == 200, interrupted.content
    thread.join(30)
    assert answers["loop"]["error"]["name"] == "KeyboardInterrupt"
    assert main_text(run(api_client, python, cid, "kept")) == "'yes'"
    assert int(main_text(run(api_client, python, cid, "n"))) >= 0  # the loop's variable survived (a NameError fails)

    # a timeout interrupts too, the state stays
    answer = run(api_client, python, cid, "while True: pass", timeout=1)
    assert answer["error"]["name"] == "TimeoutError"
    # so does a value whose __repr__ never ends; one whose __repr__ fails still shows its other forms
    hang = run(api_client, python, cid, "class H:\n    def __repr__(self):\n        while True: pass\nH()", timeout=1)
    assert hang["error"]["name"] == "TimeoutError" and hang["results"] == []
    broken = run(
        api_client,
        python,
        cid,
        "class B:\n    def __repr__(self): raise ValueError('no')\n    def _repr_html_(self): return '<i>b</i>'\nB()",
    )
    assert broken["results"][0]["data"] == {
        "text/plain": "<unrepresentable B: ValueError('no')>",
        "text/html": "<i>b</i>",
    }
    assert main_text(run(api_client, python, cid, "kept")) == "'yes'"

    restarted = api_client.post(f"{base(python)}/{cid}/restart")
    assert restarted.status_code == 200 and restarted.json()["status"] == "idle"
    assert restarted.json()["executionCount"] == 0
    assert run(api_client, python, cid, "kept")["error"]["name"] == "NameError"

    # a kernel that dies: dead, execute 409, restart brings it back
    died = run(api_client, python, cid, "import os\nos._exit(3)")
    assert died["error"]["name"] == "DeadKernelError"
    assert api_client.get(f"{base(python)}/{cid}").json()["status"] == "dead"
    refused = api_client.post(f"{base(python)}/{cid}/execute", {"code": "1"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "context_dead"
    api_client.post(f"{base(python)}/{cid}/restart")
    assert main_text(run(api_client, python, cid, "1 + 1")) == "2"

    assert api_client.delete(f"{base(python)}/{cid}").status_code == 204
    assert api_client.get(f"{base(python)}/{cid}").status_code == 404
    assert not CodeContext.objects.filter(pk=cid).exists()
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"context.interrupted", "context.restarted", "context.deleted"} <= actions


def test_flooding_output_and_hostile_answers_are_capped(api_client, python, settings):
    settings.VIBEBOX_CONTEXT_OUTPUT_LIMIT = 100_000
    settings.VIBEBOX_CONTEXT_MAX_RESULTS = 5
    cid = create(api_client, python)["id"]
    flood = run(api_client, python, cid, "for i in range(200000):\n    print('x' * 100)\n'end'")
    assert flood["truncated"] is True and len(flood["stdout"]) == 100_000
    assert main_text(flood) == "'end'"
    many = run(api_client, python, cid, "for i in range(50):\n    display(i)")
    assert len(many["results"]) == 5 and many["truncated"] is True
    # code that writes to the kernel's own connection: garbage, a huge line, forged events
    hostile = run(
        api_client,
        python,
        cid,
        "import sys\n"
        "conn = sys.stdout.kernel.current.conn\n"
        'conn.sendall(b\'not json\\n[1, 2]\\n\' + b\'{"type": "stdout", "data": 7}\\n\')\n'
        'conn.sendall(b\'{"type": "result", "data": {"evil/type": "x"}}\\n\')\n'
        'conn.sendall(b\'{"type": "stdout", "data": "\' + b\'z\' * (60 << 20) + b\'"}\\n\')\n'
        'conn.sendall(b\'{"type": "error", "name": 1}\\n\')\n'
        "'after'",
        timeout="60s",
    )
    assert main_text(hostile) == "'after'", (hostile["error"], hostile["truncated"])
    assert hostile["truncated"] is True and hostile["error"] is None
    assert "z" * 100 not in hostile["stdout"]
    assert main_text(run(api_client, python, cid, "1")) == "1"
    # a sandbox holds so many contexts: the next is refused with the streams' error shape
    settings.VIBEBOX_CONTEXT_MAX_PER_SANDBOX = 1
    refused = create(api_client, python, expect=429)["error"]
    assert refused["code"] == "too_many_streams" and refused["details"] == {
        "kind": "contexts",
        "limit": 1,
        "current": 1,
    }


def test_javascript_context(api_client, create_sandbox):
    node = create_sandbox(template="node-20")["id"]
    ctx = create(api_client, node, language="javascript")
    cid = ctx["id"]
    first = run(api_client, node, cid, "let n = 20; const o = {a: [1, 2]}; console.log('hello', o); n + 1")
    assert first["stdout"] == "hello { a: [ 1, 2 ] }\n" and main_text(first) == "21"
    assert main_text(run(api_client, node, cid, "n * 2")) == "40"
    assert main_text(run(api_client, node, cid, "require('path').join('a', 'b')")) == "'a/b'"
    error = run(api_client, node, cid, "function f() { throw new TypeError('bad') }\nf()")
    assert error["error"]["name"] == "TypeError" and error["error"]["value"] == "bad"
    assert "<cell-" in error["error"]["traceback"]
    assert run(api_client, node, cid, "console.error('e'); undefined")["stderr"] == "e\n"
    assert main_text(run(api_client, node, cid, "await new Promise(r => setTimeout(r, 10)); return n")) == "20"
    assert main_text(run(api_client, node, cid, "const v = await Promise.resolve(5);\nv * n")) == "100"
    assert run(api_client, node, cid, "while (true) {}", timeout=1)["error"]["name"] == "TimeoutError"
    assert main_text(run(api_client, node, cid, "n")) == "20"
    # python is not on a node template
    refused = api_client.post(base(node), {"language": "python"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "unsupported_language"


def test_access_and_bad_input(api_client, outsider_client, client_for, owner, python):
    cid = create(api_client, python)["id"]
    reader = client_for(owner, [SANDBOXES_READ])
    assert reader.get(base(python)).status_code == 200 and reader.get(f"{base(python)}/{cid}").status_code == 200
    for path in (base(python), f"{base(python)}/{cid}/execute", f"{base(python)}/{cid}/restart"):
        response = reader.post(path, {"language": "python", "code": "1"}, format="json")
        assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope", path
    anonymous = type(api_client)()
    assert anonymous.get(base(python)).status_code == 401
    assert anonymous.post(f"{base(python)}/{cid}/execute", {"code": "1"}, format="json").status_code == 401
    for method, path, body in [
        ("get", base(python), None),
        ("post", base(python), {"language": "python"}),
        ("get", f"{base(python)}/{cid}", None),
        ("post", f"{base(python)}/{cid}/execute", {"code": "1"}),
        ("post", f"{base(python)}/{cid}/interrupt", None),
        ("post", f"{base(python)}/{cid}/restart", None),
        ("delete", f"{base(python)}/{cid}", None),
    ]:
        response = getattr(outsider_client, method)(path, body, format="json")
        assert response.status_code == 404, (method, path, response.content)
    assert api_client.get(f"{base(python)}/ctx_nope").json()["error"]["code"] == "context_not_found"
    for body, code in [
        ({"language": "cobol"}, "validation_error"),
        ({}, "validation_error"),
        ({"language": "python", "extra": 1}, "unknown_field"),
    ]:
        response = api_client.post(base(python), body, format="json")
        assert response.status_code == 400 and response.json()["error"]["code"] == code, response.content
    for body in [{}, {"code": ""}, {"code": "1", "timeout": "soon"}, {"code": 5}]:
        response = api_client.post(f"{base(python)}/{cid}/execute", body, format="json")
        assert response.status_code == 400, (body, response.content)
    for cwd in ("/nope", "sub", "/etc/hostname"):
        response = api_client.post(base(python), {"language": "python", "cwd": cwd}, format="json")
        assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "cwd", response.content
    assert CodeContext.objects.filter(sandbox_id=python).count() == 1
    assert create(api_client, python, cwd="/tmp")["cwd"] == "/tmp"
    assert CodeContext.objects.filter(sandbox_id=python).count() == 2
    assert api_client.get(f"{base(python)}/{cid}").json()["executionCount"] == 0


def communicator(path, secret):
    return Communicator(application, path, headers=[(b"authorization", f"Bearer {secret}".encode())])


def test_websocket_streams_a_context_execute(api_client, api_key, python):
    cid = create(api_client, python)["id"]
    run(api_client, python, cid, "base = 10")

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{python}/exec", api_key[1])
        connected, _ = await comm.connect()
        assert connected
        code = "import time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('two')\ndisplay('shown')\nbase * 2"
        await comm.send_json_to({"type": "context.execute", "context": cid, "code": code, "timeout": "30s"})
        messages = []
        while True:
            output = await comm.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                break
            messages.append(json.loads(output["text"]))
        await comm.disconnect()
        return messages

    messages = asyncio.run(scenario())
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "stdout" and messages[0]["data"] == "one\n"
    assert {"type": "stdout", "data": "two\n"} in messages
    assert {"type": "result", "data": {"text/plain": "'shown'"}, "isMainResult": False} in messages
    assert {"type": "result", "data": {"text/plain": "20"}, "isMainResult": True} in messages
    assert kinds[-1] == "context.done" and messages[-1]["executionCount"] == 2
    assert isinstance(messages[-1]["durationMs"], int)

    async def errors():
        comm = communicator(f"/ws/sandboxes/{python}/exec", api_key[1])
        await comm.connect()
        await comm.send_json_to({"type": "context.execute", "context": cid, "code": "1/0"})
        raised = []
        while True:
            output = await comm.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                break
            raised.append(json.loads(output["text"]))
        comm2 = communicator(f"/ws/sandboxes/{python}/exec", api_key[1])
        await comm2.connect()
        await comm2.send_json_to({"type": "context.execute", "context": "ctx_missing", "code": "1"})
        missing = json.loads((await comm2.receive_output(timeout=30))["text"])
        await comm.disconnect()
        await comm2.disconnect()
        return raised, missing

    raised, missing = asyncio.run(errors())
    assert raised[0]["type"] == "error" and raised[0]["name"] == "ZeroDivisionError" and raised[0]["traceback"]
    assert raised[-1]["type"] == "context.done"
    assert missing["type"] == "error" and missing["error"]["code"] == "context_not_found"


def test_png_results_decode(api_client, python):
    cid = create(api_client, python)["id"]
    answer = run(
        api_client,
        python,
        cid,
        f"import base64\nclass P:\n    def _repr_png_(self): return base64.b64decode('{PNG_1PX}')\nP()",
    )
    png = base64.b64decode(answer["results"][0]["data"]["image/png"])
    assert png.startswith(b"\x89PNG")


@pytest.fixture
def data_science(templates, create_sandbox):
    """A sandbox of python-data (NumPy, pandas, matplotlib): its image is built by `make
    images-all`, or here when missing."""
    templates_sync(build=True, only=["python-data"])
    return create_sandbox(template="python-data")["id"]


def pngs(answer):
    return [base64.b64decode(r["data"]["image/png"]) for r in answer["results"] if "image/png" in r["data"]]


def test_data_science_run_plots_and_tables(api_client, data_science):
    cid = create(api_client, data_science)["id"]
    plot = run(api_client, data_science, cid, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()")
    assert plot["error"] is None and plot["stderr"] == "", plot
    (png,) = pngs(plot)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    assert not [r for r in plot["results"] if r["isMainResult"]]
    assert main_text(run(api_client, data_science, cid, "len(plt.get_fignums())")) == "0"  # shown: closed
    # again: plt.show() shows at once, in order with the output around it
    again = run(api_client, data_science, cid, "plt.plot([3, 2, 1])\nplt.show()\nprint('after')\nplt.get_fignums()")
    assert len(pngs(again)) == 1 and again["stdout"] == "after\n" and main_text(again) == "[]"
    # a Figure as the last expression is its PNG, once
    figure = run(api_client, data_science, cid, "fig, ax = plt.subplots()\nax.bar(['a', 'b'], [1, 2])\nfig")
    assert len(pngs(figure)) == 1 and figure["results"][-1]["isMainResult"] is True
    table = run(
        api_client, data_science, cid, "import pandas as pd\ndf = pd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})\ndf"
    )
    (main,) = table["results"]
    assert main["isMainResult"] and "<table" in main["data"]["text/html"] and "a  b" in main["data"]["text/plain"]
    assert main_text(run(api_client, data_science, cid, "int(df['a'].sum())")) == "3"


def test_websocket_interrupt_and_a_client_that_leaves(api_client, api_key, python):
    cid = create(api_client, python)["id"]

    async def scenario():
        comm = communicator(f"/ws/sandboxes/{python}/exec", api_key[1])
        await comm.connect()
        code = "count = 0\nprint('looping', flush=True)\nwhile True:\n    count += 1"
        await comm.send_json_to({"type": "context.execute", "context": cid, "code": code, "timeout": "60s"})
        first = json.loads((await comm.receive_output(timeout=30))["text"])
        assert first == {"type": "stdout", "data": "looping\n"}
        await comm.send_json_to({"type": "interrupt"})
        messages = []
        while True:
            output = await comm.receive_output(timeout=30)
            if output["type"] == "websocket.close":
                break
            messages.append(json.loads(output["text"]))
        await comm.disconnect()
        return messages

    messages = asyncio.run(scenario())
    assert messages[0]["type"] == "error" and messages[0]["name"] == "KeyboardInterrupt", messages
    assert messages[-1]["type"] == "context.done"
    assert int(main_text(run(api_client, python, cid, "count"))) >= 0  # kept

    async def leave():
        comm = communicator(f"/ws/sandboxes/{python}/exec", api_key[1])
        await comm.connect()
        code = "import time\nprint('started', flush=True)\ntime.sleep(1)\nleft = 'ran on'"
        await comm.send_json_to({"type": "context.execute", "context": cid, "code": code})
        assert json.loads((await comm.receive_output(timeout=30))["text"])["data"] == "started\n"
        await comm.disconnect()

    asyncio.run(leave())
    # the code ran on after its client left (this execute waits behind it)
    assert main_text(run(api_client, python, cid, "left")) == "'ran on'"


def test_a_stopped_sandbox_leaves_its_contexts_dead_until_restarted(api_client, python):
    cid = create(api_client, python)["id"]
    run(api_client, python, cid, "v = 1")
    assert api_client.post(f"/api/v1/sandboxes/{python}/stop").status_code == 200
    assert api_client.get(f"{base(python)}/{cid}").json()["status"] == "dead"
    assert api_client.post(f"/api/v1/sandboxes/{python}/start").status_code == 200
    assert [c["status"] for c in api_client.get(base(python)).json()["contexts"]] == ["dead"]
    refused = api_client.post(f"{base(python)}/{cid}/execute", {"code": "v"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "context_dead"
    assert api_client.post(f"{base(python)}/{cid}/interrupt").json()["error"]["code"] == "context_dead"
    assert api_client.post(f"{base(python)}/{cid}/restart").json()["status"] == "idle"
    assert run(api_client, python, cid, "v")["error"]["name"] == "NameError"
    assert main_text(run(api_client, python, cid, "v = 2\nv")) == "2"


def test_text_beyond_ascii_and_the_total_of_results(api_client, python, settings):
    settings.VIBEBOX_CONTEXT_RESULTS_LIMIT = 50_000
    cid = create(api_client, python)["id"]
    answer = run(api_client, python, cid, "print('héllo ✓ 😀')\n'ünï'")
    assert answer["stdout"] == "héllo ✓ 😀\n" and main_text(answer) == "'ünï'"
    # three results of 20 000 characters: the third is over the total
    capped = run(api_client, python, cid, "for i in range(3):\n    display('x' * 20_000)")
    assert len(capped["results"]) == 2 and capped["truncated"] is True


def test_modules_written_after_the_start_import_from_the_working_directory(api_client, python):
    cid = create(api_client, python)["id"]
    assert main_text(run(api_client, python, cid, "import os\nos.getcwd()")) == "'/workspace'"
    api_client.post(
        f"/api/v1/sandboxes/{python}/exec", {"command": "echo 'ANSWER = 42' > /workspace/vbxdemo.py"}, format="json"
    )
    assert main_text(run(api_client, python, cid, "import vbxdemo\nvbxdemo.ANSWER")) == "42"


def test_a_paused_sandbox_keeps_its_contexts_state(api_client, python):
    cid = create(api_client, python)["id"]
    run(api_client, python, cid, "kept = [1, 2]")
    assert api_client.post(f"/api/v1/sandboxes/{python}/pause").status_code == 200
    assert api_client.get(f"{base(python)}/{cid}").json()["status"] == "idle"  # frozen: last known
    refused = api_client.post(f"{base(python)}/{cid}/execute", {"code": "kept"}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "sandbox_paused"
    refused = api_client.delete(f"{base(python)}/{cid}")  # its kernel would outlive it
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "sandbox_paused"
    assert api_client.post(f"/api/v1/sandboxes/{python}/resume").status_code == 200
    assert main_text(run(api_client, python, cid, "kept")) == "[1, 2]"
