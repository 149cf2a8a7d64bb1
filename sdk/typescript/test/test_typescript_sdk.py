"""Runs the TypeScript SDK's suites (Node's test runner) against a live VibeBox server.

`make test` gets here through pytest: this module builds the SDK and its tests with `tsc`, starts a
server on loopback (bench/common.live_server: its own data directory and instance label, its
model gateway forwarding to the local Anthropic stub, sandboxes joining a git server's network),
and runs each `test/*.test.ts` suite with `node --test`. It also checks that the SDK's generated
types match the server's OpenAPI document, and that `npm pack` makes a package that installs in
an empty folder and runs the README's three-line example.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

HERE = Path(__file__).resolve().parent
PKG = HERE.parent
ROOT = PKG.parents[1]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from common import LiveServer, live_server  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.marketplace.catalog import built_in_templates  # noqa: E402
from apps.sandboxes.runtime import get_driver  # noqa: E402
from tests import anthropic_stub, sessions  # noqa: E402
from tests.anthropic_stub import text, tool_use  # noqa: E402
from tests.gitservers import start_http_git_server  # noqa: E402

# A label of this session's own, claimed like a test session's (tests/sessions.py): a run killed
# half-way leaves its server's sandboxes and its git server to the next session's sweep.
INSTANCE = sessions.new_label("ts")
GIT_NETWORK = f"vibebox-{INSTANCE}-git"
FIXTURE_LABELS = {"vibebox.test-fixture": "tssdk-git", "vibebox.test-instance": INSTANCE}
# Suites that need no server: code that runs on the receiving side (verifyWebhook). The driver runs
# them without starting one.
OFFLINE = {"webhooks"}
# Suites that need template images `make setup` does not build (`make test-templates` does): run
# only under the `templates` marker (pytest -m templates), so plain `make test` does not need them.
TEMPLATE_SUITES = {"templates"}
SUITES = sorted(
    name
    for path in HERE.glob("*.test.ts")
    if (name := path.name.removesuffix(".test.ts")) not in OFFLINE | TEMPLATE_SUITES
)
# Webhooks go to the suites' receivers on loopback over http, and are sent when a suite runs the
# sender through manage.py (test/webhook-endpoints.test.ts): no Celery worker serves this server,
# and a queued task would reach whichever worker listens on the shared broker.
WEBHOOKS = {
    "VIBEBOX_WEBHOOK_ALLOW_HTTP": "1",
    "VIBEBOX_WEBHOOK_ALLOW_PRIVATE": "1",
    "VIBEBOX_WEBHOOK_DISPATCH": "0",
    "VIBEBOX_WEBHOOK_RETRY_SCHEDULE": "0s,0s",
}
CA_CERTS = "/etc/ssl/certs/ca-certificates.crt"
NODE = shutil.which("node") or "node"


def node_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    if Path(CA_CERTS).exists():
        env.setdefault("NODE_EXTRA_CA_CERTS", CA_CERTS)
    return env


def run(command: list[str], *, cwd: Path = PKG, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=node_env(**env), capture_output=True, text=True, timeout=timeout)


def check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args} failed:\n{result.stdout[-20000:]}\n{result.stderr[-20000:]}"
    return result.stdout


@pytest.fixture(scope="session")
def built() -> None:
    """The SDK and the suites compiled (strict) into build/, with the node_modules that setup
    (`make typescript`: scripts/typescript-setup.sh) installed: a test run downloads nothing."""
    for stamp, source in ((".package-lock.json", "package-lock.json"), (".vibebox-pack-deps", "package.json")):
        installed = PKG / "node_modules" / stamp
        assert installed.exists() and installed.stat().st_mtime >= (PKG / source).stat().st_mtime, (
            f"the TypeScript SDK's dependencies are missing or older than {source}: run `make typescript`"
        )
    shutil.rmtree(PKG / "build", ignore_errors=True)
    check(run([NODE, "node_modules/typescript/bin/tsc", "-p", "tsconfig.test.json"]))


@pytest.fixture(scope="session")
def claimed() -> Iterator[str]:
    """INSTANCE claimed for the session; what dead sessions left is swept first."""
    with contextlib.closing(docker.from_env()) as client, sessions.claimed(client, INSTANCE):
        sessions.sweep_dead(client, data_dir=settings.DATA_DIR, remove_network=get_driver().remove_network)
        yield INSTANCE


@pytest.fixture(scope="session")
def git_server(claimed: str) -> Iterator[dict[str, str]]:
    """A smart-HTTP git server (basic auth) on a Docker network the test server's sandboxes join."""
    client = docker.from_env()
    network = client.networks.create(GIT_NETWORK, driver="bridge", labels=FIXTURE_LABELS)
    python_image = next(spec.image for spec in built_in_templates() if spec.name == "python-3.13")
    user, token = "agent", secrets.token_urlsafe(16)
    name = f"vibebox-{INSTANCE}-git-http"
    container = start_http_git_server(
        client, python_image, name=name, network=GIT_NETWORK, labels=FIXTURE_LABELS, user=user, token=token
    )
    try:
        yield {
            "VIBEBOX_TEST_GIT_URL": "http://git-http:8080/project.git",
            "VIBEBOX_TEST_GIT_USER": user,
            "VIBEBOX_TEST_GIT_TOKEN": token,
        }
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
        network.reload()
        for attached in network.containers:  # a sandbox left behind would keep the network
            with contextlib.suppress(docker.errors.APIError):
                network.disconnect(attached, force=True)
        with contextlib.suppress(docker.errors.APIError):
            network.remove()
        client.close()


@pytest.fixture(scope="session")
def anthropic() -> Iterator[anthropic_stub.Stub]:
    """The Anthropic API stub the server's model gateway forwards to, scripted for the Claude suite."""
    stub, http = anthropic_stub.start()
    stub.script("TS-WRITE", [tool_use("Write", file_path="ts.txt", content="from typescript\n")], [text("wrote it")])
    stub.script(  # test/claude-agent.test.ts
        "TS-AGENT-TASK",
        [tool_use("run_command", command="echo from-ts > /workspace/out.txt && uname -s")],
        [tool_use("read_file", path="out.txt")],
        [text("done: from-ts")],
    )
    stub.script("TS-ANALYZE", [tool_use("run_command", command="cat /repo/package.json")], [text("analyzed")])
    yield stub
    http.shutdown()


@pytest.fixture(scope="session")
def server(anthropic: anthropic_stub.Stub, git_server: dict[str, str], claimed: str) -> Iterator[LiveServer]:
    engine = docker.from_env()
    gateway = {"VIBEBOX_ANTHROPIC_UPSTREAM": anthropic.url, "VIBEBOX_ANTHROPIC_API_KEY": "sk-ant-ts-" + "t" * 24}
    with live_server(
        INSTANCE, gateway=True, VIBEBOX_POOL_ENABLED="1", VIBEBOX_EXTRA_NETWORKS=GIT_NETWORK, **gateway, **WEBHOOKS
    ) as running:
        yield running
        running.manage("warmpools", "--drain")
        leftovers = [
            c.name for c in engine.containers.list(all=True, filters={"label": f"vibebox.instance={INSTANCE}"})
        ]
    engine.close()
    assert not leftovers, f"the TypeScript SDK's tests left containers behind: {leftovers}"


@pytest.fixture(scope="session")
def suite_env(server: LiveServer, git_server: dict[str, str]) -> dict[str, str]:
    return {
        "VIBEBOX_API_URL": server.url,
        "VIBEBOX_API_KEY": server.key,
        "VIBEBOX_TEST_OUTSIDER_KEY": server.create_key("ts-outsider"),
        "VIBEBOX_TEST_MANAGE": json.dumps(manage_spec(server)),
        **git_server,
    }


def manage_spec(server: LiveServer) -> dict:
    """How a suite runs `manage.py` against the live server's database and data directory (test/
    helpers.ts `manage()`): the server's environment, as what differs from this process's."""
    return {
        "command": [sys.executable, str(ROOT / "manage.py")],
        "cwd": str(ROOT),
        "env": {name: value for name, value in server.env.items() if os.environ.get(name) != value},
        "unset": [name for name in os.environ if name not in server.env],
    }


SUMMARY = re.compile(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", re.M)
# A test or suite that did not run: Node 20 does not count a skipped suite's tests at all.
DIRECTIVE = re.compile(r"^\s*(?:not )?ok \d+ - (.*?) # (SKIP|TODO)\b.*$", re.M)


def node_test(path: str, *, cwd: Path = PKG, **env: str) -> str:
    """`node --test` of one file; answers its spec report. Its TAP report, which marks each skipped
    or todo test and suite, must show some tests, all passed, none failed, cancelled, skipped or todo."""
    with tempfile.NamedTemporaryFile("r", suffix=".tap") as tap:
        command = [
            NODE,
            "--test",
            "--test-timeout=180000",
            "--test-reporter=spec",
            "--test-reporter-destination=stdout",
        ]
        command += ["--test-reporter=tap", f"--test-reporter-destination={tap.name}", path]
        output = check(run(command, cwd=cwd, **env))
        report = tap.read()
    counts = {name: int(number) for name, number in SUMMARY.findall(report)}
    assert {"tests", "pass", "fail", "cancelled", "skipped", "todo"} <= counts.keys(), f"{output}\n{report}"
    not_run = [f"{name} ({kind})" for name, kind in DIRECTIVE.findall(report)]
    bad = {name: counts[name] for name in ("fail", "cancelled", "skipped", "todo") if counts[name]}
    assert not not_run and not bad, f"did not run: {not_run} {bad}\n{output[-20000:]}"
    assert counts["tests"] > 0 and counts["pass"] == counts["tests"], f"{counts}\n{output[-20000:]}"
    return output


def destroy_left(server: LiveServer, keys: list[str]) -> list[str]:
    """Destroys the sandboxes these keys' owners still have (through the API); answers their ids."""
    left = []
    for key in keys:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as client:
            listed = client.get("/api/v1/sandboxes", params={"limit": 200})
            for sandbox in listed.json().get("results", []) if listed.status_code == 200 else []:
                left.append(sandbox["id"])
                client.delete(f"/api/v1/sandboxes/{sandbox['id']}")
    return left


@pytest.mark.parametrize("suite", SUITES)
def test_suite(suite: str, built: None, suite_env: dict[str, str], server: LiveServer) -> None:
    """One `test/<suite>.test.ts` file: every test in it runs and passes against the live server."""
    try:
        node_test(f"build/test/{suite}.test.js", **suite_env)
    except BaseException:
        # A suite that failed or was cut short (pytest-timeout) leaves what it made: gone, so the
        # next suites on this server start within the owner's quota instead of failing after it.
        # A suite that passed keeps its leftovers for the session's check (`server`).
        destroy_left(server, [suite_env["VIBEBOX_API_KEY"], suite_env["VIBEBOX_TEST_OUTSIDER_KEY"]])
        raise


@pytest.mark.templates
@pytest.mark.parametrize("suite", sorted(TEMPLATE_SUITES))
def test_template_suite(suite: str, built: None, suite_env: dict[str, str]) -> None:
    """A suite that uses templates beyond node-20 and python-3 (python-3.11...), built by
    `make test-templates`: every test in it runs and passes against the live server."""
    node_test(f"build/test/{suite}.test.js", **suite_env)


@pytest.mark.parametrize("suite", sorted(OFFLINE))
def test_offline_suite(suite: str, built: None) -> None:
    """A `test/<suite>.test.ts` file that needs no server: every test in it runs and passes."""
    node_test(f"build/test/{suite}.test.js")


def test_a_skipped_or_todo_test_fails_the_driver(tmp_path: Path) -> None:
    """What node --test counts as a success (exit 0) but this driver does not: a suite skipped as
    the git suite skips itself without VIBEBOX_TEST_GIT_URL, a skipped test, a todo."""
    suite = tmp_path / "suite.test.mjs"
    for marker in (
        "describe('git', { skip: 'no git server' }",
        "test('one', { skip: true }",
        "test('two', { todo: true }",
    ):
        suite.write_text(
            "import { describe, test } from 'node:test';\n"
            "test('runs', () => {});\n"
            f"{marker}, () => {{ test('inner', () => {{}}); }});\n"
        )
        with pytest.raises(AssertionError, match=r"did not run: \['(git|one|two) \((SKIP|TODO)\)'\]"):
            node_test(str(suite), cwd=tmp_path)
    suite.write_text("import { test } from 'node:test';\ntest('runs', () => {});\n")
    assert "runs" in node_test(str(suite), cwd=tmp_path)


def test_types_match_the_servers_openapi_document(built: None) -> None:
    """src/generated/openapi.ts is what openapi-typescript makes of the server's schema today."""
    check(run([NODE, "scripts/generate-types.mjs", "--check"], VIBEBOX_PYTHON=sys.executable))


@pytest.fixture(scope="session")
def packed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """`npm pack` once for the session: its prepack script builds dist/ (tsc -p tsconfig.json), and
    the tarball is what `npm publish` would upload. Answers the tarball's path and npm's report of it;
    dist/ is left built for the tests that use the package without installing it."""
    destination = tmp_path_factory.mktemp("packed")
    report = json.loads(check(run(["npm", "pack", "--json", "--pack-destination", str(destination)])))[0]
    return destination / report["filename"], report


@pytest.mark.timeout(900)  # pack, install, type-check, then nine programs that each make sandboxes
def test_npm_pack_installs_and_runs_the_three_line_example(
    built: None, packed: tuple[Path, dict], suite_env: dict[str, str], tmp_path: Path
) -> None:
    """`npm pack` → install the tarball in an empty folder → the README's first example runs."""
    tarball_path, report = packed
    files = {entry["path"] for entry in report["files"]}
    assert {"dist/index.js", "dist/index.d.ts", "dist/claude-agent.js", "package.json", "README.md"} <= files, files
    assert not any(name.startswith(("src/", "test/", "node_modules/")) for name in files), files
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "type": "module", "private": true}\n')
    tarball = str(tarball_path)
    # Offline: scripts/typescript-setup.sh has put the SDK's dependencies and @types/node@20 in npm's cache.
    check(run(["npm", "install", "--offline", "--no-audit", "--no-fund", tarball, "@types/node@20"], cwd=app))
    required = check(run([NODE, "-e", "console.log(typeof require('@vibebox/sdk').VibeBox)"], cwd=app))
    assert required.strip().endswith("function")  # CommonJS callers too (require of an ES module)
    (app / "example.mjs").write_text(
        "import { VibeBox } from '@vibebox/sdk';\n"
        "const vb = new VibeBox();\n"
        "const sandbox = await vb.sandbox('node-20');\n"
        "const result = await sandbox.run('return 6 * 7');\n"
        "console.log(JSON.stringify({ id: sandbox.id, value: result.returnValue }));\n"
        "await sandbox.destroy();\n"
    )
    output = check(run([NODE, "example.mjs"], cwd=app, **suite_env))
    answer = json.loads(output.strip().splitlines()[-1])
    assert answer["value"] == 42 and answer["id"].startswith("sbx_")
    run_readme_examples(app, suite_env)


def readme_examples() -> list[str]:
    """The README's complete programs: its ```ts blocks that start with an import."""
    blocks = re.findall(r"```ts\n(.*?)```", (PKG / "README.md").read_text(), re.S)
    return [block for block in blocks if block.startswith("import ")]


def run_readme_examples(app: Path, suite_env: dict[str, str]) -> None:
    """Each README program, type-checked against the installed package and run in a project folder."""
    examples = readme_examples()
    assert len(examples) >= 8
    for number, code in enumerate(examples, 1):
        (app / f"readme{number}.ts").write_text(code)
    (app / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "strict": True,
                    "noUncheckedIndexedAccess": True,
                    "skipLibCheck": False,
                    "outDir": "out",
                },
                "include": ["readme*.ts"],
            }
        )
    )
    check(run([NODE, str(PKG / "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], cwd=app))
    project = app.parent / "project"  # what the examples upload: a small Node project
    (project / "src").mkdir(parents=True)
    (project / "node_modules").mkdir()
    (project / "package.json").write_text('{"name": "project", "version": "1.0.0", "private": true}\n')
    (project / "local.json").write_text('{"local": true}\n')
    (project / "src/index.ts").write_text("export const answer = 42;\n")
    (project / "src/util.ts").write_text("export const util = 1;\n")
    (project / "node_modules/skipped.ts").write_text("excluded by the upload's exclude list\n")
    env = {**suite_env, "REPO_URL": authenticated_git_url(suite_env)}
    for number in range(1, len(examples) + 1):
        result = run([NODE, str(app / f"out/readme{number}.js")], cwd=project, timeout=300, **env)
        assert result.returncode == 0, f"README example {number} failed:\n{examples[number - 1]}\n{result.stderr}"
    assert (project / "local-dist/index.ts").is_file()


EXAMPLES = ROOT / "examples" / "claude-agent"


def api_get(server_env: dict[str, str], path: str) -> dict:
    headers = {"Authorization": f"Bearer {server_env['VIBEBOX_API_KEY']}"}
    answer = httpx.get(server_env["VIBEBOX_API_URL"] + path, headers=headers, timeout=30)
    answer.raise_for_status()
    return answer.json()


@pytest.mark.timeout(900)
def test_claude_agent_examples_run(
    built: None,
    packed: tuple[Path, dict],
    suite_env: dict[str, str],
    anthropic: anthropic_stub.Stub,
    tmp_path: Path,
) -> None:
    """The product spec's three orchestrator programs (examples/claude-agent: parallel testing,
    distributed build, multi-repo analysis), type-checked against the built package's
    `@vibebox/sdk/claude-agent` export and run against the live server; Claude's calls go through
    each sandbox's model gateway to the Anthropic stub."""
    app = tmp_path / "app"
    package = app / "node_modules" / "@vibebox" / "sdk"
    package.mkdir(parents=True)
    shutil.copy(PKG / "package.json", package / "package.json")
    # The package as `npm pack` built it (its prepack: tsc -p tsconfig.json into dist/), not a second compile.
    shutil.copytree(PKG / "dist", package / "dist")
    for name in ("ws", "@types"):  # what the installed package would bring
        (app / "node_modules" / name).symlink_to(PKG / "node_modules" / name)
    (app / "package.json").write_text('{"name": "app", "version": "1.0.0", "type": "module", "private": true}\n')
    programs = sorted(EXAMPLES.glob("*.ts"))
    assert [p.stem for p in programs] == ["distributed-build", "multi-repo-analysis", "parallel-testing"]
    for program in programs:
        shutil.copy(program, app / program.name)
    (app / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "target": "ES2022",
                    "module": "NodeNext",
                    "moduleResolution": "NodeNext",
                    "strict": True,
                    "noUncheckedIndexedAccess": True,
                    "outDir": "out",
                },
                "include": ["*.ts"],
            }
        )
    )
    check(run([NODE, str(PKG / "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], cwd=app))
    repo = authenticated_git_url(suite_env)

    def example(name: str, **env: str) -> dict:
        output = check(run([NODE, f"out/{name}.js"], cwd=app, timeout=600, **suite_env, **env))
        return json.loads(output.strip().splitlines()[-1])

    tested = example("parallel-testing", REPOS=f"{repo},{repo}", PARALLELISM="2")
    assert {k: tested[k] for k in ("total", "passed", "avgCoverage")} == {"total": 2, "passed": 2, "avgCoverage": 0}
    run_record = api_get(suite_env, f"/api/v1/agent-runs/{tested['runId']}")
    assert run_record["kind"] == "map" and run_record["status"] == "completed"
    assert [t["result"]["passed"] for t in run_record["tasks"]] == [True, True]
    assert all(suite_env["VIBEBOX_TEST_GIT_TOKEN"] not in t["name"] for t in run_record["tasks"])

    built_ = example("distributed-build", COMPONENTS="api,web,worker", WORKERS="2")
    assert [a["artifact"] for a in built_["artifacts"]] == [
        f'export const component = "{n}";' for n in ("api", "web", "worker")
    ]
    assert len(built_["workers"]) == 2 and {a["sandboxId"] for a in built_["artifacts"]} <= set(built_["workers"])
    assert api_get(suite_env, f"/api/v1/agent-runs/{built_['runId']}")["counts"]["completed"] == 3

    anthropic.script(
        "TS-EXAMPLE-ANALYZE", [tool_use("run_command", command="cat /repo/package.json")], [text("a node project")]
    )
    analysed = example(
        "multi-repo-analysis", REPOS=repo, PROMPT="TS-EXAMPLE-ANALYZE this repository", ANTHROPIC_API_KEY=""
    )
    assert analysed["report"] == [
        {"repo": suite_env["VIBEBOX_TEST_GIT_URL"], "files": 2, "analysis": "a node project", "toolCalls": 1}
    ]
    assert api_get(suite_env, f"/api/v1/agent-runs/{analysed['runId']}")["kind"] == "orchestrate"
    assert anthropic.conversation_requests("TS-EXAMPLE-ANALYZE")  # Claude's calls reached the stub


def authenticated_git_url(env: dict[str, str]) -> str:
    credentials = f"{env['VIBEBOX_TEST_GIT_USER']}:{env['VIBEBOX_TEST_GIT_TOKEN']}@"
    return env["VIBEBOX_TEST_GIT_URL"].replace("://", f"://{credentials}")


EXPORT = re.compile(r"export (?:async )?(?:class|interface|type|function|const|enum) (\w+)")


def doc_before(lines: list[str], index: int) -> str:
    """The /** … */ block right above line `index` (line comments in between are skipped)."""
    end = index - 1
    while end >= 0 and lines[end].strip().startswith("//"):
        end -= 1
    if end < 0 or not lines[end].strip().endswith("*/"):
        return ""
    start = end
    while start > 0 and not lines[start].strip().startswith("/**"):
        start -= 1
    return "\n".join(lines[start : end + 1])


def test_every_export_has_tsdoc_with_an_example() -> None:
    missing = []
    for path in sorted((PKG / "src").glob("*.ts")):
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            found = EXPORT.match(line)
            if found and "@example" not in doc_before(lines, index):
                missing.append(f"{path.name}:{index + 1} {found.group(1)}")
    assert not missing, f"exports without a TSDoc @example: {missing}"
