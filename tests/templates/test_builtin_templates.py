"""Every built-in template, for real: its image is built (once; `make test-templates` builds them
all first), a sandbox is created from the API, and the template's own smoke command runs in it.

Marked `templates`: `make test` leaves these out, `make test-templates` (and .ci/run) runs them."""

import pytest
import yaml
from django.conf import settings

from apps.sandboxes.images import templates_sync
from vibebox.units import parse_size

pytestmark = pytest.mark.templates

SPECS = {
    spec["name"]: spec
    for spec in (yaml.safe_load(path.read_text()) for path in settings.VIBEBOX_IMAGES_DIR.glob("*/template.yaml"))
}
NAMES = sorted(SPECS)


def run(client, sandbox_id: str, command: str, timeout: int = 180) -> dict:
    response = client.post(
        f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command, "timeout": timeout}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def built(request, templates, django_db_blocker):
    """The template's image (built here if make test-templates has not already), its row ready."""
    name = request.param
    templates_sync(build=True, only=[name])
    return name


@pytest.mark.parametrize("built", NAMES, indirect=True)
def test_smoke_command_passes_in_a_new_sandbox(built, api_client, create_sandbox):
    detail = api_client.get(f"/api/v1/templates/{built}").json()
    assert detail["buildState"] == "ready" and detail["imageSize"] > 0 and detail["smoke"], detail
    assert detail["languages"] and detail["packageManagers"] and detail["workdir"] == "/workspace"
    assert detail["imageSize"] <= parse_size(SPECS[built]["size"]), "the image outgrew its template.yaml's size budget"
    sandbox = create_sandbox(template=built)
    assert sandbox["template"] == built
    result = run(api_client, sandbox["id"], detail["smoke"])
    assert result["exitCode"] == 0, result
    assert run(api_client, sandbox["id"], "pwd")["stdout"].strip() == detail["workdir"]


@pytest.mark.parametrize(
    "alias,name", [("go", "go-1.24"), ("rust", "rust-1.85"), ("ruby", "ruby-3.3"), ("java", "java-21")]
)
def test_aliases_name_the_versioned_template(api_client, templates, alias, name):
    body = api_client.get(f"/api/v1/templates/{alias}").json()
    assert body["name"] == name and alias in body["aliases"]


@pytest.mark.parametrize("built", ["fullstack"], indirect=True)
def test_fullstack_databases_answer_right_after_create_and_after_a_restart(built, api_client, create_sandbox):
    sandbox_id = create_sandbox(template="fullstack")["id"]
    script = (
        "psql -qtAc 'create table t (v text); insert into t values ($$kept$$); select v from t' "
        "&& redis-cli set k kept >/dev/null && redis-cli get k"
    )
    result = run(api_client, sandbox_id, script)
    assert result["exitCode"] == 0 and result["stdout"].split() == ["kept", "kept"], result
    # Data lives under /workspace/.vibebox and the services come back after a restart.
    assert api_client.post(f"/api/v1/sandboxes/{sandbox_id}/restart").status_code == 200
    result = run(api_client, sandbox_id, "psql -tAc 'select v from t' && redis-cli ping && id -un")
    assert result["exitCode"] == 0 and result["stdout"].split() == ["kept", "PONG", "sandbox"], result
    owner = run(api_client, sandbox_id, "stat -c %U /workspace/.vibebox/postgres")["stdout"].strip()
    assert owner == "sandbox"
