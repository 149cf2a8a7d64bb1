"""Files: smart upload (file, directory, glob with exclude), download (bytes, file, directory), the
files namespace, progress callbacks, and the fluent chain."""

from __future__ import annotations

import pytest
from vibebox_sdk import PermissionDeniedError, SandboxFileNotFoundError, ValidationError


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "src" / "lib").mkdir(parents=True)
    (root / "src" / "index.js").write_text("module.exports = 1;\n")
    (root / "src" / "lib" / "util.py").write_text("X = 1\n")
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "node_modules" / "dep" / "skip.py").write_text("no\n")
    (root / "tools").mkdir()
    (root / "tools" / "build.py").write_text("print('build')\n")
    (root / "package.json").write_text('{"name": "demo"}\n')
    return root


def names(sandbox, path="/workspace"):
    return sorted(e.path for e in sandbox.files.list(path, recursive=True) if e.type == "file")


def test_upload_file_directory_and_glob(sandbox, project, monkeypatch):
    assert sandbox.upload(project / "package.json") is sandbox
    sandbox.upload(project / "src")
    sandbox.upload(project / "package.json", "/workspace/app/config.json")
    sandbox.upload(project / "package.json", "/workspace/conf/")
    monkeypatch.chdir(project)
    sandbox.upload("./**/*.py", "/workspace/py", exclude=["node_modules"])
    assert names(sandbox) == [
        "/workspace/app/config.json",
        "/workspace/conf/package.json",
        "/workspace/package.json",
        "/workspace/py/src/lib/util.py",
        "/workspace/py/tools/build.py",
        "/workspace/src/index.js",
        "/workspace/src/lib/util.py",
    ]
    assert sandbox.download("src/lib/util.py") == b"X = 1\n"
    assert sandbox.download("/workspace/app/config.json") == b'{"name": "demo"}\n'
    with pytest.raises(FileNotFoundError):
        sandbox.upload(project / "missing")


def test_upload_directory_with_exclude_and_progress(sandbox, project):
    seen = []
    sandbox.files.upload_dir(
        project, "/workspace/copy", exclude=["node_modules", "*.json"], progress=lambda d, t: seen.append((d, t))
    )
    assert names(sandbox, "/workspace/copy") == [
        "/workspace/copy/src/index.js",
        "/workspace/copy/src/lib/util.py",
        "/workspace/copy/tools/build.py",
    ]
    assert seen[-1][0] == seen[-1][1] > 0


def test_download_to_files_and_directories(sandbox, project, tmp_path):
    sandbox.upload(project / "src", "/workspace/dist")
    out = tmp_path / "local-dist"
    assert sandbox.download("dist/", out) is sandbox
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["index.js", "lib/util.py"]
    here = tmp_path / "here"
    here.mkdir()
    target = sandbox.files.download("dist/index.js", here)
    assert target == here / "index.js"
    assert target.read_text() == "module.exports = 1;\n"
    renamed = sandbox.files.download("dist/index.js", tmp_path / "renamed.js")
    assert renamed.read_text() == "module.exports = 1;\n"
    progress = []
    data = sandbox.files.read("dist/lib/util.py", progress=lambda d, t: progress.append((d, t)))
    assert data == b"X = 1\n"
    assert progress[-1] == (6, 6)
    with pytest.raises(SandboxFileNotFoundError):
        sandbox.download("nope.txt")


def test_files_namespace(sandbox):
    files = sandbox.files
    written = files.write("notes/a.txt", "alpha", mode=0o600)
    assert written["path"] == "/workspace/notes/a.txt"
    entry = next(e for e in files.list("notes") if e.name == "a.txt")
    assert (entry.size, entry.mode, entry.type, entry.is_dir) == (5, "0600", "file", False)
    assert files.read_text("notes/a.txt") == "alpha"
    assert files.exists("notes/a.txt")
    assert not files.exists("notes/b.txt")
    files.mkdir("/tmp/made/deep")
    assert files.exists("/tmp/made/deep")
    files.move("notes/a.txt", "moved/b.txt")
    assert files.read_text("moved/b.txt") == "alpha"
    files.delete("moved/b.txt")
    assert not files.exists("moved/b.txt")
    files.write("tree/x/y.txt", b"\x00\x01binary")
    assert files.read("tree/x/y.txt") == b"\x00\x01binary"
    files.delete("tree", recursive=True)
    assert not files.exists("tree")
    with pytest.raises(ValidationError) as info:
        files.delete("/workspace", recursive=True)
    assert info.value.code == "invalid_path"
    with pytest.raises(PermissionDeniedError) as info:
        files.mkdir("/etc/forbidden")
    assert info.value.code == "file_permission_denied"


def test_fluent_chain(vb, project, tmp_path):
    sandbox = vb.sandbox("node-20")
    sandbox_id = sandbox.id
    (
        sandbox.upload(project / "src")
        .run("mkdir -p dist && cp src/index.js dist/bundle.js", language="shell")
        .run("echo '// built' >> dist/bundle.js", language="shell")
        .download("dist/", tmp_path / "out")
        .destroy()
    )
    assert (tmp_path / "out" / "bundle.js").read_text() == "module.exports = 1;\n// built\n"
    assert vb.get(sandbox_id).status == "destroyed"


def test_uploaded_directories_belong_to_the_sandbox_user(sandbox, project, monkeypatch):
    (project / "src" / "empty").mkdir()
    sandbox.upload(project / "src")
    owners = sandbox.exec("stat -c '%U %n' src src/lib src/empty && touch src/lib/new.txt && echo ok")
    assert owners.stdout == "sandbox src\nsandbox src/lib\nsandbox src/empty\nok\n", owners.stderr
    monkeypatch.chdir(project)
    sandbox.upload("./**/*.py", "/workspace/globbed")
    assert sandbox.exec("stat -c %U globbed/src/lib && touch globbed/src/lib/x").stdout == "sandbox\n"


def test_dot_dot_in_a_path_stays_in_the_files_api(vb, sandbox):
    """`..` is resolved before the URL is made: httpx would collapse it into another endpoint
    (`files/..` is the sandbox itself, so a delete would have destroyed it)."""
    with pytest.raises(ValidationError):  # "/" (where ".." from /workspace leads) cannot be deleted
        sandbox.files.delete("..", recursive=True)
    with pytest.raises(SandboxFileNotFoundError):
        sandbox.files.read("../restart")
    assert vb.get(sandbox.id).status == "running"
    sandbox.files.write("a b/naïve.txt", b"ok")
    assert sandbox.files.read("/workspace/a b/../a b/naïve.txt") == b"ok"
