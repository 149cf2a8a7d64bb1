"""The GraphQL mutations of the REST writes that came last (docs/graphql.md, "Mutations"): ports and
preview URLs, packages, code contexts, terminals, git auto-pull hooks, the marketplace's submissions
and moderation, billing's plan and an organization's erasure. Each through the real /graphql view
and the real services (the effect checked where it happens), refused for a key without the scope
(REST's 403 insufficient_scope naming it) and for another organization's object (its *_not_found)."""

import base64
import json

import pytest
from asgiref.sync import async_to_sync

from apps.audit.models import AuditEntry
from apps.billing.models import PlanAssignment
from apps.keys.models import ApiKey
from apps.marketplace.models import Submission, Template, TemplateVersion
from apps.orgs import services as org_services
from apps.orgs.models import Organization
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import terminals
from apps.sandboxes.models import Execution, GitHook, Sandbox
from tests.billing import test_invoices as billing_invoices
from tests.billing import test_stripe as billing_stripe
from tests.conftest import sandbox_row
from tests.graphql.test_mutations import ok, refused
from tests.marketplace import conftest as marketplace
from tests.marketplace.conftest import DOCKERFILE, pipeline_to_passed, tar_of, yaml_for
from tests.waiting import wait_for
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)

# The billing tests' Stripe stub and billed organization (the owner's personal one).
stripe = billing_stripe.stripe
billed = billing_invoices.billed
# The marketplace tests' fixtures: its own submissions directory (autouse), staff, publish.
marketplace_dir = marketplace.marketplace_dir
actor_of_user = marketplace.actor_of_user
staff = marketplace.staff
publish = marketplace.publish


def insufficient(client, document: str, scope: str, **variables) -> None:
    error = refused(client, document, "insufficient_scope", **variables)
    assert error["extensions"]["status"] == 403 and error["extensions"]["details"]["missing"] == [scope], error


def not_found(client, document: str, code: str, **variables) -> None:
    error = refused(client, document, code, **variables)
    assert error["extensions"]["status"] == 404, error


@pytest.fixture
def row(owner, templates):
    """A sandbox row of the owner (no container: the writes below touch only the database)."""
    return sandbox_row(owner, templates["python-3.13"], name="gql-row")


# ---- ports and preview URLs ----

SET_PORT = "mutation($id: ID!, $public: Boolean!) { setPortPublic(sandboxId: $id, port: 8000, public: $public) "
SET_PORT += "{ port public declared listening url pathUrl } }"
PREVIEW = "mutation($id: ID!, $expiresIn: Duration, $form: String) { createPreviewUrl(sandboxId: $id, port: 8000, "
PREVIEW += "expiresIn: $expiresIn, form: $form) { port url token expiresAt public } }"


def test_port_public_and_a_preview_url(api_client, outsider_client, client_for, owner, row):
    made = ok(api_client, SET_PORT, id=row.pk, public=True)["setPortPublic"]
    assert made["port"] == 8000 and made["public"] is True and made["listening"] is False
    assert row.pk in made["url"] and made["pathUrl"].startswith("http://testserver/")
    assert Sandbox.objects.get(pk=row.pk).ports == {"8000": {"public": True}}
    entry = AuditEntry.objects.get(action="sandbox.port_updated", target_id=row.pk)
    assert entry.changes == {"port": 8000, "public": [False, True]} and entry.source == "api"

    url = ok(api_client, PREVIEW, id=row.pk, expiresIn="30m", form="path")["createPreviewUrl"]
    assert url["public"] is True and url["token"] and url["url"].endswith(f"vibebox_token={url['token']}")
    assert url["url"].startswith("http://testserver/")
    error = refused(api_client, PREVIEW, "invalid_duration", id=row.pk, expiresIn="30d", form=None)
    assert error["extensions"]["details"]["field"] == "expiresIn"
    refused(api_client, PREVIEW, "validation_error", id=row.pk, expiresIn=None, form="sideways")

    insufficient(client_for(owner, ["sandboxes:read"]), SET_PORT, "sandboxes:write", id=row.pk, public=False)
    insufficient(client_for(owner, ["templates:read"]), PREVIEW, "sandboxes:read", id=row.pk)
    not_found(outsider_client, SET_PORT, "sandbox_not_found", id=row.pk, public=False)
    not_found(outsider_client, PREVIEW, "sandbox_not_found", id=row.pk)
    assert ok(api_client, SET_PORT, id=row.pk, public=False)["setPortPublic"]["public"] is False
    assert Sandbox.objects.get(pk=row.pk).ports == {}


# ---- git auto-pull hooks ----

CREATE_HOOK = (
    'mutation($id: ID!) { createGitHook(sandboxId: $id, path: "/workspace/app", branch: "main", provider: "github")'
    " { id sandboxId path branch provider url secret } }"
)
DELETE_HOOK = "mutation($id: ID!, $hook: String!) { deleteGitHook(sandboxId: $id, hookId: $hook) { id deleted } }"


def test_git_hooks(api_client, outsider_client, client_for, owner, row):
    hook = ok(api_client, CREATE_HOOK, id=row.pk)["createGitHook"]
    assert (hook["sandboxId"], hook["path"], hook["branch"], hook["provider"]) == (
        row.pk,
        "/workspace/app",
        "main",
        "github",
    )
    assert hook["url"] == f"http://testserver/api/v1/git-hooks/{hook['id']}" and len(hook["secret"]) >= 32
    stored = GitHook.objects.get(pk=hook["id"])
    assert stored.secret != hook["secret"]  # kept encrypted: the answer shows it once
    refused(api_client, CREATE_HOOK.replace('provider: "github"', 'provider: "svn"'), "validation_error", id=row.pk)

    insufficient(client_for(owner, ["sandboxes:read"]), CREATE_HOOK, "sandboxes:write", id=row.pk)
    insufficient(client_for(owner, ["sandboxes:read"]), DELETE_HOOK, "sandboxes:write", id=row.pk, hook=hook["id"])
    not_found(outsider_client, CREATE_HOOK, "sandbox_not_found", id=row.pk)
    not_found(outsider_client, DELETE_HOOK, "sandbox_not_found", id=row.pk, hook=hook["id"])
    assert GitHook.objects.filter(sandbox_id=row.pk).count() == 1

    assert ok(api_client, DELETE_HOOK, id=row.pk, hook=hook["id"])["deleteGitHook"] == {
        "id": hook["id"],
        "deleted": True,
    }
    assert not GitHook.objects.filter(pk=hook["id"]).exists()
    not_found(api_client, DELETE_HOOK, "git_hook_not_found", id=row.pk, hook=hook["id"])


# ---- code contexts ----

CONTEXT = "id language cwd status executionCount"
CREATE_CONTEXT = f'mutation($id: ID!) {{ createCodeContext(sandboxId: $id, language: "python") {{ {CONTEXT} }} }}'
RUN = (
    "mutation($id: ID!, $ctx: String!, $source: String!) { executeInCodeContext(sandboxId: $id, contextId: $ctx,"
    " code: $source) { stdout results { data isMainResult } error { name value } executionCount executionId } }"
)
ON_CONTEXT = "mutation($id: ID!, $ctx: String!) {{ {name}(sandboxId: $id, contextId: $ctx) {{ {fields} }} }}"


def test_code_contexts(api_client, outsider_client, client_for, owner, create_sandbox):
    sid = create_sandbox(template="python-3")["id"]
    ctx = ok(api_client, CREATE_CONTEXT, id=sid)["createCodeContext"]
    assert ctx["id"].startswith("ctx_") and ctx["language"] == "python" and ctx["status"] == "idle"
    cid = ctx["id"]

    first = ok(api_client, RUN, id=sid, ctx=cid, source="x = 41\nprint('hi')\nx + 1")["executeInCodeContext"]
    assert first["stdout"] == "hi\n" and first["error"] is None and first["executionCount"] == 1
    assert first["results"] == [{"data": {"text/plain": "42"}, "isMainResult": True}]
    assert Execution.objects.filter(pk=first["executionId"], sandbox_id=sid).exists()
    kept = ok(api_client, RUN, id=sid, ctx=cid, source="x * 2")["executeInCodeContext"]
    assert kept["results"][0]["data"]["text/plain"] == "82"

    interrupted = ok(api_client, ON_CONTEXT.format(name="interruptCodeContext", fields=CONTEXT), id=sid, ctx=cid)
    assert interrupted["interruptCodeContext"]["id"] == cid
    restarted = ok(api_client, ON_CONTEXT.format(name="restartCodeContext", fields=CONTEXT), id=sid, ctx=cid)
    assert restarted["restartCodeContext"]["executionCount"] == 0
    gone = ok(api_client, RUN, id=sid, ctx=cid, source="x")["executeInCodeContext"]
    assert gone["error"]["name"] == "NameError"  # a new kernel: the state is gone

    reader = client_for(owner, ["sandboxes:read"])
    insufficient(reader, CREATE_CONTEXT, "execute", id=sid)
    insufficient(reader, RUN, "execute", id=sid, ctx=cid, source="x = 1")
    not_found(outsider_client, CREATE_CONTEXT, "sandbox_not_found", id=sid)
    not_found(outsider_client, RUN, "sandbox_not_found", id=sid, ctx=cid, source="x = 1")
    delete = ON_CONTEXT.format(name="deleteCodeContext", fields="id deleted")
    not_found(outsider_client, delete, "sandbox_not_found", id=sid, ctx=cid)
    insufficient(reader, delete, "execute", id=sid, ctx=cid)

    assert ok(api_client, delete, id=sid, ctx=cid)["deleteCodeContext"] == {"id": cid, "deleted": True}
    not_found(api_client, RUN, "context_not_found", id=sid, ctx=cid, source="1")


# ---- packages ----

INSTALL = (
    "mutation($id: ID!, $input: InstallPackagesInput!) { installPackages(sandboxId: $id, input: $input)"
    " { executionId processId status manager packages cwd mirror } }"
)


def test_install_packages(api_client, outsider_client, client_for, owner, create_sandbox):
    # The organization's pip mirror is a closed port: the install runs for real and fails at once,
    # with no traffic leaving the sandbox.
    org_services.org_update(org=personal_org_ensure(user=owner), registry_mirrors={"pip": "http://127.0.0.1:9/simple"})
    sid = create_sandbox(template="python-3", env={"PIP_RETRIES": "0", "PIP_TIMEOUT": "5"})["id"]
    started = ok(api_client, INSTALL, id=sid, input={"manager": "pip", "packages": ["six"]})["installPackages"]
    assert started["status"] == "running" and started["processId"] == started["executionId"]
    assert (started["manager"], started["packages"], started["mirror"]) == ("pip", ["six"], True)
    execution = wait_for(
        lambda: Execution.objects.exclude(status="running").filter(pk=started["executionId"]).first(),
        timeout=120,
        what="the install's end recorded",
    )
    assert execution.status == "failed" and execution.sandbox_id == sid  # nothing listens at the mirror
    assert AuditEntry.objects.get(action="packages.installed", target_id=sid).changes["mirror"] is True

    refused(api_client, INSTALL, "unsupported_package_manager", id=sid, input={"manager": "apt", "packages": ["x"]})
    insufficient(client_for(owner, ["sandboxes:read", "sandboxes:write"]), INSTALL, "execute", id=sid,
                 input={"manager": "pip", "packages": ["six"]})  # fmt: skip
    not_found(outsider_client, INSTALL, "sandbox_not_found", id=sid, input={"manager": "pip", "packages": ["six"]})
    assert Execution.objects.filter(sandbox_id=sid).count() == 1


# ---- terminals ----

KILL_TERMINAL = "mutation($id: ID!, $term: String!) { killTerminal(sandboxId: $id, sessionId: $term) { id deleted } }"


def test_kill_terminal(api_client, api_key, outsider_client, client_for, owner, create_sandbox):
    sid = create_sandbox(template="python-3")["id"]
    headers = [(b"host", b"testserver"), (b"authorization", f"Bearer {api_key[1]}".encode())]

    async def open_terminal():
        comm = Communicator(application, f"/ws/sandboxes/{sid}/terminal", headers=headers)
        connected, code = await comm.connect(timeout=20)
        assert connected, code
        session = json.loads((await comm.receive_output(timeout=10))["text"])
        await comm.disconnect()  # the terminal lives on, nobody attached
        return session["sessionId"]

    session_id = async_to_sync(open_terminal)()
    sandbox = Sandbox.objects.get(pk=sid)
    assert [t.session_id for t in terminals.terminal_list(sandbox=sandbox)] == [session_id]

    insufficient(client_for(owner, ["sandboxes:read", "sandboxes:write"]), KILL_TERMINAL, "execute", id=sid,
                 term=session_id)  # fmt: skip
    not_found(outsider_client, KILL_TERMINAL, "sandbox_not_found", id=sid, term=session_id)
    assert [t.session_id for t in terminals.terminal_list(sandbox=sandbox)] == [session_id]

    killed = ok(api_client, KILL_TERMINAL, id=sid, term=session_id)["killTerminal"]
    assert killed == {"id": session_id, "deleted": True}
    wait_for(lambda: not terminals.terminal_list(sandbox=sandbox), timeout=30, what="the terminal gone")
    assert AuditEntry.objects.filter(action="terminal.killed", target_id=sid).exists()
    not_found(api_client, KILL_TERMINAL, "terminal_not_found", id=sid, term=session_id)


# ---- the marketplace ----

SUBMIT = "mutation($input: SubmitTemplateInput!) { submitTemplate(input: $input) { id template state visibility } }"
CANCEL = "mutation($id: ID!) { cancelTemplateSubmission(id: $id) { id state } }"
REVIEW = (
    "mutation($id: ID!, $approve: Boolean!, $reason: String) {"
    " reviewTemplateSubmission(id: $id, approve: $approve, reason: $reason) { id state } }"
)


def test_submit_cancel_and_review_submissions(
    api_client,
    outsider_client,
    client_for,
    owner,
    staff,
    actor_of_user,
):
    context = base64.b64encode(tar_of({"README.md": b"# Hi\n"})).decode()
    body = {"dockerfile": DOCKERFILE, "templateYaml": yaml_for("gql-sub", readme="README.md"), "context": context}
    queued = ok(api_client, SUBMIT, input=body)["submitTemplate"]
    assert queued["id"].startswith("sub_") and queued["state"] == "queued" and queued["template"] == "gql-sub"
    assert Submission.objects.get(pk=queued["id"]).context_bytes > 0
    error = refused(api_client, SUBMIT, "invalid_build_context", input={**body, "context": "%%%"})
    assert error["extensions"]["details"]["fields"]["context"][0]["code"] == "not_base64"
    insufficient(client_for(owner, ["templates:read"]), SUBMIT, "templates:submit", input=body)

    not_found(outsider_client, CANCEL, "submission_not_found", id=queued["id"])
    insufficient(client_for(owner, ["templates:read"]), CANCEL, "templates:submit", id=queued["id"])
    assert ok(api_client, CANCEL, id=queued["id"])["cancelTemplateSubmission"]["state"] == "cancelled"
    refused(api_client, CANCEL, "submission_state_conflict", id=queued["id"])

    # a public one waits for staff after the pipeline
    public = ok(api_client, SUBMIT, input={**body, "templateYaml": yaml_for("gql-pub"), "visibility": "public"})
    public_id = public["submitTemplate"]["id"]
    pipeline_to_passed(public_id, image="vibebox/test:1")
    assert Submission.objects.get(pk=public_id).state == "awaiting_review"
    error = refused(api_client, REVIEW, "permission_denied", id=public_id, approve=True, reason="")
    assert error["extensions"]["details"]["permission"] == "marketplace.review"
    not_found(outsider_client, REVIEW, "submission_not_found", id=public_id, approve=True, reason="")
    refused(client_for(staff), REVIEW, "validation_error", id=public_id, approve=False, reason="")  # needs a reason
    reviewed = ok(client_for(staff), REVIEW, id=public_id, approve=True, reason="fine")
    assert reviewed["reviewTemplateSubmission"]["state"] == "published"
    assert Template.objects.get(name="gql-pub").visibility == "public"


YANK = (
    'mutation($reason: String) { yankTemplateVersion(name: "gql-tool", version: "1.0.0", reason: $reason)'
    " { version yanked yankReason } }"
)
DEPRECATE = (
    'mutation { deprecateTemplate(name: "gql-tool", message: "Use gql-tool2.", replacement: "python-3.13")'
    " { name deprecation versions } }"
)
FEATURE = 'mutation { featureTemplate(name: "gql-tool", featured: true, rank: 3) { name featured featuredRank } }'


def test_yank_deprecate_and_feature(
    api_client,
    outsider_client,
    client_for,
    owner,
    staff,
    publish,
    templates,
):
    publish(owner, "gql-tool", "1.0.0")
    publish(owner, "gql-tool", "1.1.0")
    yanked = ok(api_client, YANK, reason="broken")["yankTemplateVersion"]
    assert yanked == {"version": "1.0.0", "yanked": True, "yankReason": "broken"}
    assert TemplateVersion.objects.get(template__name="gql-tool", version="1.0.0").yanked_at is not None
    assert AuditEntry.objects.filter(action="template.version_yanked").exists()

    deprecated = ok(api_client, DEPRECATE)["deprecateTemplate"]
    assert deprecated["name"] == "gql-tool" and deprecated["deprecation"]["message"] == "Use gql-tool2."
    assert [v["version"] for v in deprecated["versions"]] == ["1.1.0", "1.0.0"]
    assert Template.objects.get(name="gql-tool").deprecation == "Use gql-tool2."

    error = refused(api_client, FEATURE, "permission_denied")  # staff only
    assert error["extensions"]["status"] == 403
    featured = ok(client_for(staff), FEATURE.replace("gql-tool", "python-3.13"))["featureTemplate"]
    assert featured == {"name": "python-3.13", "featured": True, "featuredRank": 3}

    reader = client_for(owner, ["templates:read"])
    for document in (YANK, DEPRECATE, FEATURE):
        insufficient(reader, document, "templates:submit")
        not_found(outsider_client, document, "template_not_found")  # another org's private template
    assert Template.objects.get(name="gql-tool").featured is False


# ---- billing ----

CHANGE_PLAN = (
    "mutation($plan: String!, $from: String) { changePlan(plan: $plan, effectiveFrom: $from)"
    " { plan { slug } scheduled { plan effectiveFrom } limits { maxRunningSandboxes } } }"
)


def test_change_plan(api_client, client_for, owner, outsider):
    changed = ok(api_client, CHANGE_PLAN, plan="team")["changePlan"]
    assert changed["plan"]["slug"] == "team" and changed["limits"]["maxRunningSandboxes"] == 50
    org = personal_org_ensure(user=owner)
    assert PlanAssignment.objects.filter(org=org).count() == 1
    entry = AuditEntry.objects.get(org_id=org.pk, action="billing.plan_changed")
    assert entry.changes["plan"]["to"] == "team"

    refused(api_client, CHANGE_PLAN, "plan_not_found", plan="nope")
    refused(api_client, CHANGE_PLAN, "invalid_effective_from", plan="pro", **{"from": "2001-01-01T00:00:00Z"})
    insufficient(client_for(owner, ["billing:read"]), CHANGE_PLAN, "billing:manage", plan="pro")
    # a member without billing.manage: REST's 403 naming it
    team = org_services.org_create(user=owner, name="GQL Billing")
    org_services.member_add(org=team, user_ref="outsider", role="developer", by=owner)
    error = refused(client_for(outsider, org=team), CHANGE_PLAN, "permission_denied", plan="pro")
    assert error["extensions"]["details"]["permission"] == "billing.manage"
    assert not PlanAssignment.objects.filter(org=team).exists()
    assert PlanAssignment.objects.filter(org=org).count() == 1


CHECKOUT = "mutation($success: String) { startCheckout(successUrl: $success) { id url } }"


def test_start_checkout(stripe, billed, api_client, client_for, owner, outsider, settings):
    started = ok(api_client, CHECKOUT, success="https://app.example/ok")["startCheckout"]
    assert started["id"].startswith("cs_test_") and started["url"] == f"{stripe.url}/pay/{started['id']}"
    [session] = stripe.calls("POST", "/v1/checkout/sessions")
    assert session["form"]["mode"] == "setup" and session["form"]["success_url"] == "https://app.example/ok"
    assert session["form"]["cancel_url"] == "http://testserver/billing/?checkout=cancelled"  # REST's default
    assert AuditEntry.objects.filter(org_id=billed.pk, action="billing.checkout_started").count() == 1

    refused(api_client, CHECKOUT, "validation_error", success="not a url")
    insufficient(client_for(owner, ["billing:read"]), CHECKOUT, "billing:manage")
    team = org_services.org_create(user=owner, name="GQL Checkout")
    org_services.member_add(org=team, user_ref="outsider", role="developer", by=owner)
    error = refused(client_for(outsider, org=team), CHECKOUT, "permission_denied")
    assert error["extensions"]["details"]["permission"] == "billing.manage"
    assert len(stripe.calls("POST", "/v1/checkout/sessions")) == 1  # nothing more reached Stripe
    settings.VIBEBOX_STRIPE_SECRET_KEY = ""
    not_found(api_client, CHECKOUT, "payments_not_configured")


# ---- an organization's erasure ----

ERASE = (
    "mutation($slug: String!, $confirm: String!) { eraseOrganization(slug: $slug, confirm: $confirm) { id deleted } }"
)


def test_erase_organization(owner, outsider, client_for, make_key):
    org = org_services.org_create(user=owner, name="GQL Erase")
    org_services.member_add(org=org, user_ref="outsider", role="admin", by=owner)
    key, _secret = make_key(owner, org=org, name="ci")
    client = client_for(owner, org=org)

    error = refused(client, ERASE, "validation_error", slug=org.slug, confirm="not-it")
    assert "confirm" in error["extensions"]["details"]["fields"]
    insufficient(client_for(owner, ["sandboxes:read"], org=org), ERASE, "orgs:manage", slug=org.slug, confirm=org.slug)
    error = refused(client_for(outsider, org=org), ERASE, "permission_denied", slug=org.slug, confirm=org.slug)
    assert error["extensions"]["details"]["permission"] == "org.delete"
    not_found(client_for(outsider), ERASE, "org_not_found", slug=org.slug, confirm=org.slug)  # a key of another org
    assert Organization.objects.filter(pk=org.pk).exists()

    org_id = org.pk
    assert ok(client, ERASE, slug=org.slug, confirm=org.slug)["eraseOrganization"] == {
        "id": str(org_id),
        "deleted": True,
    }
    assert not Organization.objects.filter(pk=org_id).exists()
    assert not ApiKey.objects.filter(pk=key.pk).exists()  # revoked, then removed with its rows
    assert AuditEntry.objects.filter(action="org.erasure_requested", changes__slug="gql-erase").exists()


# ---- single sign-on ----

SET_SSO = (
    "mutation($slug: String!, $input: SsoConnectionInput!) { setSso(slug: $slug, input: $input)"
    " { org protocol defaultRole enabled domains { domain verified recordName recordValue }"
    " oidc { serverUrl clientId redirectUri } saml { acsUrl } } }"
)
VERIFY_SSO = "mutation($slug: String!) { verifySsoDomains(slug: $slug) { domains { domain verified } } }"
DELETE_SSO = "mutation($slug: String!) { deleteSso(slug: $slug) { id deleted } }"
OIDC_INPUT = {
    "protocol": "oidc",
    "domains": ["gql-sso.test"],
    "oidc": {"serverUrl": "https://idp.gql-sso.test/", "clientId": "vibebox", "clientSecret": "s3cret"},
}


def test_single_sign_on(owner, outsider, client_for, settings):
    from apps.sso.models import SsoConnection
    from tests.sso.dns_server import DnsServer

    org = org_services.org_create(user=owner, name="GQL SSO")
    org_services.member_add(org=org, user_ref="outsider", role="admin", by=owner)  # admin lacks org.manage
    client = client_for(owner, org=org)

    made = ok(client, SET_SSO, slug=org.slug, input=OIDC_INPUT)["setSso"]
    assert (made["org"], made["protocol"], made["defaultRole"]) == (org.slug, "oidc", "developer") and made["enabled"]
    assert made["oidc"]["redirectUri"] == f"http://testserver/accounts/oidc/sso-{org.pk}/login/callback/"
    assert made["saml"] is None and "s3cret" not in str(made)
    (domain,) = made["domains"]
    assert domain["domain"] == "gql-sso.test" and domain["verified"] is False
    refused(client, SET_SSO, "validation_error", slug=org.slug, input={**OIDC_INPUT, "protocol": "kerberos"})

    with DnsServer() as dns_server:
        settings.VIBEBOX_SSO_DNS_SERVERS = [dns_server.address]
        dns_server.records[domain["recordName"]] = [domain["recordValue"]]
        verified = ok(client, VERIFY_SSO, slug=org.slug)["verifySsoDomains"]
    assert verified["domains"] == [{"domain": "gql-sso.test", "verified": True}]

    for document in (SET_SSO, VERIFY_SSO, DELETE_SSO):
        variables = {"slug": org.slug, **({"input": OIDC_INPUT} if document is SET_SSO else {})}
        insufficient(client_for(owner, ["sandboxes:read"], org=org), document, "orgs:manage", **variables)
        error = refused(client_for(outsider, org=org), document, "permission_denied", **variables)
        assert error["extensions"]["details"]["permission"] == "org.manage"
        not_found(client_for(outsider), document, "org_not_found", **variables)  # a key of another organization
    assert SsoConnection.objects.filter(org=org).count() == 1

    assert ok(client, DELETE_SSO, slug=org.slug)["deleteSso"] == {"id": org.slug, "deleted": True}
    assert not SsoConnection.objects.filter(org=org).exists()
    not_found(client, DELETE_SSO, "sso_not_configured", slug=org.slug)
