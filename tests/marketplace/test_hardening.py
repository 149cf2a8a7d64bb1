"""The marketplace's hardening (s43 review findings): links through links in a context tar, no
root user, unreviewed versions of public templates, the build log's cap, the lock order of yank
and publish, names released when their first submission ends, FROM vibebox/<t>:<version>,
reserved names."""

import base64
import io
import tarfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.marketplace import selectors, services
from apps.marketplace.models import Submission, Template, TemplateVersion
from apps.marketplace.submissions import LOG_HEAD, LOG_MARKER, LOG_MAX
from apps.orgs.services import personal_org_ensure
from vibebox import exceptions as errors

from .conftest import DOCKERFILE, pipeline_to_passed, yaml_for

pytestmark = pytest.mark.django_db(transaction=True)
URL = "/api/v1/marketplace/submissions"
CAT = "/api/v1/marketplace/templates"


def fields_of(response):
    return response.json()["error"]["details"]["fields"]


def _tar(members) -> str:
    """A base64 tar of (name, kind, target): kind `dir`, `sym` (a symlink to target) or `file`."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, target in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, target
            else:
                info.size = len(target)
            archive.addfile(info, io.BytesIO(target) if kind == "file" else None)
    return base64.b64encode(buffer.getvalue()).decode()


def _submit(client, name, version="1.0.0", *, dockerfile=DOCKERFILE, context=None, visibility=None, **extra):
    body = {"dockerfile": dockerfile, "templateYaml": yaml_for(name, version, **extra)}
    if context is not None:
        body["context"] = context
    if visibility:
        body["visibility"] = visibility
    return client.post(URL, body, format="json")


# 1. Links through links -----------------------------------------------------------------------

DEEP = "a/b/c/d/e/f/g"


@pytest.mark.parametrize(
    "members",
    [
        # The reviewer's case: each link's text stays inside, the second one goes through the first.
        [
            ("z", "dir", None),
            (f"{DEEP}/s", "sym", "../../../../../../../z"),
            ("x", "sym", f"{DEEP}/s/../../../../../../../../etc/hostname"),
        ],
        # A directory on the link's own way is a link (dd/ee/up is the root): ../etc from it leaves.
        [("dd/ee/up", "sym", "../.."), ("dd/ee/up/x", "sym", "../etc")],
        # A loop never resolves.
        [("l1", "sym", "l2/x"), ("l2", "sym", "l1/x")],
    ],
)
def test_a_link_through_another_link_out_of_the_context_is_refused(api_client, members, marketplace_dir):
    response = _submit(api_client, "link-out", context=_tar(members))
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_build_context"
    assert "unsafe_link" in [p["code"] for p in fields_of(response)["context"]]
    assert not Submission.objects.exists() and not list(marketplace_dir.glob("submissions/*.tar"))


def test_links_through_links_that_stay_inside_are_fine(api_client):
    members = [
        ("z/file.txt", "file", b"hi"),
        (f"{DEEP}/s", "sym", "../../../../../../../z"),
        ("x", "sym", f"{DEEP}/s/file.txt"),
        ("y", "sym", f"{DEEP}/s/../a"),  # s is z: z/.. is the root, then a
    ]
    response = _submit(api_client, "link-in", context=_tar(members))
    assert response.status_code == 202, response.json()


# 2. No root -----------------------------------------------------------------------------------


@pytest.mark.parametrize("user", ["root", "0", '"0"', '"00"', '"+0"', '"root:root"', '"0:0"'])
def test_root_is_refused_by_name_or_uid(api_client, user):
    response = _submit(api_client, "rooty", user=user)
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "invalid_template_yaml"
    assert [p["code"] for p in fields_of(response)["user"]] == ["root_user"]


def test_a_non_root_user_is_fine(api_client):
    assert _submit(api_client, "not-rooty", user="builder").status_code == 202


# 3. Unreviewed versions of a public template --------------------------------------------------


def test_an_unreviewed_private_version_never_becomes_public(
    api_client, outsider_client, owner, outsider, staff, actor_of_user, publish
):
    publish(owner, "rev-tool", "9.0.0", image="vibebox/rev:9")  # private: published without review
    actor = actor_of_user(owner)
    public = services.submission_create(
        actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("rev-tool", "1.1.0"), visibility="public"
    )
    pipeline_to_passed(public.pk, image="vibebox/rev:11")
    # Submitted while the template is private; the template turns public before it is published.
    late = services.submission_create(actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("rev-tool", "9.1.0"))
    assert Submission.objects.get(pk=public.pk).state == "awaiting_review"
    services.submission_review(actor_of_user(staff), public.pk, approve=True, reason="ok")

    template = Template.objects.get(name="rev-tool")
    assert template.visibility == "public"
    assert (template.latest_version, template.image) == ("1.1.0", "vibebox/rev:11")
    reviewed = dict(TemplateVersion.objects.filter(template=template).values_list("version", "reviewed"))
    assert reviewed == {"9.0.0": False, "1.1.0": True}
    # Others see, and may pin, only the reviewed version; the owner keeps its own.
    body = outsider_client.get(f"{CAT}/rev-tool").json()
    assert body["latestVersion"] == "1.1.0" and [v["version"] for v in body["versions"]] == ["1.1.0"]
    response = outsider_client.post("/api/v1/sandboxes", {"template": "rev-tool@9.0.0"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "unknown_template_version"
    assert response.json()["error"]["details"]["versions"] == ["1.1.0"]
    owner_org = personal_org_ensure(user=owner)
    assert selectors.published_versions(template, org=owner_org) == ["9.0.0", "1.1.0"]
    mine = api_client.get(f"{CAT}/rev-tool").json()["versions"]
    assert [(v["version"], v["reviewed"]) for v in mine] == [("9.0.0", False), ("1.1.0", True)]

    # The private submission that reaches publishing once the template is public waits for staff.
    pipeline_to_passed(late.pk, image="vibebox/rev:91")
    late = Submission.objects.get(pk=late.pk)
    assert late.state == "awaiting_review" and "public" in late.message
    assert Template.objects.get(name="rev-tool").latest_version == "1.1.0"
    with pytest.raises(errors.PermissionDenied):  # its organization's admins may not approve it
        services.submission_review(actor, late.pk, approve=True)
    services.submission_review(actor_of_user(staff), late.pk, approve=True, reason="ok")
    assert Template.objects.get(name="rev-tool").latest_version == "9.1.0"
    assert outsider_client.get(f"{CAT}/rev-tool").json()["latestVersion"] == "9.1.0"


# 4. The build log's cap -----------------------------------------------------------------------


def test_the_marker_in_the_log_does_not_break_its_cap(api_client, owner, actor_of_user):
    submission = services.submission_create(actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("lg"))
    services.submission_start(submission.pk)
    services.submission_log_append(submission.pk, "first line\n" + LOG_MARKER)
    chunk = ("z" * 50_000 + LOG_MARKER) * 4
    for _ in range(15):
        services.submission_log_append(submission.pk, chunk)
    row = Submission.objects.get(pk=submission.pk)
    assert len(row.build_log.encode()) <= LOG_MAX
    assert row.build_log.startswith("first line\n" + LOG_MARKER) and row.build_log.endswith(chunk)
    assert 0 < row.log_head <= LOG_HEAD
    # One huge chunk: capped before it is joined, the log still fits, its tail is the chunk's.
    huge = "h" * (3 * LOG_MAX) + "the end\n"
    size = services.submission_log_append(submission.pk, huge)
    row = Submission.objects.get(pk=submission.pk)
    assert size == row.log_size and len(row.build_log.encode()) <= LOG_MAX
    assert row.build_log.startswith("first line\n") and row.build_log.endswith("h" * 1000 + "the end\n")
    services.submission_log_append(submission.pk, LOG_MARKER + "after\n")
    body = api_client.get(f"{URL}/{submission.pk}?logOffset={row.log_size}").json()
    assert body["buildLog"] == LOG_MARKER + "after\n"


def test_a_first_huge_chunk_keeps_its_own_head_and_tail(owner, actor_of_user):
    submission = services.submission_create(actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("lg2"))
    services.submission_start(submission.pk)
    services.submission_log_append(submission.pk, "H" * LOG_HEAD + "m" * (4 * LOG_MAX) + "T" * 100)
    row = Submission.objects.get(pk=submission.pk)
    assert row.log_head == LOG_HEAD and row.build_log.startswith("H" * LOG_HEAD + LOG_MARKER)
    assert row.build_log.endswith("m" * 10 + "T" * 100) and len(row.build_log.encode()) == LOG_MAX


# 5. Yank and publish lock the Template row first ----------------------------------------------


def test_yank_reads_the_template_row_before_the_version(owner, actor_of_user, publish):
    publish(owner, "lock-tool", "1.0.0")
    publish(owner, "lock-tool", "1.1.0")
    template = Template.objects.get(name="lock-tool")
    with CaptureQueriesContext(connection) as queries:
        services.version_yank(actor_of_user(owner), template=template, version="1.1.0", reason="x")
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("SELECT")]
    first_template = next(i for i, sql in enumerate(reads) if 'FROM "marketplace_template"' in sql)
    first_version = next(i for i, sql in enumerate(reads) if 'FROM "marketplace_templateversion"' in sql)
    assert first_template < first_version
    assert Template.objects.get(name="lock-tool").latest_version == "1.0.0"


def test_publish_reads_the_template_row_before_it_updates_the_version(owner, actor_of_user):
    submission = services.submission_create(
        actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("lock-pub")
    )
    services.submission_start(submission.pk)
    services.submission_progress(submission.pk, state="smoke_testing", image="vibebox/lock:1")
    services.submission_candidate(submission.pk)
    with CaptureQueriesContext(connection) as queries:
        services.submission_passed(submission.pk)
    sqls = [q["sql"] for q in queries.captured_queries]
    template_read = next(
        i for i, sql in enumerate(sqls) if sql.startswith("SELECT") and 'FROM "marketplace_template" ' in sql
    )
    version_write = next(i for i, sql in enumerate(sqls) if sql.startswith('UPDATE "marketplace_templateversion"'))
    assert template_read < version_write
    assert Template.objects.get(name="lock-pub").latest_version == "1.0.0"


# 6. Names are not squatted --------------------------------------------------------------------


@pytest.mark.parametrize("end", ["fail", "reject", "cancel"])
def test_a_name_is_free_again_when_its_first_submission_ends(
    owner, outsider, staff, actor_of_user, outsider_client, end
):
    actor = actor_of_user(owner)
    visibility = "public" if end == "reject" else "private"
    submission = services.submission_create(
        actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("squat"), visibility=visibility
    )
    if end == "cancel":
        services.submission_cancel(actor, submission.pk)
    else:
        services.submission_start(submission.pk)
        services.submission_progress(submission.pk, state="smoke_testing", image="vibebox/squat:1")
        services.submission_candidate(submission.pk)
        assert Template.objects.filter(name="squat", is_active=False).exists()
        if end == "fail":
            services.submission_fail(submission.pk, step="smoke", message="no")
        else:
            services.submission_passed(submission.pk)
            services.submission_review(actor_of_user(staff), submission.pk, approve=False, reason="no")
    assert not Template.objects.filter(name="squat").exists()
    response = _submit(outsider_client, "squat")
    assert response.status_code == 202, response.json()


def test_the_second_first_submission_of_a_name_is_a_conflict_not_a_500(owner, outsider, actor_of_user):
    mine = services.submission_create(actor_of_user(owner), dockerfile=DOCKERFILE, template_yaml=yaml_for("race"))
    # The other organization's submission got in before either had a candidate (two submits at once).
    theirs = Submission.objects.create(
        org=personal_org_ensure(user=outsider),
        user=outsider,
        template_name="race",
        version="2.0.0",
        dockerfile=DOCKERFILE,
        spec=Submission.objects.get(pk=mine.pk).spec | {"version": "2.0.0"},
    )
    for submission in (mine, theirs):
        services.submission_start(submission.pk)
        services.submission_progress(submission.pk, state="smoke_testing", image="vibebox/race:1")
    services.submission_candidate(mine.pk)
    with pytest.raises(errors.SubmissionStateConflict):
        services.submission_candidate(theirs.pk)
    assert Template.objects.get(name="race").owner_org == personal_org_ensure(user=owner)
    # Once checked at submit (under the name's lock), the second one is a 400.
    with pytest.raises(errors.InvalidTemplateYaml) as refused:
        services.submission_create(actor_of_user(outsider), dockerfile=DOCKERFILE, template_yaml=yaml_for("race"))
    assert refused.value.details["fields"]["name"][0]["code"] == "taken"


# 7. FROM vibebox/<template>:<version> ---------------------------------------------------------


def test_from_a_pinned_version(api_client, outsider_client, owner, outsider, publish):
    publish(owner, "base-tool", "1.0.0", image="vibebox/base:1", visibility="public")
    publish(owner, "base-tool", "1.1.0", image="vibebox/base:11", visibility="public")
    response = _submit(outsider_client, "on-base", dockerfile="FROM vibebox/base-tool:1.0.0\nRUN true\n")
    assert response.status_code == 202, response.json()
    bases = Submission.objects.get(pk=response.json()["id"]).spec["bases"]
    assert bases == [
        {"ref": "vibebox/base-tool:1.0.0", "template": "base-tool", "version": "1.0.0", "image": "vibebox/base:1"}
    ]
    latest = _submit(outsider_client, "on-base2", dockerfile="FROM vibebox/base-tool:latest\n").json()
    assert Submission.objects.get(pk=latest["id"]).spec["bases"][0]["image"] == "vibebox/base:11"
    api_client.post(f"{CAT}/base-tool/versions/1.0.0/yank", {}, format="json")
    for ref in ("vibebox/base-tool:1.0.0", "vibebox/base-tool:9.9.9", "vibebox/base-tool:nope"):
        response = _submit(outsider_client, "on-base3", dockerfile=f"FROM {ref}\n")
        assert response.status_code == 400, ref
        assert fields_of(response)["dockerfile"][0]["code"] == "invalid_from"


# 8. Reserved names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["submit", "submissions", "review"])
def test_the_dashboards_fixed_paths_are_reserved_names(api_client, name):
    response = _submit(api_client, name)
    assert response.status_code == 400
    assert [p["code"] for p in fields_of(response)["name"]] == ["reserved"]


# 9. A build context above VIBEBOX_REQUEST_MAX_BYTES, through the real server ------------------


@pytest.fixture
def server(transactional_db):
    from tests.conftest import live_server

    with live_server() as (url, _pid):
        yield url


def _multipart(fields: dict[str, tuple[str, bytes]]) -> tuple[str, bytes]:
    boundary = "vibebox-core2-boundary"
    parts = []
    for name, (filename, data) in fields.items():
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        parts.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n")
    return f"multipart/form-data; boundary={boundary}", b"".join(parts) + f"--{boundary}--\r\n".encode()


def test_a_40_mib_context_is_accepted_over_multipart(server, api_key, settings):
    import http.client
    import json
    import urllib.parse
    from pathlib import Path

    assert settings.VIBEBOX_REQUEST_MAX_BYTES < 40 * 1024**2 < settings.VIBEBOX_TEMPLATE_CONTEXT_MAX
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("big.bin")
        info.size = 40 * 1024**2
        archive.addfile(info, io.BytesIO(b"\0" * info.size))
    content_type, body = _multipart(
        {
            "dockerfile": ("Dockerfile", DOCKERFILE.encode()),
            "templateYaml": ("template.yaml", yaml_for("big-context").encode()),
            "context": ("context.tar", buffer.getvalue()),
        }
    )
    assert len(body) > 40 * 1024**2
    parts = urllib.parse.urlsplit(server)
    headers = {"Authorization": f"Bearer {api_key[1]}", "Content-Type": content_type}

    def post(payload: bytes, length: int | None = None):
        connection_ = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            connection_.putrequest("POST", URL)
            for name, value in {**headers, "Content-Length": str(length or len(payload))}.items():
                connection_.putheader(name, value)
            connection_.endheaders()
            if payload:
                connection_.send(payload)
            response = connection_.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection_.close()

    status, answer = post(body)
    try:
        assert status == 202, answer
        assert answer["contextBytes"] == len(buffer.getvalue())
    finally:
        row = Submission.objects.filter(template_name="big-context").first()
        if row is not None and row.context_path:
            Path(row.context_path).unlink(missing_ok=True)
    # Above the context's limit plus room: 413 at once, naming that limit.
    limit = settings.VIBEBOX_TEMPLATE_CONTEXT_MAX + 2 * 1024**2
    status, answer = post(b"", length=limit + 1)
    assert status == 413 and answer["error"]["details"] == {"limit": limit}
