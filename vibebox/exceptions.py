"""Application errors: each has a stable code and an HTTP status.

Services raise these; the API's exception handler renders them in the error envelope
`{"error": {"code", "message", "details"}, "requestId"}`. The registry below is the one
list of codes; both SDKs map the same codes to exception classes.
"""

ERROR_CODES: dict[str, int] = {}


def _register(cls):
    ERROR_CODES[cls.code] = cls.status
    return cls


class ApplicationError(Exception):
    code = "internal_error"
    status = 500
    message = "Internal server error."

    def __init__(self, message: str | None = None, *, details: dict | None = None, headers: dict | None = None):
        self.message = message or self.message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)


def error(code: str, status: int, message: str) -> type[ApplicationError]:
    """Declare an error class in one line and register its code."""
    name = "".join(part.title() for part in code.split("_")) + "Error"
    return _register(type(name, (ApplicationError,), {"code": code, "status": status, "message": message}))


_register(ApplicationError)

# Generic request errors (also produced by the handler from DRF/Django exceptions).
ValidationFailed = error("validation_error", 400, "The request is invalid.")
UnknownField = error("unknown_field", 400, "The request has fields this endpoint does not accept.")
InvalidDuration = error("invalid_duration", 400, "Invalid duration.")
InvalidSize = error("invalid_size", 400, "Invalid size.")
InvalidJson = error("invalid_json", 400, "The request body is not valid JSON.")
# No field takes one: PostgreSQL stores none (in text or jsonb) and compares none.
NulCharacter = error("nul_character", 400, "The request holds a NUL character (\\u0000, %00), which no field takes.")
NotAuthenticated = error("not_authenticated", 401, "Authentication credentials were not provided.")
InvalidApiKey = error("invalid_api_key", 401, "The API key is invalid, expired or revoked.")
PermissionDenied = error("permission_denied", 403, "You do not have permission to do this.")
InsufficientScope = error("insufficient_scope", 403, "The API key lacks a scope this endpoint needs.")
NotFound = error("not_found", 404, "Not found.")
MethodNotAllowed = error("method_not_allowed", 405, "Method not allowed.")
NotAcceptable = error("not_acceptable", 406, "Not acceptable.")
UnsupportedMediaType = error("unsupported_media_type", 415, "Unsupported media type; send application/json.")
RateLimited = error("rate_limited", 429, "Too many requests.")
TooManyStreams = error("too_many_streams", 429, "Too many open streams, background processes or terminals.")

# Sandboxes.
SandboxNotFound = error("sandbox_not_found", 404, "Sandbox not found.")
SandboxStateConflict = error("sandbox_state_conflict", 409, "The sandbox is not in a state that allows this.")
# Recover (services/recovery.py): details.reason says why (image_missing).
SandboxUnrecoverable = error("sandbox_unrecoverable", 409, "The sandbox cannot be recovered.")
SandboxNameTaken = error("sandbox_name_taken", 409, "A sandbox with this name already exists.")
SandboxNameAmbiguous = error(
    "sandbox_name_ambiguous", 409, "Several members' sandboxes have this name; use the sandbox's id."
)
InvalidMetadata = error("invalid_metadata", 400, "Metadata must be a map of short strings.")
MetadataTooLarge = error("metadata_too_large", 400, "Metadata is too large.")
InvalidResources = error("invalid_resources", 400, "Invalid resources.")
DiskLimitUnsupported = error("disk_limit_unsupported", 400, "This engine's storage driver cannot limit disk size.")
# Ephemeral sandboxes' own limits (VIBEBOX_EPHEMERAL_*): details name the limit and the value asked.
EphemeralTimeoutTooLong = error(
    "ephemeral_timeout_too_long", 400, "An ephemeral sandbox's timeout is above this server's maximum."
)
EphemeralResourcesTooLarge = error(
    "ephemeral_resources_too_large", 400, "An ephemeral sandbox asks for more CPU or memory than this server allows."
)
EphemeralLimitReached = error(
    "ephemeral_limit_reached", 409, "The organization has as many live ephemeral sandboxes as this server allows."
)
QuotaExceeded = error("quota_exceeded", 402, "Quota exceeded.")  # details: quota, limit, used, requested
GrantNotFound = error("grant_not_found", 404, "No such grant on this sandbox.")
# Placement (apps/sandboxes/services/placement.py, docs/nodes.md "Placement"): no engine has room.
NoCapacity = error("no_capacity", 503, "No engine has room for this sandbox right now; try again later.")
NoMatchingNode = error("no_matching_node", 400, "No engine of this server has the node labels asked for.")
# Node labels required with two values for one key (a create's, its template's, its organization's,
# its snapshot's: apps/orgs/labels.py labels_merge). details: key, values {where: value}.
NodeLabelsConflict = error("node_labels_conflict", 400, "A node label is required with two different values.")

# Templates.
TemplateNotFound = error("template_not_found", 404, "Template not found.")
UnknownTemplate = error("unknown_template", 400, "Unknown template.")
TemplateUnavailable = error("template_unavailable", 503, "The template's image is not built on this server.")
TemplateBuilding = error(
    "template_building", 503, "The template's image is still being built; retry after Retry-After seconds."
)
UnknownTemplateVersion = error("unknown_template_version", 400, "The template has no such published version.")
TemplateVersionYanked = error("template_version_yanked", 400, "This template version was yanked.")

# The marketplace (docs/marketplace.md).
SubmissionNotFound = error("submission_not_found", 404, "Submission not found.")
SubmissionStateConflict = error("submission_state_conflict", 409, "The submission is not in a state that allows this.")
InvalidTemplateYaml = error("invalid_template_yaml", 400, "template.yaml is invalid.")
InvalidDockerfile = error("invalid_dockerfile", 400, "The Dockerfile is invalid.")
InvalidBuildContext = error("invalid_build_context", 400, "The build context is not a safe tar archive.")
BuildContextTooLarge = error("build_context_too_large", 400, "The build context is too large.")
TemplateNameTaken = error(
    "template_name_taken", 409, "This template name belongs to another organization or a built-in."
)
TemplateVersionNotFound = error("template_version_not_found", 404, "The template has no such version.")
ReviewNotAllowed = error(
    "review_not_allowed", 403, "Only users who created a sandbox from this template may review it."
)

# Organizations.
OrgNotFound = error("org_not_found", 404, "Organization not found.")
MemberNotFound = error("member_not_found", 404, "Member not found.")
UserNotFound = error("user_not_found", 404, "No user with this username or email.")
OrgSlugTaken = error("org_slug_taken", 409, "An organization with this slug already exists.")
AlreadyMember = error("already_member", 409, "The user is already a member of this organization.")
LastOwner = error("last_owner", 409, "An organization keeps at least one owner.")
OrgNotEmpty = error("org_not_empty", 409, "The organization still has sandboxes or snapshots.")
PersonalOrg = error("personal_org", 409, "A personal organization has one member and is never deleted.")
UnknownRole = error("unknown_role", 400, "No such role in this organization.")
UserRequired = error("user_required", 400, "Name the user: username or email.")
UnknownPermission = error("unknown_permission", 400, "No such permission (see the documented list).")
RoleNameTaken = error("role_name_taken", 409, "A role with this name already exists here.")
RoleInUse = error("role_in_use", 409, "Members or teams hold this role; give them another first.")
RoleBuiltIn = error("role_built_in", 409, "Built-in roles cannot be changed or deleted; make a custom role.")
TeamNotFound = error("team_not_found", 404, "Team not found.")
TeamNameTaken = error("team_name_taken", 409, "A team with this name already exists here.")
RoleNotFound = error("role_not_found", 404, "Role not found.")
InvitationNotFound = error("invitation_not_found", 404, "No such invitation (a wrong or damaged link, or revoked).")
InvitationExpired = error("invitation_expired", 410, "The invitation has expired; ask for a new one.")
InvitationAccepted = error("invitation_accepted", 410, "The invitation was already accepted.")
InvitationEmailMismatch = error(
    "invitation_email_mismatch", 403, "The invitation was sent to another email address than your account's."
)

# Keys.
KeyNotFound = error("key_not_found", 404, "API key not found.")
ScopeEscalation = error("scope_escalation", 403, "A key cannot create a key broader than itself.")
InvalidScope = error("invalid_scope", 400, "Unknown scope.")
KeyInactive = error("key_inactive", 409, "The key is revoked or expired.")

# Runtime.
RuntimeUnavailable = error("runtime_unavailable", 503, "The container engine is not reachable.")
RuntimeFailure = error("runtime_error", 502, "The container engine failed.")
# A driver (runtime/base.py) that cannot do what was asked on its engine at all: the Kubernetes
# driver's pause, snapshots, image builds... (docs/kubernetes.md). details: feature, runtime.
RuntimeUnsupported = error("runtime_unsupported", 501, "This server's sandbox runtime cannot do that.")
InvalidEnv = error("invalid_env", 400, "Environment variables must be a map of NAME to string.")

# Commands, code, files, environment.
SandboxNotRunning = error("sandbox_not_running", 409, "The sandbox is not running.")
SnapshotNotFound = error("snapshot_not_found", 404, "Snapshot not found.")
SnapshotUnusable = error(
    "snapshot_unusable", 409, "The snapshot cannot be used: its image or workspace archive is missing or damaged."
)
SandboxPaused = error("sandbox_paused", 409, "The sandbox is paused; resume it first (or pass autoResume).")
SandboxUnreachable = error(
    "sandbox_unreachable",
    409,
    "The sandbox's node is down: nothing can reach it until the node returns (a destroy is finished then).",
)
SandboxOutdated = error(
    "sandbox_outdated",
    409,
    "The sandbox's container was made before sandboxd and cannot run commands or file operations; "
    "take a snapshot and restore it (POST …/snapshots, then POST …/restore) to give it a current container.",
)
UnsupportedLanguage = error("unsupported_language", 400, "This sandbox's template cannot run that language.")
ExecutionNotFound = error("execution_not_found", 404, "Execution not found.")
TerminalNotFound = error("terminal_not_found", 404, "Terminal session not found.")
EnvVarNotFound = error("env_var_not_found", 404, "Environment variable not found.")
InvalidPath = error("invalid_path", 400, "Invalid path.")
InvalidArchive = error("invalid_archive", 400, "The archive is invalid or has unsafe entries.")
FileNotFound = error("file_not_found", 404, "No such file or directory in the sandbox.")
FilePermissionDenied = error("file_permission_denied", 403, "Permission denied inside the sandbox.")
PathNotWritable = error("path_not_writable", 403, "The sandbox user cannot write there.")
FileConflict = error("file_conflict", 409, "The file operation conflicts with what is there.")
RequestTooLarge = error("request_too_large", 413, "The request body is too large.")
DiskFull = error("disk_full", 507, "The sandbox's disk is full; free some space and try again.")

# Package managers (apps/sandboxes/services/packages.py, docs/api.md#packages).
InvalidPackageSpec = error("invalid_package_spec", 400, "Invalid package spec.")
UnsupportedPackageManager = error(
    "unsupported_package_manager", 400, "This sandbox's template has no such package manager."
)
PackageListFailed = error("package_list_failed", 422, "The package manager could not list what is installed.")
InvalidRegistryMirror = error(
    "invalid_registry_mirror", 400, "registryMirrors maps a package manager to an http(s) URL without credentials."
)

# Git.
GitCloneFailed = error("git_clone_failed", 422, "Cloning the repository failed.")
GitAuthFailed = error("git_auth_failed", 422, "The git server refused the credentials.")
GitFailed = error("git_error", 422, "The git command failed.")
NotAGitRepository = error("not_a_git_repository", 400, "The path is not a git repository.")
NothingToCommit = error("nothing_to_commit", 409, "There is nothing to commit.")
InvalidGitUrl = error("invalid_git_url", 400, "Invalid repository URL.")
InvalidGitRef = error("invalid_git_ref", 400, "Invalid branch or ref name.")
InvalidGitAuth = error("invalid_git_auth", 400, "Invalid git credentials.")
GitHookNotFound = error("git_hook_not_found", 404, "No such git hook.")
# Missing, wrong or for another provider: one code, so a caller learns nothing about which.
GitHookSignatureInvalid = error(
    "git_hook_signature_invalid", 401, "The webhook's signature or token does not match the hook's secret."
)

# Claude Code.
ClaudeUnavailable = error("claude_unavailable", 409, "This sandbox's template has no Claude Code.")
ClaudeNotEnabled = error("claude_not_enabled", 409, "Claude Code is not enabled on this sandbox; POST claude/enable.")
AskNotFound = error("ask_not_found", 404, "Ask not found.")
AskRunning = error("ask_running", 409, "This session already has a running ask.")
ClaudeDisabledByMode = error(
    "claude_disabled_by_mode", 409, "This sandbox's collaboration mode is human: Claude asks are refused."
)
ClaudeSessionNotFound = error("claude_session_not_found", 404, "Claude session not found.")
NoPendingChanges = error("no_pending_changes", 409, "There are no pending changes to review.")
MergeConflict = error("merge_conflict", 409, "The changes conflict with what /workspace holds now.")

# Agent runs (orchestration records).
AgentRunNotFound = error("agent_run_not_found", 404, "Agent run not found.")
AgentTaskNotFound = error("agent_task_not_found", 404, "Agent task not found.")
AgentRunFinished = error("agent_run_finished", 409, "The agent run is finished; it and its tasks cannot change.")
AgentTaskFinished = error("agent_task_finished", 409, "The agent task is finished; its status cannot change.")

# Limits that cannot be counted (Redis down): writes and new streams are refused (issue 18).
RateLimiterUnavailable = error(
    "rate_limiter_unavailable", 503, "Limits cannot be counted right now (Redis is unreachable); try again shortly."
)

# The database cannot be reached (vibebox/database.py): nothing can be read or written; every
# process reconnects by itself once it is back.
DatabaseUnavailable = error("database_unavailable", 503, "The database is unreachable right now; try again shortly.")

# Single sign-on (apps/sso).
SsoNotConfigured = error("sso_not_configured", 404, "This organization has no single sign-on connection.")
SsoDomainTaken = error("sso_domain_taken", 409, "Another organization's single sign-on already has this email domain.")

# Webhooks (apps/webhooks, docs/webhooks.md).
WebhookNotFound = error("webhook_not_found", 404, "Webhook not found.")
DeliveryNotFound = error("delivery_not_found", 404, "Webhook delivery not found.")
UnknownEvent = error("unknown_event", 400, "No such webhook event (see docs/webhooks.md for the list).")
InvalidWebhookUrl = error("invalid_webhook_url", 400, "The webhook URL is invalid (https://host/path expected).")
WebhookTargetRefused = error(
    "webhook_target_refused",
    400,
    "The webhook URL resolves to a loopback, private, link-local or this host's own address.",
)

# Billing (apps/billing, docs/billing.md).
InvalidBillingWindow = error("invalid_billing_window", 400, "`from` and `to` must be ISO 8601 times with from < to.")
BillingWindowTooLong = error("billing_window_too_long", 400, "The window is too long (see VIBEBOX_BILLING_MAX_WINDOW).")
UnknownGroupBy = error("unknown_group_by", 400, "groupBy must be one of sandbox, template, day, resource.")
UnknownExportFormat = error("unknown_export_format", 400, "format must be csv or jsonl.")
PlanNotFound = error("plan_not_found", 404, "No such plan.")
InvalidEffectiveFrom = error("invalid_effective_from", 400, "effectiveFrom must be now or later.")
PlanCurrencyChange = error(
    "plan_currency_change", 409, "A plan in another currency can only start at the start of a month (UTC)."
)
PlanChangeConflict = error(
    "plan_change_conflict", 409, "Another plan change for the same moment was made at the same time; try again."
)
BillingNotConfigured = error(
    "billing_not_configured", 503, "Billing is not configured on this server (its default plan is missing)."
)
PlanInUse = error(
    "plan_in_use",
    409,
    "The plan is in use: its prices, fee and currency are frozen (add a new plan and move organizations to it).",
)
MixedCurrencies = error(
    "mixed_currencies", 409, "The window spans plans in different currencies; ask for each plan's period apart."
)

# Invoices and payment (apps/billing, docs/billing.md "Invoices and payment").
InvoiceNotFound = error("invoice_not_found", 404, "Invoice not found.")
PaymentsNotConfigured = error(
    "payments_not_configured", 404, "This server takes no payments (VIBEBOX_STRIPE_SECRET_KEY is not set)."
)
StripeSignatureInvalid = error(
    "stripe_signature_invalid", 400, "The Stripe-Signature header does not verify against this body."
)
PaymentProviderUnavailable = error("payment_provider_unavailable", 502, "The payment provider failed; try again.")

# Preview URLs (apps/sandboxes/preview/, docs/api.md "Preview URLs").
InvalidPort = error("invalid_port", 400, "A port is a number from 1 to 65535, and not one the server reserves.")

# Code contexts (apps/sandboxes/contexts.py, docs/api.md "Code contexts").
ContextNotFound = error("context_not_found", 404, "No such code context in this sandbox.")
ContextDead = error(
    "context_dead", 409, "The context's kernel is not running (its sandbox stopped, or it died); restart the context."
)

# Egress policies (apps/orgs/network.py, apps/sandboxes/services/network.py; docs/api.md "Network policy").
EgressUnavailable = error(
    "egress_unavailable",
    503,
    "This server cannot enforce egress policies (VIBEBOX_FIREWALL is off or iptables is missing); "
    "only the platform's policy (internet on, no lists) is possible.",
)

# Metrics (GET /metrics; apps/monitoring/exporter.py, docs/monitoring.md "Metrics").
MetricsTokenRequired = error(
    "metrics_token_required", 401, "GET /metrics needs Authorization: Bearer <VIBEBOX_METRICS_TOKEN>."
)
MetricsLoopbackOnly = error(
    "metrics_loopback_only", 403, "Without VIBEBOX_METRICS_TOKEN, /metrics answers loopback clients only."
)

# The GraphQL API (apps/graphql_api, docs/graphql.md "Limits"): refusals before anything executes.
GraphqlInvalid = error("graphql_invalid", 400, "The GraphQL document is invalid.")
GraphqlTooDeep = error("graphql_too_deep", 400, "The GraphQL query is nested too deeply.")
GraphqlTooComplex = error("graphql_too_complex", 400, "The GraphQL query would cost too much.")
# Apollo's persisted-query links recognise the first by its message: it must stay this word.
PersistedQueryNotFound = error("persisted_query_not_found", 404, "PersistedQueryNotFound")
PersistedQueryNotSupported = error("persisted_query_not_supported", 400, "PersistedQueryNotSupported")
PersistedQueryHashMismatch = error(
    "persisted_query_hash_mismatch", 400, "The persisted query's sha256Hash is not the SHA-256 of its query."
)
GraphqlIntrospectionDisabled = error(
    "graphql_introspection_disabled", 400, "GraphQL introspection is disabled on this server."
)
