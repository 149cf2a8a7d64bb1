"""GraphQL mutations: every REST write, as the REST view does it (docs/graphql.md, "Mutations").

Each resolver is the REST view again, in GraphQL's clothes: the same scope check (a key lacking
one: `insufficient_scope` naming it), the same selector with the same access level (another
organization's object: its `*_not_found`), the REST request serializer on the input (so the same
`validation_error`/`unknown_field`... codes), then the same service function, which writes the
audit entry, emits the webhooks and checks quotas. No business logic lives here. Errors leave
through errors.py with the REST code in `extensions.code`.

Sandboxes, snapshots, keys, webhooks, deliveries and agent runs are answered as the queries answer them
(types.py's types: global ids, nested fields). The other answers are the REST answers: types made from the REST
response serializers (`serializer_type`), filled from the serializer's own `.data`, so a field
there is the REST field of the same name. Ids in arguments are global ids or the REST ids.
"""

import base64
import binascii
import io
from enum import Enum

import strawberry
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from strawberry.file_uploads import Upload
from strawberry.scalars import JSON
from strawberry.types import Info

from apps.agents import asks, changes, setup
from apps.agents import runs as agent_runs
from apps.agents import selectors as agent_selectors
from apps.agents.api import run_serializers as run_api
from apps.agents.api import serializers as agent_api
from apps.billing import payments
from apps.billing import selectors as billing_selectors
from apps.billing import services as billing_services
from apps.billing.api import invoice_serializers as billing_invoice_api
from apps.billing.api import serializers as billing_api
from apps.keys import selectors as key_selectors
from apps.keys import services as key_services
from apps.keys.api import serializers as key_api
from apps.keys.models import ApiKey as ApiKeyRow
from apps.keys.scopes import (
    BILLING_MANAGE,
    EXECUTE,
    KEYS_MANAGE,
    ORGS_MANAGE,
    SANDBOXES_READ,
    SANDBOXES_WRITE,
    TEMPLATES_SUBMIT,
    WEBHOOKS_MANAGE,
)
from apps.marketplace import selectors as market_selectors
from apps.marketplace import services as market_services
from apps.marketplace.api import serializers as market_api
from apps.orgs import selectors as org_selectors
from apps.orgs import services as org_services
from apps.orgs.actors import actor_in
from apps.orgs.api import serializers as org_api
from apps.orgs.permissions import BUILTIN_ROLES
from apps.sandboxes import contexts, processes, selectors, terminals
from apps.sandboxes.api import context_views, file_views, git_hook_views, git_schema, package_views, preview_views
from apps.sandboxes.api import schema as sandbox_schema
from apps.sandboxes.api import serializers as sandbox_api
from apps.sandboxes.preview import services as preview
from apps.sandboxes.services import env, files, git, git_hooks, grants, packages, snapshots
from apps.sandboxes.services.create import sandbox_create_from, sandbox_destroy, sandbox_update
from apps.sandboxes.services.exec import require_not_paused, sandbox_exec_from, sandbox_execute_from
from apps.sandboxes.services.lifecycle import (
    sandbox_pause,
    sandbox_restart,
    sandbox_resume,
    sandbox_start,
    sandbox_stop,
)
from apps.sandboxes.services.network import sandbox_network_update
from apps.sandboxes.services.recovery import sandbox_recover
from apps.sso import selectors as sso_selectors
from apps.sso import services as sso_services
from apps.sso.api import serializers as sso_api
from apps.webhooks import selectors as webhook_selectors
from apps.webhooks import services as webhook_services
from apps.webhooks.api import serializers as webhook_api
from vibebox import exceptions as errors

from .relay import to_global_id
from .rest_types import answer, build, scalar, serializer_type
from .types import AgentRun, AgentTask, ApiKey, Sandbox, Snapshot, Webhook, WebhookDelivery, from_rest

# ---- the request, the actor, scopes ----


def _actor(info: Info):
    return info.context.actor


def _key(info: Info) -> ApiKeyRow | None:
    return info.context.key


def _user(info: Info):
    user = info.context.user
    return user if user is not None and user.is_authenticated else None


def require_scopes(info: Info, *scopes: str) -> None:
    """As apps.keys.permissions.HasScopes for the REST view of the same write: a key lacking a
    scope is 403 insufficient_scope naming it; a signed-in user (a session) acts with every scope."""
    if _user(info) is None:
        raise errors.NotAuthenticated()
    info.context.require_scopes(*scopes)


# ---- input: GraphQL input objects -> the REST body -> the REST serializer ----


def _plain(value):
    """A GraphQL input value as the REST JSON body would carry it (unset fields left out)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(item) for item in value]
    definition = getattr(value, "__strawberry_definition__", None)
    if definition is None:
        return value
    body = {}
    for field in definition.fields:
        item = getattr(value, field.python_name)
        if item is strawberry.UNSET:
            continue
        body[field.graphql_name or _camel(field.python_name)] = _plain(item)
    return body


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def validated(serializer_class, data) -> dict:
    """The REST serializer's validated data: its errors are the REST view's (validation_error,
    unknown_field...), raised as DRF's ValidationError for errors.py to render."""
    body = serializer_class(data=_plain(data) if data is not None else {})
    body.is_valid(raise_exception=True)
    return body.validated_data


# ---- ids: a global id (base64 "Type:id") or the REST id itself ----


def raw_id(value: str, type_name: str) -> str:
    """The REST id (or name) behind `value`: a global id of `type_name` decodes to it; anything
    else is taken as the REST id, so both `sbx_…` and the Relay id work."""
    text = str(value)
    try:
        decoded = base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return text
    kind, sep, ident = decoded.partition(":")
    return ident if sep and kind == type_name and ident else text


def _sandbox(info: Info, ref: str, need):
    return selectors.sandbox_get(actor=_actor(info), ref=raw_id(ref, "Sandbox"), need=need)


# ---- answers: types made from the REST response serializers (rest_types.py) ----

NetworkPolicy = serializer_type(sandbox_api.NetworkSerializer, "NetworkPolicy")
ExecResult = serializer_type(sandbox_api.ExecResultSerializer, "ExecResult", "A command's result (exitCode, output).")
ExecuteResult = serializer_type(sandbox_api.ExecuteResultSerializer, "ExecuteResult")
BackgroundProcess = serializer_type(sandbox_schema.BackgroundProcessSerializer, "BackgroundProcess")
ProcessResult = serializer_type(sandbox_schema.ProcessSerializer, "ProcessResult")
FileWritten = serializer_type(sandbox_schema.FileUploadedSerializer, "FileWritten")
FilePath = serializer_type(sandbox_schema.FilePathSerializer, "FilePath")
ArchiveExtracted = serializer_type(sandbox_schema.ArchiveUploadedSerializer, "ArchiveExtracted")
EnvVariable = serializer_type(sandbox_schema.EnvVarSerializer, "EnvVariable")
GitCloneResult = serializer_type(git_schema.GitCloneResultSerializer, "GitCloneResult")
GitPullResult = serializer_type(git_schema.GitPullResultSerializer, "GitPullResult")
GitPushResult = serializer_type(git_schema.GitPushResultSerializer, "GitPushResult")
GitCommitResult = serializer_type(git_schema.GitCommitResultSerializer, "GitCommitResult")
GitCheckoutResult = serializer_type(git_schema.GitCheckoutResultSerializer, "GitCheckoutResult")
ClaudeEnabled = serializer_type(agent_api.ClaudeEnabledSerializer, "ClaudeEnabled")
ClaudeAskResult = serializer_type(agent_api.ClaudeAskSerializer, "ClaudeAskResult")
ClaudeAskStarted = serializer_type(
    agent_api.ClaudeAskStartedSerializer, "ClaudeAskStarted", "An ask begun: follow it on `stream` or claudeEvents."
)
ReviewResult = serializer_type(agent_api.ReviewResultSerializer, "ChangesReviewResult")
# After the ask types: the usage type they share keeps its first name (ClaudeAskResultGatewayUsage).
ClaudeSetupStatus = serializer_type(
    agent_api.ClaudeStatusSerializer, "ClaudeSetupStatus", "A sandbox's Claude setup, as GET …/claude/status."
)


@strawberry.type(description="A new API key and its secret (`key`), shown only here.")
class ApiKeyWithSecret:
    api_key: ApiKey
    key: str = strawberry.field(description="The full key. Shown only in this answer.")


@strawberry.type(description="A webhook and its signing secret (whsec_…), shown only here.")
class WebhookWithSecret:
    webhook: Webhook
    secret: str = strawberry.field(description="The signing secret. Shown only in this answer.")


def _api_key(row) -> ApiKey:
    return from_rest(ApiKey, key_api.ApiKeySerializer(row).data, id=to_global_id("ApiKey", row.pk), key_id=row.pk)


def _webhook(row) -> Webhook:
    data = webhook_api.WebhookSerializer(row).data
    return from_rest(Webhook, data, id=to_global_id("Webhook", row.pk), webhook_id=row.pk, _row=row)


def _delivery(row) -> WebhookDelivery:
    data = webhook_api.DeliverySerializer(row).data
    return from_rest(WebhookDelivery, data, id=to_global_id("WebhookDelivery", row.pk), delivery_id=row.pk)


OrganizationResult = serializer_type(org_api.OrganizationSerializer, "MutatedOrganization")
MemberResult = serializer_type(org_api.MemberSerializer, "Member")
InvitationResult = serializer_type(org_api.InvitationSerializer, "Invitation")
RoleResult = serializer_type(org_api.RoleSerializer, "Role", "A role: built-in, or the organization's own.")
TeamResult = serializer_type(org_api.TeamSerializer, "Team", "A team: its members inherit its role.")
GrantResult = serializer_type(
    sandbox_api.GrantSerializer, "SandboxGrant", "A member's or a team's access to a sandbox."
)
TemplateReview = serializer_type(market_api.ReviewSerializer, "TemplateReview")
Port = serializer_type(preview_views.PortSerializer, "Port", "A sandbox's port and its preview URLs (no token).")
PreviewUrl = serializer_type(preview_views.PortUrlSerializer, "PreviewUrl", "A signed, expiring preview URL.")
PackageInstall = serializer_type(
    package_views.PackageInstallResultSerializer,
    "PackageInstall",
    "An install begun: follow it on execStream(executionId).",
)
CodeContext = serializer_type(context_views.ContextSerializer, "CodeContext", "A kernel that keeps state between runs.")
CodeContextExecution = serializer_type(context_views.ContextExecutionSerializer, "CodeContextExecution")
GitHookCreated = serializer_type(
    git_hook_views.GitHookCreatedSerializer,
    "GitHookCreated",
    "An auto-pull webhook; its `secret` is shown only here.",
)
TemplateSubmission = serializer_type(market_api.SubmissionSerializer, "TemplateSubmission")
TemplateSubmissionDetail = serializer_type(market_api.SubmissionDetailSerializer, "TemplateSubmissionDetail")
TemplateVersion = serializer_type(market_api.TemplateVersionSerializer, "TemplateVersion")
MarketplaceTemplateDetail = serializer_type(market_api.CatalogueTemplateDetailSerializer, "MarketplaceTemplateDetail")
CheckoutSession = serializer_type(
    billing_invoice_api.CheckoutSessionSerializer,
    "CheckoutSession",
    "A Stripe Checkout session: send the browser to `url`.",
)
SsoConnectionResult = serializer_type(
    sso_api.SsoConnectionSerializer, "SsoConnection", "An organization's single sign-on (never its secrets)."
)
OrgPlan = serializer_type(billing_api.OrgPlanSerializer, "OrgPlan", "An organization's plan, its changes and limits.")


@strawberry.type(description="What a delete answers: the id of what is gone.")
class Deleted:
    id: str
    deleted: bool = True


# ---- inputs ----

Duration = scalar("Duration", "Seconds (a number) or a string such as '30s', '15m', '2h', '1d'.")
Size = scalar("Size", "Bytes (a number) or a string such as '512m', '1g'.")


@strawberry.input
class ResourcesInput:
    cpu: float | None = strawberry.UNSET
    memory: Size | None = strawberry.UNSET
    disk: Size | None = strawberry.UNSET


@strawberry.input(description="Egress policy; the keys given replace the sandbox's.")
class NetworkInput:
    internet: bool | None = strawberry.UNSET
    allow: list[str] | None = strawberry.UNSET
    deny: list[str] | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/sandboxes (docs/api.md).")
class CreateSandboxInput:
    template: str | None = strawberry.UNSET
    snapshot: str | None = strawberry.UNSET
    name: str | None = strawberry.UNSET
    auto_start: bool | None = strawberry.UNSET
    ephemeral: bool | None = strawberry.UNSET
    timeout: Duration | None = strawberry.UNSET
    env: JSON | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    resources: ResourcesInput | None = strawberry.UNSET
    git: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="A repository URL, or {url, branch, path, depth, auth, failOnError}."
    )
    auto_pause: Duration | None = strawberry.UNSET
    auto_resume: bool | None = strawberry.UNSET
    pause_stops_timeout: bool | None = strawberry.UNSET
    wait: bool | None = strawberry.UNSET
    network: NetworkInput | None = strawberry.UNSET
    node_labels: JSON | None = strawberry.field(
        default=strawberry.UNSET, description="Run only on an engine that has all these labels, e.g. {region: eu}."
    )


@strawberry.input(description="As PATCH /api/v1/sandboxes/{id}.")
class UpdateSandboxInput:
    name: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    timeout: Duration | None = strawberry.UNSET
    auto_pause: Duration | None = strawberry.UNSET
    auto_resume: bool | None = strawberry.UNSET
    pause_stops_timeout: bool | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/sandboxes/{id}/exec (without background: see startProcess).")
class ExecInput:
    command: JSON = strawberry.field(description="A shell command line (string) or an argv (list of strings).")
    cwd: str | None = strawberry.UNSET
    env: JSON | None = strawberry.UNSET
    user: str | None = strawberry.UNSET
    stdin: str | None = strawberry.UNSET
    timeout: Duration | None = strawberry.UNSET
    auto_resume: bool | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/sandboxes/{id}/execute.")
class ExecuteInput:
    code: str
    language: str | None = strawberry.UNSET
    cwd: str | None = strawberry.UNSET
    env: JSON | None = strawberry.UNSET
    timeout: Duration | None = strawberry.UNSET
    auto_resume: bool | None = strawberry.UNSET


@strawberry.enum
class FileEncoding(Enum):
    UTF8 = "utf-8"
    BASE64 = "base64"


@strawberry.input(description="One variable of setEnv: a null value removes it.")
class EnvVarInput:
    name: str
    value: str | None
    secret: bool = False


@strawberry.input
class GitCloneInput:
    url: str
    branch: str | None = strawberry.UNSET
    path: str | None = strawberry.UNSET
    depth: int | None = strawberry.UNSET
    auth: JSON | None = strawberry.UNSET


@strawberry.input
class GitPullInput:
    path: str | None = strawberry.UNSET
    remote: str | None = strawberry.UNSET
    branch: str | None = strawberry.UNSET
    auth: JSON | None = strawberry.UNSET


@strawberry.input
class GitPushInput:
    path: str | None = strawberry.UNSET
    remote: str | None = strawberry.UNSET
    branch: str | None = strawberry.UNSET
    auth: JSON | None = strawberry.UNSET
    set_upstream: bool | None = strawberry.UNSET
    force: bool | None = strawberry.UNSET


@strawberry.input
class GitAuthorInput:
    name: str
    email: str


@strawberry.input
class GitCommitInput:
    message: str
    path: str | None = strawberry.UNSET
    all: bool | None = strawberry.UNSET
    author: GitAuthorInput | None = strawberry.UNSET
    allow_empty: bool | None = strawberry.UNSET


@strawberry.input
class GitCheckoutInput:
    branch: str
    path: str | None = strawberry.UNSET
    create: bool | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/sandboxes/{id}/claude/ask (docs/claude.md).")
class ClaudeAskInput:
    prompt: str
    session_id: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    permission_mode: str | None = strawberry.UNSET
    allowed_tools: list[str] | None = strawberry.UNSET
    disallowed_tools: list[str] | None = strawberry.UNSET
    max_turns: int | None = strawberry.UNSET
    append_system_prompt: str | None = strawberry.UNSET
    review: bool | None = strawberry.UNSET


@strawberry.input
class ClaudeEnableInput:
    anthropic_api_key: str | None = strawberry.UNSET
    mcp: bool | None = strawberry.UNSET


@strawberry.input(description="As PATCH /api/v1/sandboxes/{id}/claude/status: only the fields given change.")
class ConfigureClaudeInput:
    mode: str | None = strawberry.UNSET
    model: str | None = strawberry.UNSET
    permission_mode: str | None = strawberry.UNSET
    anthropic_api_key: str | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/keys.")
class CreateApiKeyInput:
    name: str
    org: str | None = strawberry.UNSET
    scopes: list[str] | None = strawberry.UNSET
    expires_at: str | None = strawberry.UNSET
    expires_in: Duration | None = strawberry.UNSET
    test: bool | None = strawberry.UNSET
    rate_limit: str | None = strawberry.UNSET


@strawberry.input
class WebhookFilterInput:
    sandbox_id: str | None = strawberry.UNSET
    template: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/webhooks (docs/webhooks.md).")
class CreateWebhookInput:
    url: str
    events: list[str]
    description: str | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    filter: WebhookFilterInput | None = strawberry.UNSET


@strawberry.input(description="As PATCH /api/v1/webhooks/{id}.")
class UpdateWebhookInput:
    url: str | None = strawberry.UNSET
    events: list[str] | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    active: bool | None = strawberry.UNSET
    filter: WebhookFilterInput | None = strawberry.UNSET


@strawberry.input
class CreateOrganizationInput:
    name: str
    slug: str | None = strawberry.UNSET


@strawberry.input
class UpdateOrganizationInput:
    name: str | None = strawberry.UNSET
    slug: str | None = strawberry.UNSET
    registry_mirrors: JSON | None = strawberry.UNSET
    node_labels: JSON | None = strawberry.field(
        default=strawberry.UNSET,
        description="The node labels every new sandbox's engine must have: replaces the set ({} clears it).",
    )


@strawberry.input
class AddMemberInput:
    role: str
    username: str | None = strawberry.UNSET
    email: str | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/sandboxes/{id}/packages.")
class InstallPackagesInput:
    manager: str
    packages: list[str]
    dev: bool | None = strawberry.UNSET
    cwd: str | None = strawberry.UNSET
    timeout: Duration | None = strawberry.UNSET
    auto_resume: bool | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/marketplace/submissions with a JSON body.")
class SubmitTemplateInput:
    dockerfile: str
    template_yaml: str
    context: str | None = strawberry.field(
        default=strawberry.UNSET, description="The build context: a tar (plain, gzip, bzip2 or xz), base64."
    )
    visibility: str | None = strawberry.UNSET


@strawberry.input(description="OIDC: the identity provider's issuer and this client.")
class OidcSettingsInput:
    server_url: str
    client_id: str
    client_secret: str | None = strawberry.field(
        default=strawberry.UNSET, description="Never answered; left out, the stored one is kept."
    )


@strawberry.input(description="SAML: the identity provider's entity ID, SSO URL and signing certificate.")
class SamlSettingsInput:
    entity_id: str
    sso_url: str
    x509cert: str


@strawberry.input(description="As PUT /api/v1/orgs/{slug}/sso (docs/sso.md).")
class SsoConnectionInput:
    protocol: str
    domains: list[str]
    default_role: str | None = strawberry.UNSET
    sso_required: bool | None = strawberry.UNSET
    enabled: bool | None = strawberry.UNSET
    oidc: OidcSettingsInput | None = strawberry.UNSET
    saml: SamlSettingsInput | None = strawberry.UNSET


@strawberry.input(description="A task of createAgentRun or addAgentTasks.")
class AgentTaskInput:
    name: str
    metadata: JSON | None = strawberry.UNSET


@strawberry.input(description="As POST /api/v1/agent-runs (docs/api.md, 'Agent runs').")
class CreateAgentRunInput:
    name: str
    kind: str | None = strawberry.field(
        default=strawberry.UNSET, description="map (default), task, pool, orchestrate or stream."
    )
    parallelism: int | None = strawberry.UNSET
    template: str | None = strawberry.UNSET
    metadata: JSON | None = strawberry.UNSET
    tasks: list[AgentTaskInput] | None = strawberry.field(default=strawberry.UNSET, description="Indexes 0, 1, 2…")


@strawberry.input(description="As PATCH /api/v1/agent-runs/{id}/tasks/{taskId}: only the fields given change.")
class UpdateAgentTaskInput:
    status: str | None = strawberry.field(
        default=strawberry.UNSET, description="pending, running, completed, failed or cancelled."
    )
    sandbox_id: str | None = strawberry.UNSET
    attempts: int | None = strawberry.UNSET
    error: str | None = strawberry.UNSET
    result: JSON | None = strawberry.field(default=strawberry.UNSET, description="Any JSON, at most 64 KiB.")


# ---- helpers of the resolvers ----


def _sandbox_answer(sandbox) -> Sandbox:
    return Sandbox.of(sandbox)


def _given(**arguments) -> dict:
    """The arguments the caller gave (a REST body leaves out what is not sent)."""
    return {name: value for name, value in arguments.items() if value is not strawberry.UNSET}


def _update_fields(data: dict) -> dict:
    names = {
        "name": "name",
        "metadata": "metadata",
        "timeout": "timeout",
        "autoPause": "auto_pause",
        "autoResume": "auto_resume",
        "pauseStopsTimeout": "pause_stops_timeout",
    }
    return {python: data[api] for api, python in names.items() if api in data}


def _lifecycle(info: Info, id: str, service):
    require_scopes(info, SANDBOXES_WRITE)
    sandbox = _sandbox(info, id, selectors.MANAGE)
    return _sandbox_answer(service(sandbox=sandbox))


def _file_sandbox(info: Info, id: str, auto_resume: bool):
    """As file_views._sandbox for a write: USE access; autoResume resumes a paused sandbox first."""
    sandbox = _sandbox(info, id, selectors.USE)
    if auto_resume:
        require_not_paused(sandbox, auto_resume=True)
    return sandbox


def _upload(value):
    """A file part of a multipart request (view.py puts it in the variables); anything else (a string
    sent as the variable, or over the WebSocket) is refused."""
    if not isinstance(value, UploadedFile):
        raise errors.ValidationFailed("Send the file as a GraphQL multipart request (operations, map, the file part).")
    return value


def _file_mode(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise errors.ValidationFailed("mode is octal, like 0644 or 755.") from None
    if not 0 <= mode <= 0o7777:
        raise errors.ValidationFailed("mode is octal, like 0644 or 755.")
    return mode


def _env_answer(sandbox) -> list:
    return [build(EnvVariable, {"name": name, **variable}) for name, variable in env.public(sandbox).items()]


def _org(info: Info, slug: str, permission: str | None = None):
    """As the REST orgs views' _org: the caller's organization by slug (a key acts only inside its
    own: any other is org_not_found), where the caller holds `permission` (else 403 naming it)."""
    user = _user(info)
    org = org_selectors.org_get(user=user, slug=slug)
    key_org = getattr(_key(info), "org_id", None)
    if key_org is not None and key_org != org.pk:
        raise errors.OrgNotFound(details={"org": slug})
    if permission is not None:
        actor_in(user=user, org=org).require(permission)
    return org


def _render_org(info: Info, org):
    """As the REST orgs views' _render: the organization with the caller's role and permissions there."""
    user = _user(info)
    membership = org_selectors.membership_get(org=org, user=user)
    org.role = membership.role_name if membership else ""
    org.permissions = sorted(org_selectors.permissions_of(user=user, org=org))
    return answer(OrganizationResult, org_api.OrganizationSerializer, org)


def _base_url(info: Info) -> str:
    """An invitation link's origin, as REST's (VIBEBOX_PUBLIC_URL wins in the service)."""
    request = info.context.request
    return request.build_absolute_uri("/") if request is not None else ""


def _role(role):
    """As the REST roles views' _role."""
    data = {"name": role.name, "built_in": False, "description": role.description, "permissions": role.permissions}
    return answer(RoleResult, org_api.RoleSerializer, data)


def _not_builtin(name: str) -> None:
    if name in BUILTIN_ROLES:
        raise errors.RoleBuiltIn(details={"role": name})


def _origin(info: Info) -> str:
    """The server's origin, as REST's request.build_absolute_uri("/")."""
    request = info.context.request
    return request.build_absolute_uri("/") if request is not None else "/"


def _code_context(info: Info, sandbox_id: str, context_id: str):
    """As context_views._context: the context of a sandbox the caller may use."""
    sandbox = _sandbox(info, sandbox_id, selectors.USE)
    return contexts.context_get(sandbox=sandbox, id=context_id)


def _market_template(info: Info, name: str):
    """As the marketplace views' writes: templates:submit, then the template the caller's
    organization sees (another's private one: template_not_found). Answers (actor, template)."""
    require_scopes(info, TEMPLATES_SUBMIT)
    actor = _actor(info)
    return actor, market_selectors.template_get(name=name, org=actor.org)


def _catalogue(actor, template):
    """As the marketplace views' _detail: the catalogue entry with the versions `actor` sees."""
    found = market_selectors.catalogue_get(name=template.name, org=actor.org)
    context = {"versions": market_selectors.template_versions(found, org=actor.org)}
    return answer(MarketplaceTemplateDetail, market_api.CatalogueTemplateDetailSerializer, found, context=context)


def _sso(info: Info, connection):
    """As the REST SSO views' _render."""
    request = info.context.request
    data = sso_api.connection_data(connection, absolute_uri=request.build_absolute_uri)
    return answer(SsoConnectionResult, sso_api.SsoConnectionSerializer, data)


def _agent_run(info: Info, id: str):
    """As run_views._run for a write: sandboxes:write, then the run of the caller's organization
    reached as using its owner's sandbox would be (another organization's: agent_run_not_found)."""
    require_scopes(info, SANDBOXES_WRITE)
    return agent_runs.agent_run_get(actor=_actor(info), run_id=raw_id(id, "AgentRun"), need=selectors.USE)


def _agent_run_answer(info: Info, run) -> AgentRun:
    """As run_views._full: the run read again, its task counts as they are now."""
    return AgentRun.of(agent_runs.agent_run_get(actor=_actor(info), run_id=run.pk, need=selectors.USE))


def _review(info: Info, id: str, session_id: str | None, approve: bool):
    require_scopes(info, EXECUTE)
    sandbox = _sandbox(info, id, selectors.USE)
    data = validated(agent_api.ReviewSerializer, {"sessionId": session_id} if session_id else {})
    action = changes.changes_approve if approve else changes.changes_reject
    done = action(sandbox=sandbox, session_id=data.get("sessionId"), api_key=_key(info))
    result = {"status": "approved" if approve else "rejected", "change_sets": done}
    return answer(ReviewResult, agent_api.ReviewResultSerializer, result)


# ---- the Mutation type ----


@strawberry.type(description="Every REST write (docs/graphql.md, 'Mutations').")
class Mutation:
    # -- sandboxes --

    @strawberry.mutation(description="As POST /sandboxes: needs sandboxes:write and sandboxes.create.")
    def create_sandbox(self, info: Info, input: CreateSandboxInput) -> Sandbox:
        require_scopes(info, SANDBOXES_WRITE)
        actor = _actor(info)
        actor.require("sandboxes.create")
        if input.snapshot:  # a global id or the REST id, as the REST body's
            input.snapshot = raw_id(input.snapshot, "Snapshot")
        data = validated(sandbox_api.SandboxCreateSerializer, input)
        sandbox = sandbox_create_from(actor=actor, owner=_user(info), api_key=_key(info), data=data)
        return _sandbox_answer(sandbox)

    @strawberry.mutation(description="As PATCH /sandboxes/{id}.")
    def update_sandbox(self, info: Info, id: strawberry.ID, input: UpdateSandboxInput) -> Sandbox:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, id, selectors.MANAGE)
        data = validated(sandbox_api.SandboxUpdateSerializer, input)
        return _sandbox_answer(sandbox_update(sandbox=sandbox, **_update_fields(data)))

    @strawberry.mutation(description="As POST /sandboxes/{id}/start.")
    def start_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_start)

    @strawberry.mutation(description="As POST /sandboxes/{id}/stop.")
    def stop_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_stop)

    @strawberry.mutation(description="As POST /sandboxes/{id}/restart.")
    def restart_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_restart)

    @strawberry.mutation(description="As POST /sandboxes/{id}/recover: a sandbox in error made usable again.")
    def recover_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_recover)

    @strawberry.mutation(description="As POST /sandboxes/{id}/pause.")
    def pause_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_pause)

    @strawberry.mutation(description="As POST /sandboxes/{id}/resume.")
    def resume_sandbox(self, info: Info, id: strawberry.ID) -> Sandbox:
        return _lifecycle(info, id, sandbox_resume)

    @strawberry.mutation(description="As DELETE /sandboxes/{id}.")
    def destroy_sandbox(self, info: Info, id: strawberry.ID) -> Deleted:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, id, selectors.MANAGE)
        sandbox_destroy(sandbox=sandbox)
        return Deleted(id=sandbox.id)

    @strawberry.mutation(description="As PATCH /sandboxes/{id}/network: the egress policy.")
    def set_sandbox_network(self, info: Info, id: strawberry.ID, input: NetworkInput) -> NetworkPolicy:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, id, selectors.MANAGE)
        data = validated(sandbox_api.NetworkInputSerializer, input)
        sandbox = sandbox_network_update(sandbox=sandbox, changes=data)
        return build(NetworkPolicy, sandbox_api.network_representation(sandbox))

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/grants: shares the sandbox with a member (username or email) or a "
        "team at `access` (read, use, manage); one holding a grant already gets this level."
    )
    def share_sandbox(
        self,
        info: Info,
        id: strawberry.ID,
        access: str,
        user: str | None = strawberry.UNSET,
        team: str | None = strawberry.UNSET,
    ) -> GrantResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, id, selectors.MANAGE)
        data = validated(sandbox_api.GrantSetSerializer, _given(access=access, user=user, team=team))
        grant, _created = grants.grant_set(
            sandbox=sandbox, access=data["access"], user_ref=data.get("user"), team=data.get("team"), by=_user(info)
        )
        grant = selectors.grant_get(sandbox=sandbox, grant_id=grant.pk)
        return answer(GrantResult, sandbox_api.GrantSerializer, grant)

    @strawberry.mutation(
        description="As DELETE /sandboxes/{id}/grants/{grantId}: revokes a grant (managing the sandbox, or "
        "giving up one's own)."
    )
    def unshare_sandbox(self, info: Info, id: strawberry.ID, grant_id: strawberry.ID) -> Deleted:
        require_scopes(info, SANDBOXES_WRITE)
        actor = _actor(info)
        sandbox = _sandbox(info, id, selectors.READ)
        grant = selectors.grant_get(sandbox=sandbox, grant_id=raw_id(grant_id, "SandboxGrant"))
        if grant.user_id != actor.user.pk:
            selectors.check_access(actor, owner_id=sandbox.owner_id, need=selectors.MANAGE, sandbox_id=sandbox.pk)
        deleted_id = str(grant.pk)
        grants.grant_delete(grant=grant)
        return Deleted(id=deleted_id)

    # -- commands --

    @strawberry.mutation(description="As POST /sandboxes/{id}/exec: runs a command, answers its result.")
    def exec(self, info: Info, sandbox_id: strawberry.ID, input: ExecInput) -> ExecResult:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(sandbox_api.ExecSerializer, input)
        outcome = sandbox_exec_from(sandbox=sandbox, api_key=_key(info), data=data)
        return answer(ExecResult, sandbox_api.ExecResultSerializer, outcome)

    @strawberry.mutation(description="As POST /sandboxes/{id}/exec with background: true (the command runs on).")
    def start_process(self, info: Info, sandbox_id: strawberry.ID, input: ExecInput) -> BackgroundProcess:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(sandbox_api.ExecSerializer, input)
        process = processes.process_start_from(sandbox=sandbox, api_key=_key(info), data=data)
        return build(BackgroundProcess, processes.started_answer(process))

    @strawberry.mutation(description="As POST /sandboxes/{id}/processes/{processId}/kill.")
    def kill_process(self, info: Info, sandbox_id: strawberry.ID, process_id: str) -> ProcessResult:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        return answer(
            ProcessResult, sandbox_schema.ProcessSerializer, processes.process_kill(sandbox=sandbox, id=process_id)
        )

    @strawberry.mutation(description="As POST /sandboxes/{id}/execute: runs code in a language.")
    def execute(self, info: Info, sandbox_id: strawberry.ID, input: ExecuteInput) -> ExecuteResult:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(sandbox_api.ExecuteSerializer, input)
        outcome = sandbox_execute_from(sandbox=sandbox, api_key=_key(info), data=data)
        return answer(ExecuteResult, sandbox_api.ExecuteResultSerializer, outcome)

    # -- files --

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/files?path=… with a raw body: writes one file (at most "
        "VIBEBOX_UPLOAD_MAX_BYTES; larger files go through REST's streaming upload)."
    )
    def write_file(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        path: str,
        content: str,
        encoding: FileEncoding = FileEncoding.UTF8,
        mode: str | None = None,
        auto_resume: bool = False,
    ) -> FileWritten:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        if not path:
            raise errors.ValidationFailed("Give the destination path.")
        if encoding is FileEncoding.BASE64:
            try:
                body = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise errors.ValidationFailed("content is not valid base64.") from None
        else:
            body = content.encode()
        limit = settings.VIBEBOX_UPLOAD_MAX_BYTES
        if len(body) > limit:
            raise errors.RequestTooLarge(details={"limit": limit})
        written = files.file_upload(
            sandbox=sandbox, path=path, fileobj=io.BytesIO(body), size=len(body), mode=_file_mode(mode)
        )
        return answer(FileWritten, sandbox_schema.FileUploadedSerializer, written)

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/files with a multipart `file`: send the request as a GraphQL multipart "
        "request (operations, map, the file). At `path`, else under the file's own name; a `path` ending in / is "
        "a directory to put it in."
    )
    def upload_file(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        file: Upload,
        path: str | None = None,
        mode: str | None = None,
        auto_resume: bool = False,
    ) -> FileWritten:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        written = file_views.uploaded_file_write(sandbox=sandbox, upload=_upload(file), path=path, mode=mode)
        return answer(FileWritten, sandbox_schema.FileUploadedSerializer, written)

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/files with a tar archive (plain or gzipped), extracted at `path`: "
        "a GraphQL multipart request. Unsafe entries refuse the whole archive before anything is written."
    )
    def upload_archive(
        self, info: Info, sandbox_id: strawberry.ID, archive: Upload, path: str, auto_resume: bool = False
    ) -> ArchiveExtracted:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        limit = settings.VIBEBOX_UPLOAD_MAX_BYTES
        result = files.archive_upload(sandbox=sandbox, path=path, stream=_upload(archive), limit=limit)
        return answer(ArchiveExtracted, sandbox_schema.ArchiveUploadedSerializer, result)

    @strawberry.mutation(description="As DELETE /sandboxes/{id}/files/{path} (a directory needs recursive).")
    def delete_file(
        self, info: Info, sandbox_id: strawberry.ID, path: str, recursive: bool = False, auto_resume: bool = False
    ) -> FilePath:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        files.file_delete(sandbox=sandbox, path=path, recursive=recursive)
        return build(FilePath, {"path": files.resolve(path)})

    @strawberry.mutation(description="As POST /sandboxes/{id}/files/mkdir.")
    def make_directory(self, info: Info, sandbox_id: strawberry.ID, path: str, auto_resume: bool = False) -> FilePath:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        data = validated(sandbox_api.MkdirSerializer, {"path": path})
        return build(FilePath, {"path": files.file_mkdir(sandbox=sandbox, path=data["path"])})

    @strawberry.mutation(description="As POST /sandboxes/{id}/files/move.")
    def move_file(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        source: str,
        destination: str,
        overwrite: bool = False,
        auto_resume: bool = False,
    ) -> FilePath:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _file_sandbox(info, sandbox_id, auto_resume)
        data = validated(
            sandbox_api.MoveSerializer, {"source": source, "destination": destination, "overwrite": overwrite}
        )
        moved = files.file_move(
            sandbox=sandbox, source=data["source"], destination=data["destination"], overwrite=data["overwrite"]
        )
        return build(FilePath, {"path": moved})

    # -- ports and preview URLs (docs/api.md, "Preview URLs") --

    @strawberry.mutation(
        description="As PATCH /sandboxes/{id}/ports/{port}: public (anyone with its URL may open it) or private "
        "again. Needs what managing the sandbox needs; audited."
    )
    def set_port_public(self, info: Info, sandbox_id: strawberry.ID, port: int, public: bool) -> Port:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        data = validated(preview_views.PortUpdateSerializer, {"public": public})
        return build(
            Port, preview.port_public_update(sandbox=sandbox, port=port, public=data["public"], origin=_origin(info))
        )

    @strawberry.mutation(
        description="As GET /sandboxes/{id}/ports/{port}/url: a signed preview URL (and its token) that opens the "
        "port until expiresAt. `expiresIn`: default 1h, at most 7d; `form`: host (default) or path."
    )
    def create_preview_url(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        port: int,
        expires_in: Duration | None = None,
        form: str | None = None,
    ) -> PreviewUrl:
        require_scopes(info, SANDBOXES_READ)
        sandbox = _sandbox(info, sandbox_id, selectors.READ)
        body = preview.preview_url(sandbox=sandbox, port=port, expires_in=expires_in, form=form, origin=_origin(info))
        return answer(PreviewUrl, preview_views.PortUrlSerializer, body)

    # -- packages --

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/packages: starts installing packages with the manager and answers at "
        "once; follow the install on execStream(executionId)."
    )
    def install_packages(self, info: Info, sandbox_id: strawberry.ID, input: InstallPackagesInput) -> PackageInstall:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(package_views.PackageInstallSerializer, input)
        install = packages.packages_install_from(sandbox=sandbox, api_key=_key(info), data=data)
        return answer(PackageInstall, package_views.PackageInstallResultSerializer, install)

    # -- code contexts (docs/api.md, "Code contexts") --

    @strawberry.mutation(description="As POST /sandboxes/{id}/contexts: starts a kernel (python or javascript).")
    def create_code_context(
        self, info: Info, sandbox_id: strawberry.ID, language: str, cwd: str | None = strawberry.UNSET
    ) -> CodeContext:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(context_views.ContextCreateSerializer, _given(language=language, cwd=cwd))
        context = contexts.context_create(sandbox=sandbox, language=data["language"], cwd=data.get("cwd") or None)
        return answer(CodeContext, context_views.ContextSerializer, context)

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/contexts/{contextId}/execute: runs code in the context (an exception "
        "is `error`; context_dead when its kernel is gone)."
    )
    def execute_in_code_context(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        context_id: str,
        code: str,
        timeout: Duration | None = strawberry.UNSET,
    ) -> CodeContextExecution:
        require_scopes(info, EXECUTE)
        context = _code_context(info, sandbox_id, context_id)
        data = validated(context_views.ContextExecuteSerializer, _given(code=code, timeout=timeout))
        outcome = contexts.context_execute(
            context=context, code=data["code"], timeout=data.get("timeout"), api_key=_key(info)
        )
        return answer(CodeContextExecution, context_views.ContextExecutionSerializer, outcome)

    @strawberry.mutation(description="As POST /sandboxes/{id}/contexts/{contextId}/interrupt: SIGINT to the kernel.")
    def interrupt_code_context(self, info: Info, sandbox_id: strawberry.ID, context_id: str) -> CodeContext:
        require_scopes(info, EXECUTE)
        context = contexts.context_interrupt(context=_code_context(info, sandbox_id, context_id))
        return answer(CodeContext, context_views.ContextSerializer, context)

    @strawberry.mutation(description="As POST /sandboxes/{id}/contexts/{contextId}/restart: a new kernel, no state.")
    def restart_code_context(self, info: Info, sandbox_id: strawberry.ID, context_id: str) -> CodeContext:
        require_scopes(info, EXECUTE)
        context = contexts.context_restart(context=_code_context(info, sandbox_id, context_id))
        return answer(CodeContext, context_views.ContextSerializer, context)

    @strawberry.mutation(description="As DELETE /sandboxes/{id}/contexts/{contextId}: ends the kernel.")
    def delete_code_context(self, info: Info, sandbox_id: strawberry.ID, context_id: str) -> Deleted:
        require_scopes(info, EXECUTE)
        context = _code_context(info, sandbox_id, context_id)
        deleted_id = context.id
        contexts.context_delete(context=context)
        return Deleted(id=deleted_id)

    # -- terminals --

    @strawberry.mutation(description="As DELETE /sandboxes/{id}/terminals/{sessionId}: ends the terminal.")
    def kill_terminal(self, info: Info, sandbox_id: strawberry.ID, session_id: str) -> Deleted:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        terminals.terminal_kill(sandbox=sandbox, id=session_id)
        return Deleted(id=session_id)

    # -- git auto-pull webhooks (docs/api.md, "Auto-pull webhooks") --

    @strawberry.mutation(
        description="As POST /sandboxes/{id}/git/hooks: an auto-pull webhook for a git host; its `secret` is shown "
        "only here. Needs what managing the sandbox needs."
    )
    def create_git_hook(
        self,
        info: Info,
        sandbox_id: strawberry.ID,
        path: str | None = strawberry.UNSET,
        branch: str | None = strawberry.UNSET,
        provider: str | None = strawberry.UNSET,
    ) -> GitHookCreated:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        data = validated(git_hook_views.GitHookCreateSerializer, _given(path=path, branch=branch, provider=provider))
        hook, secret = git_hooks.git_hook_create(
            sandbox=sandbox, path=data.get("path"), branch=data.get("branch"), provider=data["provider"],
            user=_user(info),
        )  # fmt: skip
        hook.secret = secret  # the answer shows the secret, not its stored form
        context = {"request": info.context.request}
        return answer(GitHookCreated, git_hook_views.GitHookCreatedSerializer, hook, context=context)

    @strawberry.mutation(description="As DELETE /sandboxes/{id}/git/hooks/{hookId}: its URL answers 404 from then on.")
    def delete_git_hook(self, info: Info, sandbox_id: strawberry.ID, hook_id: str) -> Deleted:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        hook = selectors.git_hook_get(sandbox=sandbox, hook_id=hook_id)
        deleted_id = str(hook.pk)
        git_hooks.git_hook_delete(hook=hook)
        return Deleted(id=deleted_id)

    # -- environment --

    @strawberry.mutation(
        description="As PATCH /sandboxes/{id}/env (PUT with replace: true): a null value removes a variable. "
        "Answers the variables (secret values as ********)."
    )
    def set_env(
        self, info: Info, sandbox_id: strawberry.ID, variables: list[EnvVarInput], replace: bool = False
    ) -> list[EnvVariable]:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        changes_ = {
            item.name: None if item.value is None else {"value": item.value, "secret": item.secret}
            for item in variables
        }
        return _env_answer(env.env_update(sandbox=sandbox, changes=changes_, replace=replace))

    @strawberry.mutation(description="As DELETE /sandboxes/{id}/env/{name}.")
    def delete_env(self, info: Info, sandbox_id: strawberry.ID, name: str) -> list[EnvVariable]:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        return _env_answer(env.env_delete(sandbox=sandbox, name=name))

    # -- git --

    @strawberry.mutation(description="As POST /sandboxes/{id}/git/clone.")
    def git_clone(self, info: Info, sandbox_id: strawberry.ID, input: GitCloneInput) -> GitCloneResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        d = validated(sandbox_api.GitCloneSerializer, input)
        done = git.git_clone(
            sandbox=sandbox, url=d["url"], branch=d.get("branch"), path=d.get("path"), depth=d.get("depth"),
            auth=d.get("auth"),
        )  # fmt: skip
        return answer(GitCloneResult, git_schema.GitCloneResultSerializer, done)

    @strawberry.mutation(description="As POST /sandboxes/{id}/git/pull.")
    def git_pull(self, info: Info, sandbox_id: strawberry.ID, input: GitPullInput | None = None) -> GitPullResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        d = validated(sandbox_api.GitPullSerializer, input)
        done = git.git_pull(
            sandbox=sandbox, path=d.get("path"), remote=d["remote"], branch=d.get("branch"), auth=d.get("auth"),
            user=_user(info),
        )  # fmt: skip
        return answer(GitPullResult, git_schema.GitPullResultSerializer, done)

    @strawberry.mutation(description="As POST /sandboxes/{id}/git/push.")
    def git_push(self, info: Info, sandbox_id: strawberry.ID, input: GitPushInput | None = None) -> GitPushResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        d = validated(sandbox_api.GitPushSerializer, input)
        done = git.git_push(
            sandbox=sandbox, path=d.get("path"), remote=d["remote"], branch=d.get("branch"), auth=d.get("auth"),
            set_upstream=d["setUpstream"], force=d["force"],
        )  # fmt: skip
        return answer(GitPushResult, git_schema.GitPushResultSerializer, done)

    @strawberry.mutation(description="As POST /sandboxes/{id}/git/commit.")
    def git_commit(self, info: Info, sandbox_id: strawberry.ID, input: GitCommitInput) -> GitCommitResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        d = validated(sandbox_api.GitCommitSerializer, input)
        done = git.git_commit(
            sandbox=sandbox, message=d["message"], path=d.get("path"), all=d["all"], author=d.get("author"),
            allow_empty=d["allowEmpty"], user=_user(info),
        )  # fmt: skip
        return answer(GitCommitResult, git_schema.GitCommitResultSerializer, done)

    @strawberry.mutation(description="As POST /sandboxes/{id}/git/checkout.")
    def git_checkout(self, info: Info, sandbox_id: strawberry.ID, input: GitCheckoutInput) -> GitCheckoutResult:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        d = validated(sandbox_api.GitCheckoutSerializer, input)
        done = git.git_checkout(sandbox=sandbox, branch=d["branch"], path=d.get("path"), create=d["create"])
        return answer(GitCheckoutResult, git_schema.GitCheckoutResultSerializer, done)

    # -- snapshots --

    @strawberry.mutation(description="As POST /sandboxes/{id}/snapshots.")
    def create_snapshot(self, info: Info, sandbox_id: strawberry.ID, name: str | None = None) -> Snapshot:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        data = validated(sandbox_api.SnapshotCreateSerializer, {} if name is None else {"name": name})
        snapshot = snapshots.snapshot_create(sandbox=sandbox, name=data.get("name", ""))
        return Snapshot.of(snapshot)

    @strawberry.mutation(description="As POST /sandboxes/{id}/restore: the sandbox back to the snapshot.")
    def restore_snapshot(self, info: Info, sandbox_id: strawberry.ID, snapshot_id: strawberry.ID) -> Sandbox:
        require_scopes(info, SANDBOXES_WRITE)
        actor = _actor(info)
        sandbox = _sandbox(info, sandbox_id, selectors.MANAGE)
        data = validated(sandbox_api.SnapshotRestoreSerializer, {"snapshot": raw_id(snapshot_id, "Snapshot")})
        snapshot = selectors.snapshot_get(actor=actor, snapshot_id=data["snapshot"])
        return _sandbox_answer(snapshots.snapshot_restore(sandbox=sandbox, snapshot=snapshot))

    @strawberry.mutation(description="As DELETE /snapshots/{id}.")
    def delete_snapshot(self, info: Info, id: strawberry.ID) -> Deleted:
        require_scopes(info, SANDBOXES_WRITE)
        snapshot = selectors.snapshot_get(actor=_actor(info), snapshot_id=raw_id(id, "Snapshot"), need=selectors.MANAGE)
        snapshot_id = snapshot.id  # delete() clears it
        snapshots.snapshot_delete(snapshot=snapshot)
        return Deleted(id=snapshot_id)

    # -- Claude Code (docs/claude.md) --

    @strawberry.mutation(description="As POST /sandboxes/{id}/claude/enable.")
    def enable_claude(
        self, info: Info, sandbox_id: strawberry.ID, input: ClaudeEnableInput | None = None
    ) -> ClaudeEnabled:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(agent_api.EnableSerializer, input)
        found, _created = setup.claude_enable(
            sandbox=sandbox, api_key=_key(info), anthropic_api_key=data.get("anthropicApiKey", ""), mcp=data["mcp"]
        )
        return answer(ClaudeEnabled, agent_api.ClaudeEnabledSerializer, found)

    @strawberry.mutation(
        description="As PATCH /sandboxes/{id}/claude/status: the collaboration mode (human, assist, autonomous), "
        "the asks' default model and permission mode, and whose Anthropic key pays (docs/claude.md)."
    )
    def configure_claude(self, info: Info, sandbox_id: strawberry.ID, input: ConfigureClaudeInput) -> ClaudeSetupStatus:
        require_scopes(info, SANDBOXES_WRITE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        setup.claude_setup_update_from(sandbox=sandbox, data=validated(agent_api.ClaudeSetupUpdateSerializer, input))
        return answer(ClaudeSetupStatus, agent_api.ClaudeStatusSerializer, setup.claude_status(sandbox))

    @strawberry.mutation(description="As POST /sandboxes/{id}/claude/ask: starts an ask (follow it with claudeEvents).")
    def claude_ask(self, info: Info, sandbox_id: strawberry.ID, input: ClaudeAskInput) -> ClaudeAskStarted:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        data = validated(agent_api.AskSerializer, input)
        ask = asks.ask_start_from(sandbox=sandbox, api_key=_key(info), data=data)
        return answer(ClaudeAskStarted, agent_api.ClaudeAskStartedSerializer, ask)

    @strawberry.mutation(description="As POST /sandboxes/{id}/claude/asks/{askId}/cancel.")
    def cancel_claude_ask(self, info: Info, sandbox_id: strawberry.ID, ask_id: str) -> ClaudeAskResult:
        require_scopes(info, EXECUTE)
        sandbox = _sandbox(info, sandbox_id, selectors.USE)
        ask = asks.ask_cancel(ask=agent_selectors.ask_get(sandbox=sandbox, ask_id=ask_id))
        return answer(ClaudeAskResult, agent_api.ClaudeAskSerializer, ask)

    @strawberry.mutation(description="As POST /sandboxes/{id}/claude/approve: merges Claude's pending changes.")
    def approve_changes(self, info: Info, sandbox_id: strawberry.ID, session_id: str | None = None) -> ReviewResult:
        return _review(info, sandbox_id, session_id, approve=True)

    @strawberry.mutation(description="As POST /sandboxes/{id}/claude/reject: drops Claude's pending changes.")
    def reject_changes(self, info: Info, sandbox_id: strawberry.ID, session_id: str | None = None) -> ReviewResult:
        return _review(info, sandbox_id, session_id, approve=False)

    # -- agent runs (docs/api.md, "Agent runs") --

    @strawberry.mutation(
        description="As POST /agent-runs: records an orchestration run and its tasks. Needs sandboxes:write and "
        "sandboxes.create."
    )
    def create_agent_run(self, info: Info, input: CreateAgentRunInput) -> AgentRun:
        require_scopes(info, SANDBOXES_WRITE)
        actor = _actor(info)
        actor.require("sandboxes.create")
        data = validated(run_api.AgentRunCreateSerializer, input)
        run = agent_runs.agent_run_create_from(actor=actor, owner=_user(info), api_key=_key(info), data=data)
        return _agent_run_answer(info, run)

    @strawberry.mutation(
        description="As PATCH /agent-runs/{id}: ends a running run as completed, failed or cancelled (cancelling "
        "also cancels its open tasks); a finished run cannot change again (agent_run_finished)."
    )
    def finish_agent_run(self, info: Info, id: strawberry.ID, status: str) -> AgentRun:
        run = _agent_run(info, id)
        data = validated(run_api.AgentRunUpdateSerializer, {"status": status})
        return _agent_run_answer(info, agent_runs.agent_run_finish_from(run=run, data=data))

    @strawberry.mutation(description="As DELETE /agent-runs/{id}: the run and its tasks.")
    def delete_agent_run(self, info: Info, id: strawberry.ID) -> Deleted:
        run = _agent_run(info, id)
        agent_runs.agent_run_delete(run=run)
        return Deleted(id=run.pk)

    @strawberry.mutation(
        description="As POST /agent-runs/{id}/tasks: appends tasks to a running run (their indexes continue)."
    )
    def add_agent_tasks(self, info: Info, run_id: strawberry.ID, tasks: list[AgentTaskInput]) -> list[AgentTask]:
        run = _agent_run(info, run_id)
        data = validated(run_api.AgentTasksAddSerializer, {"tasks": _plain(tasks)})
        return [AgentTask.of(task) for task in agent_runs.agent_tasks_add_from(run=run, data=data)]

    @strawberry.mutation(
        description="As PATCH /agent-runs/{id}/tasks/{taskId}: a task's progress (a finished task keeps its status: "
        "agent_task_finished)."
    )
    def update_agent_task(
        self, info: Info, run_id: strawberry.ID, task_id: str, input: UpdateAgentTaskInput
    ) -> AgentTask:
        task = agent_runs.agent_task_get(run=_agent_run(info, run_id), task_id=task_id)
        if input.sandbox_id:  # a global id or the REST id, as the REST body's
            input.sandbox_id = raw_id(input.sandbox_id, "Sandbox")
        data = validated(run_api.AgentTaskUpdateSerializer, input)
        return AgentTask.of(agent_runs.agent_task_update_from(task=task, data=data))

    # -- API keys --

    @strawberry.mutation(description="As POST /keys: the new key's secret is in `key`, shown only here.")
    def create_api_key(self, info: Info, input: CreateApiKeyInput) -> ApiKeyWithSecret:
        import datetime as dt

        from django.utils import timezone

        require_scopes(info, KEYS_MANAGE)
        data = validated(key_api.ApiKeyCreateSerializer, input)
        expires_at = data.get("expiresAt")
        if data.get("expiresIn") is not None:
            expires_at = timezone.now() + dt.timedelta(seconds=data["expiresIn"])
        org = org_selectors.org_get(user=_user(info), slug=data["org"]) if data.get("org") else None
        key, secret = key_services.api_key_create(
            user=_user(info),
            name=data["name"],
            org=org,
            scopes=data.get("scopes"),
            expires_at=expires_at,
            test=data["test"],
            rate_limit=data["rateLimit"],
            creator=_key(info),
        )
        return ApiKeyWithSecret(api_key=_api_key(key), key=secret)

    @strawberry.mutation(description="As POST /keys/{id}/rotate: a new key; the old one works for gracePeriod.")
    def rotate_api_key(
        self, info: Info, id: strawberry.ID, grace_period: Duration | None = strawberry.UNSET
    ) -> ApiKeyWithSecret:
        require_scopes(info, KEYS_MANAGE)
        data = validated(
            key_api.ApiKeyRotateSerializer, {} if grace_period is strawberry.UNSET else {"gracePeriod": grace_period}
        )
        key = key_selectors.api_key_get(user=_user(info), id=raw_id(id, "ApiKey"))
        new_key, secret = key_services.api_key_rotate(
            key=key, grace_seconds=data.get("gracePeriod"), creator=_key(info)
        )
        return ApiKeyWithSecret(api_key=_api_key(new_key), key=secret)

    @strawberry.mutation(description="As DELETE /keys/{id}: answers the revoked key.")
    def revoke_api_key(self, info: Info, id: strawberry.ID) -> ApiKey:
        require_scopes(info, KEYS_MANAGE)
        key = key_selectors.api_key_get(user=_user(info), id=raw_id(id, "ApiKey"), manager=_actor(info))
        return _api_key(key_services.api_key_revoke(key=key, creator=_key(info)))

    # -- webhooks --

    @strawberry.mutation(description="As POST /webhooks: its signing `secret` is shown only here.")
    def create_webhook(self, info: Info, input: CreateWebhookInput) -> WebhookWithSecret:
        require_scopes(info, WEBHOOKS_MANAGE)
        data = validated(webhook_api.WebhookCreateSerializer, input)
        webhook, secret = webhook_services.webhook_create(actor=_actor(info), **data)
        return WebhookWithSecret(webhook=_webhook(webhook), secret=secret)

    @strawberry.mutation(description="As PATCH /webhooks/{id}.")
    def update_webhook(self, info: Info, id: strawberry.ID, input: UpdateWebhookInput) -> Webhook:
        require_scopes(info, WEBHOOKS_MANAGE)
        actor = _actor(info)
        webhook = webhook_selectors.webhook_get(actor=actor, id=raw_id(id, "Webhook"))
        data = validated(webhook_api.WebhookUpdateSerializer, input)
        webhook = webhook_services.webhook_update(actor=actor, webhook=webhook, **data)
        return _webhook(webhook)

    @strawberry.mutation(description="As DELETE /webhooks/{id}.")
    def delete_webhook(self, info: Info, id: strawberry.ID) -> Deleted:
        require_scopes(info, WEBHOOKS_MANAGE)
        actor = _actor(info)
        webhook = webhook_selectors.webhook_get(actor=actor, id=raw_id(id, "Webhook"))
        webhook_id = webhook.id
        webhook_services.webhook_delete(actor=actor, webhook=webhook)
        return Deleted(id=webhook_id)

    @strawberry.mutation(description="As POST /webhooks/{id}/rotate-secret: the previous secret signs beside it 24 h.")
    def rotate_webhook_secret(self, info: Info, id: strawberry.ID) -> WebhookWithSecret:
        require_scopes(info, WEBHOOKS_MANAGE)
        actor = _actor(info)
        webhook = webhook_selectors.webhook_get(actor=actor, id=raw_id(id, "Webhook"))
        webhook, secret = webhook_services.webhook_rotate_secret(actor=actor, webhook=webhook)
        return WebhookWithSecret(webhook=_webhook(webhook), secret=secret)

    @strawberry.mutation(description="As POST /webhooks/{id}/test: queues a webhook.test event to it.")
    def test_webhook(self, info: Info, id: strawberry.ID) -> WebhookDelivery:
        require_scopes(info, WEBHOOKS_MANAGE)
        actor = _actor(info)
        webhook = webhook_selectors.webhook_get(actor=actor, id=raw_id(id, "Webhook"))
        return _delivery(webhook_services.webhook_test(actor=actor, webhook=webhook))

    @strawberry.mutation(description="As POST /webhooks/{id}/deliveries/{deliveryId}/redeliver.")
    def redeliver_webhook_delivery(
        self, info: Info, webhook_id: strawberry.ID, delivery_id: strawberry.ID
    ) -> WebhookDelivery:
        require_scopes(info, WEBHOOKS_MANAGE)
        actor = _actor(info)
        webhook = webhook_selectors.webhook_get(actor=actor, id=raw_id(webhook_id, "Webhook"))
        delivery = webhook_selectors.delivery_get(webhook=webhook, id=raw_id(delivery_id, "WebhookDelivery"))
        return _delivery(
            webhook_services.delivery_redeliver(actor=actor, delivery=delivery),
        )

    # -- organizations, members, invitations --

    @strawberry.mutation(description="As POST /orgs: a new organization, the caller its owner.")
    def create_organization(self, info: Info, input: CreateOrganizationInput) -> OrganizationResult:
        require_scopes(info, ORGS_MANAGE)
        data = validated(org_api.OrganizationCreateSerializer, input)
        return _render_org(info, org_services.org_create(user=_user(info), **data))

    @strawberry.mutation(description="As PATCH /orgs/{slug}: needs org.manage.")
    def update_organization(self, info: Info, slug: str, input: UpdateOrganizationInput) -> OrganizationResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.manage")
        data = dict(validated(org_api.OrganizationUpdateSerializer, input))
        if "registryMirrors" in data:
            data["registry_mirrors"] = data.pop("registryMirrors")
        if "nodeLabels" in data:
            data["node_labels"] = data.pop("nodeLabels")
        return _render_org(info, org_services.org_update(org=org, **data))

    @strawberry.mutation(description="As DELETE /orgs/{slug}: needs org.delete.")
    def delete_organization(self, info: Info, slug: str) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.delete")
        org_id = org.pk
        org_services.org_delete(org=org)
        return Deleted(id=org_id)

    @strawberry.mutation(
        description="As POST /orgs/{slug}/erase: deletion on request (docs/compliance.md). `confirm` repeats the "
        "slug. Needs org.delete."
    )
    def erase_organization(self, info: Info, slug: str, confirm: str) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.delete")
        data = validated(org_api.OrganizationEraseSerializer, {"confirm": confirm})
        org_id = org.pk
        org_services.org_erase(org=org, confirm=data["confirm"])
        return Deleted(id=org_id)

    @strawberry.mutation(
        description="As PUT /orgs/{slug}/sso: creates or replaces the single sign-on connection (OIDC or SAML). "
        "Needs org.manage."
    )
    def set_sso(self, info: Info, slug: str, input: SsoConnectionInput) -> SsoConnectionResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.manage")
        data = validated(sso_api.SsoConnectionSetSerializer, input)
        return _sso(info, sso_services.sso_connection_set(org=org, **data))

    @strawberry.mutation(description="As DELETE /orgs/{slug}/sso: its users and memberships stay. Needs org.manage.")
    def delete_sso(self, info: Info, slug: str) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.manage")
        sso_services.sso_connection_delete(org=org)
        return Deleted(id=slug)

    @strawberry.mutation(
        description="As POST /orgs/{slug}/sso/verify: looks up each unverified domain's TXT record; the ones found "
        "are verified. Needs org.manage."
    )
    def verify_sso_domains(self, info: Info, slug: str) -> SsoConnectionResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "org.manage")
        connection = sso_selectors.connection_of(org=org)
        if connection is None:
            raise errors.SsoNotConfigured(details={"org": slug})
        sso_services.sso_domains_verify(connection=connection)
        return _sso(info, connection)

    @strawberry.mutation(description="As POST /orgs/{slug}/members: adds an existing user. Needs members.manage.")
    def add_member(self, info: Info, slug: str, input: AddMemberInput) -> MemberResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.MemberAddSerializer, input)
        membership = org_services.member_add(
            org=org, user_ref=data.get("username") or data["email"], role=data["role"], by=_user(info)
        )
        return answer(MemberResult, org_api.MemberSerializer, membership)

    @strawberry.mutation(description="As PATCH /orgs/{slug}/members/{id}: a member's role. Needs members.manage.")
    def update_member(self, info: Info, slug: str, member_id: strawberry.ID, role: str) -> MemberResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.MemberUpdateSerializer, {"role": role})
        membership = org_selectors.member_get(org=org, id=raw_id(member_id, "Member"))
        membership = org_services.member_update(membership=membership, role=data["role"], by=_user(info))
        return answer(MemberResult, org_api.MemberSerializer, membership)

    @strawberry.mutation(description="As DELETE /orgs/{slug}/members/{id}: members.manage, or yourself (leaving).")
    def remove_member(self, info: Info, slug: str, member_id: strawberry.ID) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        user = _user(info)
        org = _org(info, slug)
        membership = org_selectors.member_get(org=org, id=raw_id(member_id, "Member"))
        if membership.user_id != user.pk:
            actor_in(user=user, org=org).require("members.manage")
        member_id = str(membership.pk)
        org_services.member_remove(membership=membership, by=user)
        return Deleted(id=member_id)

    @strawberry.mutation(
        description="As POST /orgs/{slug}/invitations: emails a signed link. Needs members.manage and the role's "
        "permissions; an address invited already gets it again."
    )
    def invite_member(self, info: Info, slug: str, email: str, role: str) -> InvitationResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.InvitationCreateSerializer, {"email": email, "role": role})
        invitation, _created = org_services.invitation_create(org=org, by=_user(info), base_url=_base_url(info), **data)
        return answer(InvitationResult, org_api.InvitationSerializer, invitation)

    @strawberry.mutation(description="As DELETE /orgs/{slug}/invitations/{id}: the link stops working.")
    def revoke_invitation(self, info: Info, slug: str, invitation_id: strawberry.ID) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        invitation = org_selectors.invitation_get(org=org, id=raw_id(invitation_id, "Invitation"))
        invitation_id = str(invitation.pk)
        org_services.invitation_revoke(invitation=invitation, by=_user(info))
        return Deleted(id=invitation_id)

    @strawberry.mutation(
        description="As POST /invitations/accept: the caller joins the organization of the invitation link's "
        "token with the invited role; answers the organization."
    )
    def accept_invitation(self, info: Info, token: str) -> OrganizationResult:
        require_scopes(info, ORGS_MANAGE)
        data = validated(org_api.InvitationAcceptSerializer, {"token": token})
        invitation = org_selectors.invitation_by_token(token=data["token"])
        org_services.invitation_accept(invitation=invitation, user=_user(info))
        return _render_org(info, invitation.org)

    @strawberry.mutation(description="As POST /orgs/{slug}/invitations/{id}/resend: the email again, a fresh expiry.")
    def resend_invitation(self, info: Info, slug: str, invitation_id: strawberry.ID) -> InvitationResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        invitation = org_selectors.invitation_get(org=org, id=raw_id(invitation_id, "Invitation"))
        org_services.invitation_resend(invitation=invitation, by=_user(info), base_url=_base_url(info))
        return answer(InvitationResult, org_api.InvitationSerializer, invitation)

    # -- roles and teams (members.manage) --

    @strawberry.mutation(description="As POST /orgs/{slug}/roles: a custom role (you must hold what it grants).")
    def create_role(
        self, info: Info, slug: str, name: str, permissions: list[str], description: str | None = strawberry.UNSET
    ) -> RoleResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        body = _given(name=name, permissions=permissions, description=description)
        role = org_services.role_create(org=org, by=_user(info), **validated(org_api.RoleCreateSerializer, body))
        return _role(role)

    @strawberry.mutation(description="As PATCH /orgs/{slug}/roles/{name}: every holder's permissions change at once.")
    def update_role(
        self,
        info: Info,
        slug: str,
        name: str,
        permissions: list[str] | None = strawberry.UNSET,
        description: str | None = strawberry.UNSET,
    ) -> RoleResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        _not_builtin(name)
        data = validated(org_api.RoleUpdateSerializer, _given(permissions=permissions, description=description))
        role = org_selectors.role_get(org=org, name=name)
        return _role(org_services.role_update(role=role, by=_user(info), **data))

    @strawberry.mutation(description="As DELETE /orgs/{slug}/roles/{name} (refused while someone holds it).")
    def delete_role(self, info: Info, slug: str, name: str) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        _not_builtin(name)
        org_services.role_delete(role=org_selectors.role_get(org=org, name=name), by=_user(info))
        return Deleted(id=name)

    @strawberry.mutation(description="As POST /orgs/{slug}/teams.")
    def create_team(self, info: Info, slug: str, name: str, role: str | None = strawberry.UNSET) -> TeamResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.TeamCreateSerializer, _given(name=name, role=role))
        team = org_services.team_create(org=org, by=_user(info), **data)
        return answer(TeamResult, org_api.TeamSerializer, org_selectors.team_get(org=org, name=team.name))

    @strawberry.mutation(description='As PATCH /orgs/{slug}/teams/{name}: `newName`, `role` ("" takes it away).')
    def update_team(
        self,
        info: Info,
        slug: str,
        name: str,
        new_name: str | None = strawberry.UNSET,
        role: str | None = strawberry.UNSET,
    ) -> TeamResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.TeamUpdateSerializer, _given(name=new_name, role=role))
        team = org_services.team_update(team=org_selectors.team_get(org=org, name=name), by=_user(info), **data)
        return answer(TeamResult, org_api.TeamSerializer, org_selectors.team_get(org=org, name=team.name))

    @strawberry.mutation(description="As DELETE /orgs/{slug}/teams/{name}.")
    def delete_team(self, info: Info, slug: str, name: str) -> Deleted:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        org_services.team_delete(team=org_selectors.team_get(org=org, name=name), by=_user(info))
        return Deleted(id=name)

    @strawberry.mutation(description="As POST /orgs/{slug}/teams/{name}/members: adds a member of the organization.")
    def add_team_member(self, info: Info, slug: str, team: str, username: str) -> TeamResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        data = validated(org_api.TeamMemberAddSerializer, {"username": username})
        found = org_selectors.team_get(org=org, name=team)
        org_services.team_member_add(team=found, user_ref=data["username"], by=_user(info))
        return answer(TeamResult, org_api.TeamSerializer, org_selectors.team_get(org=org, name=team))

    @strawberry.mutation(description="As DELETE /orgs/{slug}/teams/{name}/members/{username}.")
    def remove_team_member(self, info: Info, slug: str, team: str, username: str) -> TeamResult:
        require_scopes(info, ORGS_MANAGE)
        org = _org(info, slug, "members.manage")
        found = org_selectors.team_get(org=org, name=team)
        org_services.team_member_remove(team=found, user_ref=username, by=_user(info))
        return answer(TeamResult, org_api.TeamSerializer, org_selectors.team_get(org=org, name=team))

    # -- the marketplace --

    @strawberry.mutation(
        description="As POST /marketplace/templates/{name}/reviews: rates a template (1-5) you created a sandbox "
        "from; sent again it is edited."
    )
    def rate_template(self, info: Info, name: str, rating: int, text: str | None = None) -> TemplateReview:
        actor, template = _market_template(info, name)
        data = validated(
            market_api.ReviewWriteSerializer, {"rating": rating, **({} if text is None else {"text": text})}
        )
        review, _created = market_services.review_upsert(actor, template=template, **data)
        return answer(TemplateReview, market_api.ReviewSerializer, review)

    @strawberry.mutation(
        description="As POST /marketplace/submissions (JSON): queues a template version for validation. Needs "
        "templates.submit."
    )
    def submit_template(self, info: Info, input: SubmitTemplateInput) -> TemplateSubmissionDetail:
        require_scopes(info, TEMPLATES_SUBMIT)
        data = validated(market_api.SubmissionCreateSerializer, input)
        submission = market_services.submission_create_from(_actor(info), data=data)
        return answer(TemplateSubmissionDetail, market_api.SubmissionDetailSerializer, submission)

    @strawberry.mutation(description="As POST /marketplace/submissions/{id}/cancel: a queued submission.")
    def cancel_template_submission(self, info: Info, id: strawberry.ID) -> TemplateSubmission:
        require_scopes(info, TEMPLATES_SUBMIT)
        submission = market_services.submission_cancel(_actor(info), str(id))
        return answer(TemplateSubmission, market_api.SubmissionSerializer, submission)

    @strawberry.mutation(
        description="As POST /marketplace/submissions/{id}/review: approve (publish) or reject (with a reason). "
        "Public submissions: staff only."
    )
    def review_template_submission(
        self, info: Info, id: strawberry.ID, approve: bool, reason: str | None = strawberry.UNSET
    ) -> TemplateSubmission:
        require_scopes(info, TEMPLATES_SUBMIT)
        data = validated(market_api.SubmissionReviewSerializer, _given(approve=approve, reason=reason))
        submission = market_services.submission_review(
            _actor(info), str(id), approve=data["approve"], reason=data.get("reason", "")
        )
        return answer(TemplateSubmission, market_api.SubmissionSerializer, submission)

    @strawberry.mutation(
        description="As POST /marketplace/templates/{name}/versions/{version}/yank: hides a version from new "
        "creates. The template's organization's admins or staff."
    )
    def yank_template_version(
        self, info: Info, name: str, version: str, reason: str | None = strawberry.UNSET
    ) -> TemplateVersion:
        actor, template = _market_template(info, name)
        data = validated(market_api.YankSerializer, _given(reason=reason))
        row = market_services.version_yank(actor, template=template, version=version, reason=data["reason"])
        return answer(TemplateVersion, market_api.TemplateVersionSerializer, row)

    @strawberry.mutation(
        description="As POST /marketplace/templates/{name}/deprecate: sets or clears (empty message) a deprecation "
        "notice with a suggested replacement."
    )
    def deprecate_template(
        self, info: Info, name: str, message: str, replacement: str | None = strawberry.UNSET
    ) -> MarketplaceTemplateDetail:
        actor, template = _market_template(info, name)
        data = validated(market_api.DeprecateSerializer, _given(message=message, replacement=replacement))
        return _catalogue(actor, market_services.template_deprecate(actor, template=template, **data))

    @strawberry.mutation(
        description="As POST /marketplace/templates/{name}/feature: staff feature a template (a lower rank first)."
    )
    def feature_template(
        self, info: Info, name: str, featured: bool, rank: int | None = strawberry.UNSET
    ) -> MarketplaceTemplateDetail:
        actor, template = _market_template(info, name)
        data = validated(market_api.FeatureSerializer, _given(featured=featured, rank=rank))
        return _catalogue(actor, market_services.template_feature(actor, template=template, **data))

    # -- billing --

    @strawberry.mutation(
        description="As PUT /billing/plan: the organization on another plan from now or `effectiveFrom` (changes "
        "scheduled after it are dropped). Needs billing.manage; audited."
    )
    def change_plan(self, info: Info, plan: str, effective_from: str | None = strawberry.UNSET) -> OrgPlan:
        require_scopes(info, BILLING_MANAGE)
        data = validated(billing_api.PlanChangeSerializer, _given(plan=plan, effectiveFrom=effective_from))
        actor = _actor(info)
        billing_services.plan_change(actor=actor, plan=data["plan"], effective_from=data.get("effectiveFrom"))
        return answer(
            OrgPlan, billing_api.OrgPlanSerializer, billing_selectors.org_plan(actor=actor, now=timezone.now())
        )

    @strawberry.mutation(
        description="As POST /billing/checkout: a Stripe Checkout session (setup mode: nothing is charged) where a "
        "billing manager gives the payment method; payments_not_configured when this server takes none."
    )
    def start_checkout(
        self, info: Info, success_url: str | None = strawberry.UNSET, cancel_url: str | None = strawberry.UNSET
    ) -> CheckoutSession:
        require_scopes(info, BILLING_MANAGE)
        actor = _actor(info)
        payments.checkout_check(actor=actor)
        data = validated(billing_invoice_api.CheckoutSerializer, _given(successUrl=success_url, cancelUrl=cancel_url))
        session = payments.checkout_start_from(actor=actor, data=data, origin=_origin(info))
        return answer(CheckoutSession, billing_invoice_api.CheckoutSessionSerializer, session)
