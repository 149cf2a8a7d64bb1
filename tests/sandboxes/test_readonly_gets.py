"""A read-only key (sandboxes:read) changes nothing: GETs never resume a paused sandbox, never
write git's index, never run the sandbox's own shell start-up files (issue 17, item 12)."""

import pytest

from apps.agents.models import ClaudeSession
from apps.keys.scopes import SANDBOXES_READ, SANDBOXES_WRITE


@pytest.fixture
def reader(owner, client_for):
    return client_for(owner, [SANDBOXES_READ])


def sh(api_client, sandbox_id, command, cwd="/workspace"):
    body = {"command": command, "cwd": cwd}
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def status_of(api_client, sandbox_id) -> str:
    return api_client.get(f"/api/v1/sandboxes/{sandbox_id}").json()["status"]


def assert_needs_write(response):
    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert error["details"] == {"required": [SANDBOXES_WRITE], "missing": [SANDBOXES_WRITE]}


def test_auto_resume_on_a_get_needs_the_write_scope(api_client, reader, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "echo hi > a.txt")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    base = f"/api/v1/sandboxes/{sandbox_id}/files"
    assert_needs_write(reader.get(f"{base}?path=/workspace&autoResume=true"))
    assert_needs_write(reader.get(f"{base}/a.txt?autoResume=true"))
    assert status_of(api_client, sandbox_id) == "paused"
    # the same request with a key that may write resumes it
    listing = api_client.get(f"{base}?path=/workspace&autoResume=true")
    assert listing.status_code == 200 and status_of(api_client, sandbox_id) == "running"


def test_the_sandbox_own_auto_resume_does_not_apply_to_a_read_only_key(api_client, reader, create_sandbox):
    sandbox_id = create_sandbox(template="python-3", autoResume=True)["id"]
    sh(api_client, sandbox_id, "git init -q -b main repo && cd repo && git commit -q --allow-empty -m one")
    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    base = f"/api/v1/sandboxes/{sandbox_id}"
    for url in (
        f"{base}/files?path=/workspace",
        f"{base}/files/repo/.git/HEAD",
        f"{base}/git/status?path=/workspace/repo",
        f"{base}/git/log?path=/workspace/repo",
        f"{base}/git/diff?path=/workspace/repo",
        f"{base}/git/branches?path=/workspace/repo",
    ):
        response = reader.get(url)
        assert response.status_code == 409, (url, response.content)
        assert response.json()["error"]["code"] == "sandbox_paused"
    assert status_of(api_client, sandbox_id) == "paused"
    # a key that may write resumes it, as the sandbox's setting says
    assert api_client.get(f"{base}/git/status?path=/workspace/repo").status_code == 200
    assert status_of(api_client, sandbox_id) == "running"


def test_git_reads_never_write_the_index(api_client, reader, create_sandbox):
    sandbox_id = create_sandbox(template="python-3")["id"]
    sh(api_client, sandbox_id, "git init -q -b main repo && cd repo && echo a > a.txt && git add a.txt && "
       "git -c user.name=T -c user.email=t@example.test commit -q -m one")  # fmt: skip
    # a newer mtime makes the index's stat data stale: a plain `git status` would rewrite it
    sh(api_client, sandbox_id, "sleep 1.1; touch a.txt", cwd="/workspace/repo")
    before = sh(api_client, sandbox_id, "sha256sum .git/index; ls .git", cwd="/workspace/repo")["stdout"]
    for action in ("status", "diff", "log", "branches"):
        response = reader.get(f"/api/v1/sandboxes/{sandbox_id}/git/{action}?path=/workspace/repo")
        assert response.status_code == 200, (action, response.content)
    assert reader.get(f"/api/v1/sandboxes/{sandbox_id}/git/status?path=/workspace/repo").json()["clean"] is True
    after = sh(api_client, sandbox_id, "sha256sum .git/index; ls .git", cwd="/workspace/repo")["stdout"]
    assert after == before


def test_a_read_diff_still_sees_a_racily_clean_change(api_client, reader, create_sandbox):
    """The diff works on a copy of the index: the copy must keep the index's mtime, or a change made
    in the second the index was written, at the same size, is invisible (git re-reads such
    "racily clean" files only when the index is no older than them)."""
    sandbox_id = create_sandbox(template="python-3")["id"]
    when = "2020-01-01 00:00:00"
    script = f"echo two > b.txt && touch -d '{when}' b.txt && git add b.txt && echo TWO > b.txt"
    sh(api_client, sandbox_id, f"git init -q -b main repo && cd repo && {script} && touch -d '{when}' b.txt .git/index")
    diff = reader.get(f"/api/v1/sandboxes/{sandbox_id}/git/diff?path=/workspace/repo&staged=false")
    assert diff.status_code == 200, diff.content
    assert "+TWO" in diff.json()["diff"]


def test_a_transcript_read_runs_no_shell_start_up_file_and_never_resumes(api_client, reader, create_sandbox):
    sandbox_id = create_sandbox(template="python-3", autoResume=True)["id"]
    session_id = "0b5e2a3c-1d4f-4e6a-9b7c-8d9e0f1a2b3c"
    ClaudeSession.objects.create(id=session_id, sandbox_id=sandbox_id, cwd="/workspace")
    sh(api_client, sandbox_id, "mkdir -p ~/.claude/projects/p && echo '{\"type\": \"user\"}' > "
       f"~/.claude/projects/p/{session_id}.jsonl && echo 'touch /workspace/profile-ran' >> ~/.profile")  # fmt: skip
    url = f"/api/v1/sandboxes/{sandbox_id}/claude/sessions/{session_id}?transcript=true"
    response = reader.get(url)
    assert response.status_code == 200, response.content
    assert response.json()["transcript"] == [{"type": "user"}]
    # (looked at through the archive API: a command through exec runs a login shell, which would)
    assert api_client.get(f"/api/v1/sandboxes/{sandbox_id}/files/profile-ran").status_code == 404

    api_client.post(f"/api/v1/sandboxes/{sandbox_id}/pause")
    paused = reader.get(url)
    assert paused.status_code == 409 and paused.json()["error"]["code"] == "sandbox_paused"
    assert status_of(api_client, sandbox_id) == "paused"
    # without the transcript, the stored conversation needs nothing from the sandbox
    assert reader.get(url.replace("?transcript=true", "")).status_code == 200
