"""The `vibebox` command, files: push, pull, sync (with --watch)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pexpect
import pytest
from conftest import VIBEBOX, cli
from vibebox_sdk import Sandbox, VibeBox


def wait_for(check: Callable[[], bool], timeout: float = 90, step: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(step)
    return check()


@pytest.fixture(scope="module")
def box(vb: VibeBox) -> Iterator[Sandbox]:
    sandbox = vb.sandbox("python-3", name=f"cli-files-{uuid.uuid4().hex[:6]}")
    yield sandbox
    sandbox.destroy()


def make_tree(root: Path) -> Path:
    (root / "src" / "sub").mkdir(parents=True)
    (root / "src" / "empty").mkdir()
    (root / "src" / "a.txt").write_text("alpha\n")
    (root / "src" / "sub" / "b.txt").write_text("beta\n")
    (root / "src" / "cache.pyc").write_bytes(b"\0junk")
    (root / "src" / "node_modules").mkdir()
    (root / "src" / "node_modules" / "dep.js").write_text("x")
    return root / "src"


def test_push_and_pull_a_directory(cli_env, box, tmp_path):
    src = make_tree(tmp_path / "local")
    name = f"tree-{uuid.uuid4().hex[:6]}"
    result = cli(cli_env, "push", str(src), f"{box.name}:{name}", "--exclude", "*.pyc", "-x", "node_modules", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"path": f"/workspace/{name}", "entries": 4}  # a.txt, empty/, sub/, sub/b.txt
    assert box.files.read_text(f"{name}/sub/b.txt") == "beta\n"
    assert not box.files.exists(f"{name}/cache.pyc") and not box.files.exists(f"{name}/node_modules")
    assert box.files.exists(f"{name}/empty")  # empty directories travel too
    # directories belong to the sandbox user, who can write in them
    assert box.exec(f"touch /workspace/{name}/sub/new.txt").exit_code == 0

    out = tmp_path / "out"
    out.mkdir()
    pulled = cli(cli_env, "pull", f"{box.name}:{name}", "./copy", "--json", cwd=out)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["local"] == "copy"
    assert (out / "copy" / "a.txt").read_text() == "alpha\n"
    assert (out / "copy" / "sub" / "b.txt").read_text() == "beta\n"
    # without a destination: into the current directory, under the directory's own name
    here = cli(cli_env, "pull", f"{box.name}:/workspace/{name}", cwd=out)
    assert here.returncode == 0, here.stderr
    assert (out / name / "sub" / "new.txt").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".vibebox-pull-")]


def test_push_and_pull_a_file(cli_env, box, tmp_path):
    local = tmp_path / "package.json"
    local.write_text('{"name": "demo"}\n')
    result = cli(cli_env, "push", str(local), box.name)
    assert result.returncode == 0, result.stderr
    assert "/workspace/package.json" in result.stdout
    assert box.files.read_text("package.json") == '{"name": "demo"}\n'
    assert cli(cli_env, "push", str(local), f"{box.name}:/workspace/conf/").returncode == 0
    assert box.files.read_text("conf/package.json") == '{"name": "demo"}\n'

    box.files.write("output.txt", "result 42\n")
    here = tmp_path / "here"
    here.mkdir()
    pulled = cli(cli_env, "pull", f"{box.name}:output.txt", cwd=here)  # default: the current directory
    assert pulled.returncode == 0, pulled.stderr
    assert (here / "output.txt").read_text() == "result 42\n"
    assert cli(cli_env, "pull", f"{box.name}:output.txt", str(here / "renamed.txt")).returncode == 0
    assert (here / "renamed.txt").read_text() == "result 42\n"
    assert cli(cli_env, "pull", f"{box.name}:output.txt", str(here / "sub") + "/").returncode == 0
    assert (here / "sub" / "output.txt").exists()


def test_transfer_errors(cli_env, box, tmp_path):
    assert cli(cli_env, "pull", f"{box.name}:no/such/file.txt", str(tmp_path)).returncode == 3
    assert cli(cli_env, "pull", box.name).returncode == 2  # no :path
    missing = cli(cli_env, "push", str(tmp_path / "nothing-here"), box.name)
    assert missing.returncode == 1 and missing.stderr.startswith("error:")
    assert cli(cli_env, "push", str(tmp_path), "no-such-sandbox-u").returncode == 3
    assert cli(cli_env, "sync", str(tmp_path / "nothing-here"), box.name).returncode == 2


def test_sync_once(cli_env, box, tmp_path):
    src = make_tree(tmp_path)
    result = cli(cli_env, "sync", str(src), f"{box.name}:/workspace/once", "-x", "node_modules")
    assert result.returncode == 0, result.stderr
    assert box.files.read_text("once/a.txt") == "alpha\n"
    assert not box.files.exists("once/node_modules")


def test_sync_watch(cli_env, box, tmp_path):
    src = make_tree(tmp_path)
    remote = f"/workspace/watched-{uuid.uuid4().hex[:6]}"
    process = subprocess.Popen(
        [VIBEBOX, "sync", str(src), f"{box.name}:{remote}", "--watch", "--exclude", "*.pyc"],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def remote_text(path: str) -> str | None:
        try:
            return box.files.read_text(f"{remote}/{path}")
        except Exception:
            return None

    try:
        assert wait_for(lambda: remote_text("a.txt") == "alpha\n"), "the first upload did not arrive"

        # The watcher may start a moment after the first upload: write until a change arrives.
        attempt = 0

        def changed() -> bool:
            nonlocal attempt
            attempt += 1
            (src / "a.txt").write_text(f"changed {attempt}\n")
            return wait_for(lambda: (remote_text("a.txt") or "").startswith("changed"), timeout=5)

        assert wait_for(changed, timeout=120, step=0), "a modified file was not uploaded"

        (src / "sub" / "new").mkdir()
        (src / "sub" / "new" / "c.txt").write_text("gamma\n")
        assert wait_for(lambda: remote_text("sub/new/c.txt") == "gamma\n"), "a new file was not uploaded"

        (src / "sub" / "b.txt").unlink()
        assert wait_for(lambda: not box.files.exists(f"{remote}/sub/b.txt")), "a deleted file was not deleted"

        (src / "junk.pyc").write_bytes(b"x")
        (src / "late.txt").write_text("late\n")
        assert wait_for(lambda: remote_text("late.txt") == "late\n")
        assert not box.files.exists(f"{remote}/junk.pyc")  # excluded while watching too
    finally:
        process.terminate()
        code = process.wait(30)
    assert code == 0  # SIGTERM ends the watch cleanly
    assert os.path.exists(src / "a.txt")


def test_push_and_pull_on_a_terminal_show_progress(cli_env, box, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024))
    child = pexpect.spawn(VIBEBOX, ["push", str(big), box.name], env=cli_env, timeout=120, encoding="utf-8")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert box.files.list("/workspace", recursive=False) and box.files.exists("big.bin")
    child = pexpect.spawn(
        VIBEBOX, ["pull", f"{box.name}:big.bin", str(tmp_path / "back.bin")], env=cli_env, timeout=120, encoding="utf-8"
    )
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert (tmp_path / "back.bin").read_bytes() == big.read_bytes()
