"""A container killed behind VibeBox's back (OOM, `docker kill`, a crashed host process) while
its row says `running`: every call that reaches into the sandbox answers 409
sandbox_not_running, and the row follows the container at once (`stopped` with a reason), not at
the next reconcile pass (issue 18). Uploads have their own test in test_faults_files.py."""

import pytest

from apps.sandboxes.models import Sandbox

CALLS = {
    "exec": ("post", "exec", {"command": "true"}),
    "execute": ("post", "execute", {"code": "print(1)", "language": "python"}),
    "files-list": ("get", "files?path=/workspace", None),
    "delete": ("delete", "files/keep.txt", None),
    "mkdir": ("post", "files/mkdir", {"path": "d"}),
    "move": ("post", "files/move", {"source": "keep.txt", "destination": "moved.txt"}),
    "git-status": ("get", "git/status?path=/workspace", None),
    "process": ("post", "exec", {"command": "sleep 30", "background": True}),
    "terminals": ("get", "terminals", None),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_call_into_a_killed_container_is_409_and_the_row_follows(name, api_client, create_sandbox, docker_client):
    sandbox_id = create_sandbox(template="python-3")["id"]
    upload = api_client.post(
        f"/api/v1/sandboxes/{sandbox_id}/files?path=keep.txt", b"kept", content_type="application/octet-stream"
    )
    assert upload.status_code == 201, upload.content
    docker_client.api.kill(sandbox_id)
    method, path, body = CALLS[name]
    response = getattr(api_client, method)(f"/api/v1/sandboxes/{sandbox_id}/{path}", body, format="json")
    assert response.status_code == 409, (response.status_code, response.content[:500])
    error = response.json()["error"]
    assert error["code"] == "sandbox_not_running", error
    assert error["details"]["status"] == "stopped", error
    sandbox = Sandbox.objects.get(pk=sandbox_id)
    assert sandbox.status == "stopped" and "exited" in sandbox.status_reason, sandbox.status_reason
    # nothing was lost, and it starts again
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/start").status_code == 200
    exec_ = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "ls /workspace"}, format="json")
    assert exec_.status_code == 200 and exec_.json()["stdout"].split() == ["keep.txt"], exec_.content
