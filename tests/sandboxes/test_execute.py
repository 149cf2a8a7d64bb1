"""Code execution: each language, return values, `auto`, against the real engine."""

import pytest

SPEC_JS = """
  const fs = require('fs');
  const files = fs.readdirSync('.');
  console.log('Files:', files);
  return files;
"""


@pytest.fixture
def node(create_sandbox):
    return create_sandbox(template="node-20")["id"]


@pytest.fixture
def python(create_sandbox):
    return create_sandbox(template="python-3")["id"]


def execute(api_client, sandbox_id, expect=200, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/execute", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def test_product_spec_javascript_example(api_client, node):
    api_client.post(f"/api/v1/sandboxes/{node}/exec", {"command": "mkdir src && echo {} > package.json"}, format="json")
    body = execute(api_client, node, code=SPEC_JS)
    assert body["language"] == "javascript" and body["status"] == "completed" and body["exitCode"] == 0
    assert body["stdout"] == "Files: [ 'package.json', 'src' ]\n"
    assert body["returnValue"] == ["package.json", "src"]
    assert set(body) >= {"executionId", "stdout", "stderr", "exitCode", "duration", "status", "returnValue"}


def test_auto_runs_a_command_line_as_shell(api_client, node):
    body = execute(api_client, node, code="npm --version")
    assert body["language"] == "shell" and body["stdout"].strip().split(".")[0].isdigit()
    assert execute(api_client, node, code="cd /tmp && pwd")["stdout"] == "/tmp\n"
    # a word that is not on PATH is code of the template's language
    body = execute(api_client, node, code="missingcommand")
    assert body["language"] == "javascript" and "ReferenceError" in body["stderr"]


def test_javascript_errors_and_values(api_client, node):
    body = execute(api_client, node, code="throw new Error('boom')")
    assert body["status"] == "failed" and body["exitCode"] == 1 and "boom" in body["stderr"]
    assert execute(api_client, node, code="return {a: 1, b: [true, null]}")["returnValue"] == {
        "a": 1,
        "b": [True, None],
    }
    assert execute(api_client, node, code="console.log('no value')")["returnValue"] is None
    body = execute(api_client, node, code="await new Promise(r => setTimeout(r, 10)); return 42", language="js")
    assert body["returnValue"] == 42
    body = execute(api_client, node, code="import os from 'node:os';\nconsole.log(typeof os.cpus)")
    assert body["stdout"] == "function\n" and body["returnValue"] is None


def test_typescript(api_client, node):
    code = "interface P { x: number }\nconst p: P = { x: 2 };\nconsole.log(p.x * 21);\nreturn p.x as number;"
    body = execute(api_client, node, code=code, language="typescript")
    assert body["stdout"] == "42\n" and body["returnValue"] == 2 and body["status"] == "completed", body
    assert body["phase"] == "run"
    # esbuild cannot strip it: the compile phase, its message on stderr
    body = execute(api_client, node, code="const x: = 1;", language="typescript")
    assert (body["phase"], body["status"], body["stdout"]) == ("compile", "failed", ""), body
    assert "Unexpected" in body["stderr"] and body["exitCode"] != 0
    # auto: TypeScript's own syntax on a JavaScript template
    body = execute(api_client, node, code="const n: number = 2;\nreturn n * 21")
    assert (body["language"], body["returnValue"]) == ("typescript", 42), body


def test_python_last_expression_is_the_return_value(api_client, python):
    body = execute(api_client, python, code="import math\nprint('hi')\n{'pi': round(math.pi, 2), 'n': [1, 2]}")
    assert body["language"] == "python" and body["stdout"] == "hi\n"
    assert body["returnValue"] == {"pi": 3.14, "n": [1, 2]}
    assert execute(api_client, python, code="object()")["returnValue"].startswith("<object object")
    assert execute(api_client, python, code="x = 1")["returnValue"] is None
    body = execute(api_client, python, code="raise ValueError('bad')")
    assert body["status"] == "failed" and "ValueError: bad" in body["stderr"]


def test_shell_language_and_cleanup(api_client, python):
    body = execute(api_client, python, code="echo $0 >/dev/null; for i in 1 2; do echo $i; done", language="shell")
    assert body["stdout"] == "1\n2\n"
    left = api_client.post(
        f"/api/v1/sandboxes/{python}/exec", {"command": "ls /tmp | grep -c vbx || true"}, format="json"
    )
    assert left.json()["stdout"].strip() == "0"


def test_timeout_and_env(api_client, python):
    # 5 s: the interpreter must start and print first, which took over 1 s on a loaded machine
    body = execute(api_client, python, code="import time\nprint('a', flush=True)\ntime.sleep(60)", timeout=5)
    assert body["status"] == "timeout" and body["stdout"] == "a\n"
    killed = body["executionId"]
    # the kill left no shell to remove the code file: the next execution removes it
    assert tmp_files(api_client, python) == [f"vbx-{killed}.py"]
    body = execute(api_client, python, code="import os\nos.environ['V']", env={"V": "from-request"})
    assert body["returnValue"] == "from-request"
    assert tmp_files(api_client, python) == []


def tmp_files(api_client, sandbox_id) -> list[str]:
    response = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "ls -a /tmp | grep vbx- || true"}, format="json"
    )
    return response.json()["stdout"].split()


def test_unsupported_language(api_client, python):
    body = execute(api_client, python, expect=400, code="console.log(1)", language="javascript")
    assert body["error"]["code"] == "unsupported_language"
    assert body["error"]["details"]["supported"] == ["python", "shell"]
