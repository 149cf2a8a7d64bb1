"""Submissions over the API: what is checked at once (each a 400 with a stable code), the state
machine the pipeline drives through the services, review permissions, cancel, the build log."""

import base64
import io
import tarfile

import pytest
from django.conf import settings
from django.core import mail

from apps.audit.models import AuditEntry
from apps.marketplace import services, states
from apps.marketplace.models import Submission, Template, TemplateVersion
from apps.marketplace.signals import submission_queued
from apps.orgs.services import member_add, org_create
from vibebox import exceptions as errors

from .conftest import DOCKERFILE, pipeline_to_passed, tar_of, yaml_for

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/marketplace/submissions"


def submit(client, name="sub-test", version="1.0.0", *, dockerfile=DOCKERFILE, visibility=None, **extra):
    body = {"dockerfile": dockerfile, "templateYaml": yaml_for(name, version, **extra)}
    if visibility:
        body["visibility"] = visibility
    return client.post(URL, body, format="json")


def fields_of(response):
    return response.json()["error"]["details"]["fields"]


def test_a_json_submission_is_queued_and_announced(api_client, owner):
    heard = []

    def receiver(sender, submission, **kwargs):
        heard.append(submission.pk)

    submission_queued.connect(receiver)
    try:
        context = base64.b64encode(tar_of({"README.md": b"# Hello\n", "app/main.py": b"print(1)\n"})).decode()
        response = api_client.post(
            URL,
            {"dockerfile": DOCKERFILE, "templateYaml": yaml_for("sub-json", readme="README.md"), "context": context},
            format="json",
        )
    finally:
        submission_queued.disconnect(receiver)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["id"].startswith("sub_") and body["state"] == "queued" and body["template"] == "sub-json"
    assert body["visibility"] == "private" and body["contextBytes"] > 0 and body["user"] == "owner"
    assert heard == [body["id"]]
    row = Submission.objects.get(pk=body["id"])
    assert row.spec["readmeText"] == "# Hello\n" and row.spec["bases"] == [{"ref": "debian:trixie", "suite": "trixie"}]
    assert row.context_path.startswith(str(settings.VIBEBOX_MARKETPLACE_DIR)) and "/tmp" in row.context_path
    assert AuditEntry.objects.filter(action="template.submitted", target_id=body["id"]).exists()
    listed = api_client.get(URL).json()
    assert [item["id"] for item in listed["results"]] == [body["id"]]


def test_a_multipart_submission_takes_files(api_client):
    response = api_client.post(
        URL,
        {
            "dockerfile": io.BytesIO(DOCKERFILE.encode()),
            "templateYaml": io.BytesIO(yaml_for("sub-multi", "0.1.0").encode()),
            "context": io.BytesIO(tar_of({"a.txt": b"a"})),
            "visibility": "public",
        },
        format="multipart",
    )
    assert response.status_code == 202, response.json()
    assert response.json()["visibility"] == "public" and response.json()["version"] == "0.1.0"


@pytest.mark.parametrize(
    ("extra", "field", "code"),
    [
        ({"name": "Bad_Name"}, "name", "invalid"),
        ({"name": "node-20"}, "name", "reserved"),
        ({"name": "python-3"}, "name", "reserved"),  # a built-in's alias
        ({"version": "1.2"}, "version", "invalid"),
        ({"description": '""'}, "description", "required"),
        ({"tags": "[" + ", ".join(f"t{i}" for i in range(11)) + "]"}, "tags", "too_many"),
        ({"ports": "[80]"}, "ports", "out_of_range"),
        ({"ports": "[70000]"}, "ports", "out_of_range"),
        ({"smoke": '""'}, "smoke", "required"),
        ({"icon": "http://example.com/x.png"}, "icon", "invalid"),
        ({"resources": "{cpu: 99}"}, "resources.cpu", "invalid"),
        ({"resources": "{memory: lots}"}, "resources.memory", "invalid"),
        ({"readme": "README.md"}, "readme", "not_found"),
        ({"colour": "red"}, "colour", "unknown"),
    ],
)
def test_template_yaml_errors(api_client, templates, extra, field, code):
    name = extra.pop("name", "sub-bad")
    response = submit(api_client, name, extra.pop("version", "1.0.0"), **extra)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_template_yaml"
    assert [p["code"] for p in fields_of(response)[field]] == [code]
    assert not Submission.objects.exists()


def test_unparsable_yaml_and_a_readme_too_long(api_client):
    response = api_client.post(URL, {"dockerfile": DOCKERFILE, "templateYaml": "name: [oops"}, format="json")
    assert response.status_code == 400 and fields_of(response)["templateYaml"][0]["code"] == "parse_error"
    response = submit(api_client, readme='"' + "x" * (65 * 1024) + '"')
    assert fields_of(response)["readme"][0]["code"] == "too_long"


@pytest.mark.parametrize(
    ("dockerfile", "code"),
    [
        ("", "required"),
        ("RUN true\n", "no_from"),
        ("FROM ubuntu:24.04\n", "invalid_from"),
        ("FROM vibebox/no-such-template\n", "invalid_from"),
        ("FROM --platform=linux/arm64 debian:trixie\n", "invalid_from"),
        ("FROM debian:trixie\n" + "#" * (64 * 1024), "too_long"),
    ],
)
def test_dockerfile_errors(api_client, dockerfile, code):
    response = submit(api_client, dockerfile=dockerfile)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_dockerfile"
    assert fields_of(response)["dockerfile"][0]["code"] == code


def test_from_a_template_inherits_its_user(api_client, templates):
    response = submit(api_client, "sub-node", dockerfile="FROM vibebox/node-20 AS build\nFROM build\nRUN true\n")
    assert response.status_code == 202, response.json()
    spec = Submission.objects.get(pk=response.json()["id"]).spec
    assert spec["bases"][0]["template"] == "node-20" and spec["baseTemplate"]["user"] == "sandbox"


def _raw_tar(member: tarfile.TarInfo, data: bytes = b"") -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink_out", "device", "setuid", "not_tar", "not_base64"])
def test_unsafe_contexts(api_client, kind, marketplace_dir):
    member = tarfile.TarInfo("ok.txt")
    expected = {
        "absolute": "unsafe_path",
        "dotdot": "unsafe_path",
        "symlink_out": "unsafe_link",
        "device": "unsafe_member",
        "setuid": "setuid",
        "not_tar": "not_a_tar",
        "not_base64": "not_base64",
    }[kind]
    if kind == "absolute":
        member.name = "/etc/passwd"
    elif kind == "dotdot":
        member.name = "a/../../x"
    elif kind == "symlink_out":
        member.type, member.linkname = tarfile.SYMTYPE, "../../etc/shadow"
    elif kind == "device":
        member.type = tarfile.CHRTYPE
    elif kind == "setuid":
        member.mode = 0o4755
    context = {"not_tar": base64.b64encode(b"hello").decode(), "not_base64": "%%%"}.get(kind) or _raw_tar(member)
    body = {"dockerfile": DOCKERFILE, "templateYaml": yaml_for("sub-tar"), "context": context}
    response = api_client.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_build_context"
    assert fields_of(response)["context"][0]["code"] == expected
    assert not list(marketplace_dir.glob("submissions/*.tar"))


def test_a_context_too_large(api_client, settings):
    settings.VIBEBOX_TEMPLATE_CONTEXT_MAX = 1000
    response = api_client.post(
        URL,
        {
            "dockerfile": io.BytesIO(DOCKERFILE.encode()),
            "templateYaml": io.BytesIO(yaml_for("sub-big").encode()),
            "context": io.BytesIO(tar_of({"big": b"x" * 5000})),
        },
        format="multipart",
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "build_context_too_large"


def test_submitting_needs_the_scope_and_the_permission(client_for, owner, outsider, api_client):
    response = submit(client_for(owner, ["templates:read"]))
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope"
    team = org_create(user=owner, name="Team", slug="team-sub")
    member_add(org=team, user_ref="outsider", role="viewer")
    viewer = client_for(outsider, ["templates:submit", "templates:read"], org=team)
    response = submit(viewer)
    assert response.status_code == 403 and response.json()["error"]["details"]["permission"] == "templates.submit"


def test_state_machine_moves_and_refuses(owner, actor_of_user):
    assert states.can_move("queued", "building") and not states.can_move("published", "failed")
    assert {"published", "rejected", "failed", "cancelled"} == states.FINAL
    submission = services.submission_create(actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("sm"))
    assert services.submission_start(submission.pk).state == "building"
    assert services.submission_start(submission.pk) is None  # a redelivered task does nothing
    with pytest.raises(errors.SubmissionStateConflict):
        services.submission_progress(submission.pk, state="awaiting_review")
    services.submission_progress(submission.pk, state="building", build_seconds=2.0)  # fields only
    failed = services.submission_fail(submission.pk, step="policy", message="USER root at the end")
    assert (failed.state, failed.failed_step, failed.message) == ("failed", "policy", "USER root at the end")
    assert failed.finished_at is not None
    assert services.submission_fail(submission.pk, step="build", message="again") is None  # already ended


def test_a_failed_smoke_test_drops_the_candidate_and_the_version_can_be_resubmitted(owner, actor_of_user):
    actor = actor_of_user(owner)
    first = services.submission_create(actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("sm-smoke"))
    with pytest.raises(errors.InvalidTemplateYaml):  # the same version, while the first is in flight
        services.submission_create(actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("sm-smoke"))
    services.submission_start(first.pk)
    services.submission_progress(first.pk, state="smoke_testing", image="vibebox/x:1")
    version = services.submission_candidate(first.pk)
    assert version.state == "candidate" and version.template.is_active is False
    assert services.submission_candidate(first.pk).pk == version.pk  # idempotent
    services.submission_fail(first.pk, step="smoke", message="exit 1")
    assert not TemplateVersion.objects.exists()
    again = services.submission_create(actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("sm-smoke"))
    assert again.state == "queued"


def test_private_publishes_at_once_public_waits_for_staff(api_client, owner, staff, actor_of_user, client_for):
    owner.email = "owner@example.com"
    owner.save()
    private = services.submission_create(
        actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("pub-priv"), visibility="private"
    )
    pipeline_to_passed(private.pk, image="vibebox/pub-priv:1")
    private.refresh_from_db()
    assert private.state == "published" and private.template_version.state == "published"
    template = Template.objects.get(name="pub-priv")
    assert (template.is_active, template.latest_version, template.image) == (True, "1.0.0", "vibebox/pub-priv:1")
    assert len(mail.outbox) == 1 and "published" in mail.outbox[0].subject

    public = services.submission_create(
        actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("pub-pub"), visibility="public"
    )
    pipeline_to_passed(public.pk, image="vibebox/pub-pub:1")
    assert Submission.objects.get(pk=public.pk).state == "awaiting_review"
    assert not Template.objects.get(name="pub-pub").is_active

    # The owner of the org may not review a public submission: 403 naming the permission.
    response = api_client.post(f"{URL}/{public.pk}/review", {"approve": True}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["details"]["permission"] == "marketplace.review"
    staff_client = client_for(staff)
    queue = staff_client.get(f"{URL}?state=awaiting_review&allOrgs=true").json()
    assert [item["id"] for item in queue["results"]] == [public.pk]
    response = staff_client.post(f"{URL}/{public.pk}/review", {"approve": False}, format="json")
    assert response.status_code == 400 and fields_of(response)["reason"][0]["code"] == "reason_required"
    response = staff_client.post(f"{URL}/{public.pk}/review", {"approve": False, "reason": "no readme"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "rejected"
    assert response.json()["message"] == "no readme" and response.json()["reviewer"] == "staffer"
    assert "rejected" in mail.outbox[-1].subject and "no readme" in mail.outbox[-1].body
    assert AuditEntry.objects.filter(action="template.rejected").exists()
    response = staff_client.post(f"{URL}/{public.pk}/review", {"approve": True}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "submission_state_conflict"


def test_cancel_only_while_queued(api_client, owner, actor_of_user, outsider_client):
    queued = submit(api_client, "sub-cancel").json()
    assert outsider_client.post(f"{URL}/{queued['id']}/cancel").status_code == 404
    assert outsider_client.get(f"{URL}/{queued['id']}").status_code == 404
    response = api_client.post(f"{URL}/{queued['id']}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert api_client.post(f"{URL}/{queued['id']}/cancel").status_code == 409
    started = submit(api_client, "sub-cancel2").json()
    services.submission_start(started["id"])
    response = api_client.post(f"{URL}/{started['id']}/cancel")
    assert response.status_code == 409 and response.json()["error"]["details"]["state"] == "building"


def test_the_build_log_keeps_its_head_and_tail_and_reads_from_an_offset(api_client, owner, actor_of_user):
    submission = services.submission_create(actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("logs"))
    services.submission_start(submission.pk)
    size = services.submission_log_append(submission.pk, "first line\n")
    assert size == 11
    body = api_client.get(f"{URL}/{submission.pk}").json()
    assert body["buildLog"] == "first line\n" and body["logSize"] == 11
    services.submission_log_append(submission.pk, "second\n")
    body = api_client.get(f"{URL}/{submission.pk}?logOffset=11").json()
    assert body["buildLog"] == "second\n" and body["logOffset"] == 11
    chunk = "y" * 100_000 + "\n"
    for _ in range(15):
        services.submission_log_append(submission.pk, chunk)
    row = Submission.objects.get(pk=submission.pk)
    assert row.log_size == 18 + 15 * len(chunk)
    assert len(row.build_log.encode()) <= 1024 * 1024 and row.build_log.startswith("first line\n")
    assert row.build_log.endswith(chunk)
    services.submission_log_append(submission.pk, "the end\n")
    body = api_client.get(f"{URL}/{submission.pk}?logOffset={row.log_size}").json()
    assert body["buildLog"] == "the end\n"
    assert api_client.get(f"{URL}/{submission.pk}?logOffset=-1").status_code == 400


def test_a_rejected_public_first_version_leaves_the_name_private_until_a_public_one_is_published(
    owner, staff, actor_of_user, outsider_client
):
    actor = actor_of_user(owner)
    public = services.submission_create(
        actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("vis-flip"), visibility="public"
    )
    pipeline_to_passed(public.pk, image="vibebox/vis-flip:1")
    services.submission_review(actor_of_user(staff), public.pk, approve=False, reason="no")
    private = services.submission_create(
        actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("vis-flip"), visibility="private"
    )
    pipeline_to_passed(private.pk, image="vibebox/vis-flip:2")
    template = Template.objects.get(name="vis-flip")
    assert (template.is_active, template.visibility, template.latest_version) == (True, "private", "1.0.0")
    assert outsider_client.get("/api/v1/templates/vis-flip").status_code == 404
