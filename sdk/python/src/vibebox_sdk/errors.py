"""Exceptions: one class per kind of server error, all under `VibeBoxError`.

Every error carries the server's stable `code`, its `message`, `status` (HTTP), `details` and the
`request_id` to quote when reporting a problem.

    try:
        vb.get("no-such-box")
    except SandboxNotFoundError as error:
        print(error.code, error.request_id)
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import ExecutionResult


class VibeBoxError(Exception):
    """Base class of every error the SDK raises."""

    default_code = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.status = status
        self.details = details or {}
        self.request_id = request_id

    def __str__(self) -> str:
        suffix = f" (code={self.code}" + (f", request_id={self.request_id})" if self.request_id else ")")
        return f"{self.message}{suffix}"


class ConnectionError(VibeBoxError):
    """The server could not be reached (refused, reset, DNS), after the retries."""

    default_code = "connection_error"


class TimeoutError(VibeBoxError, builtins.TimeoutError):
    """A request took longer than its timeout, or a command run with `run()` timed out."""

    default_code = "timeout"


class NotSupportedError(VibeBoxError):
    """This server has no endpoint for the call (an older server, or a feature not built yet)."""

    default_code = "not_supported"


class ValidationError(VibeBoxError):
    """400: the request was refused as invalid (see `code` and `details`)."""

    default_code = "validation_error"


class UnknownPermissionError(ValidationError):
    """400: a role names a permission that does not exist (`details["unknown"]` lists them)."""

    default_code = "unknown_permission"


class InvalidPackageSpecError(ValidationError):
    """400: a package spec is not a name and version in the manager's syntax (options such as
    `-r file` are never accepted); `details` has its `index`, `spec` and `reason`."""

    default_code = "invalid_package_spec"


class UnsupportedPackageManagerError(ValidationError):
    """400: the sandbox's template has no such package manager; `supported` lists those it has."""

    default_code = "unsupported_package_manager"

    @property
    def supported(self) -> list[str]:
        return list(self.details.get("supported", []))


class UnknownEventError(ValidationError):
    """400: a webhook names an event that does not exist (`details["unknown"]` lists them,
    `details["known"]` every name there is)."""

    default_code = "unknown_event"


class InvalidWebhookUrlError(ValidationError):
    """400: the webhook URL is not accepted (`http` on a server that allows only `https`, a bad port)."""

    default_code = "invalid_webhook_url"


class WebhookTargetRefusedError(ValidationError):
    """400: the webhook URL's host resolves to a loopback, private, link-local or the server's own
    address (`details["addresses"]`)."""

    default_code = "webhook_target_refused"


class RequestTooLargeError(ValidationError):
    """413: the request body (an upload, stdin, code, a task result...) is above the server's limit;
    `details["limit"]` says how many bytes fit."""

    default_code = "request_too_large"


PayloadTooLargeError = RequestTooLargeError  # its old name (older servers answered payload_too_large)


class AuthenticationError(VibeBoxError):
    """401: no API key, or a wrong, expired or revoked one."""

    default_code = "invalid_api_key"


class PermissionDeniedError(VibeBoxError):
    """403: the key lacks a scope, or the sandbox user may not do that."""

    default_code = "permission_denied"


class QuotaExceededError(PermissionDeniedError):
    """402: a quota or the budget is used up (`details`: `quota`, `limit`, `used`, `requested`);
    nothing was done. Still a PermissionDeniedError for one release: it used to be a 403."""

    default_code = "quota_exceeded"


class NotFoundError(VibeBoxError):
    """404: no such object (or someone else's)."""

    default_code = "not_found"


class SandboxNotFoundError(NotFoundError):
    default_code = "sandbox_not_found"


class TemplateNotFoundError(NotFoundError):
    default_code = "template_not_found"


class KeyNotFoundError(NotFoundError):
    default_code = "key_not_found"


class OrgNotFoundError(NotFoundError):
    """404: no organization of yours with this slug; a key sees only the organization it acts in."""

    default_code = "org_not_found"


class MemberNotFoundError(NotFoundError):
    default_code = "member_not_found"


class UserNotFoundError(NotFoundError):
    """404: adding a member: no user with this username or email."""

    default_code = "user_not_found"


class RoleNotFoundError(NotFoundError):
    """404: no role of this name in the organization (built-in or custom)."""

    default_code = "role_not_found"


class TeamNotFoundError(NotFoundError):
    default_code = "team_not_found"


class GrantNotFoundError(NotFoundError):
    """404: no grant with this id on this sandbox."""

    default_code = "grant_not_found"


class InvitationNotFoundError(NotFoundError):
    """404: no pending invitation with this id, or a wrong, changed or revoked link."""

    default_code = "invitation_not_found"


class InvitationEmailMismatchError(PermissionDeniedError):
    """403: the invitation was sent to another email address than your account's."""

    default_code = "invitation_email_mismatch"


class WebhookNotFoundError(NotFoundError):
    """404: no webhook with this id in the organization (another organization's is one too)."""

    default_code = "webhook_not_found"


class DeliveryNotFoundError(NotFoundError):
    """404: no delivery with this id of this webhook."""

    default_code = "delivery_not_found"


class ExecutionNotFoundError(NotFoundError):
    default_code = "execution_not_found"


class EnvVarNotFoundError(NotFoundError):
    default_code = "env_var_not_found"


class TerminalNotFoundError(NotFoundError):
    default_code = "terminal_not_found"


class SandboxFileNotFoundError(NotFoundError):
    default_code = "file_not_found"


class ConflictError(VibeBoxError):
    """409: the request clashes with the object's state (name taken, wrong state, file exists...)."""

    default_code = "conflict"


class SandboxNotRunningError(ConflictError):
    default_code = "sandbox_not_running"


class SandboxPausedError(SandboxNotRunningError):
    """409: the sandbox is paused; resume it, or pass `auto_resume=True`."""

    default_code = "sandbox_paused"


class SandboxUnreachableError(SandboxNotRunningError):
    """409: the sandbox's node is down; nothing reaches it until the node returns (its status
    then follows the node's engine). A destroy is accepted and finished when the node returns."""

    default_code = "sandbox_unreachable"


class SandboxOutdatedError(ConflictError):
    """409: the sandbox's container was made before sandboxd (an upgraded server) and cannot run
    commands or file operations; snapshot it and restore the snapshot to give it a current one."""

    default_code = "sandbox_outdated"


class LastOwnerError(ConflictError):
    """409: an organization keeps at least one owner: make another member an owner first."""

    default_code = "last_owner"


class OrgNotEmptyError(ConflictError):
    """409: the organization still has sandboxes or snapshots (`details["sandboxes"]`,
    `details["snapshots"]`): destroy them before deleting it."""

    default_code = "org_not_empty"


class RoleNameTakenError(ConflictError):
    """409: the organization has a role of this name already, or it is a built-in role's name."""

    default_code = "role_name_taken"


class RoleBuiltInError(ConflictError):
    """409: built-in roles (owner, admin, developer, viewer, billing) are never changed or deleted."""

    default_code = "role_built_in"


class RoleInUseError(ConflictError):
    """409: members or teams hold this role: give them another one before deleting it."""

    default_code = "role_in_use"


class TeamNameTakenError(ConflictError):
    """409: the organization has a team of this name already."""

    default_code = "team_name_taken"


class SnapshotNotFoundError(NotFoundError):
    default_code = "snapshot_not_found"


class SnapshotUnusableError(ConflictError):
    """409: the snapshot's image or workspace archive is missing or damaged (`details["reason"]`);
    a restore that is refused this way leaves the sandbox as it was."""

    default_code = "snapshot_unusable"


class SandboxUnrecoverableError(ConflictError):
    """409: `recover()` cannot make the sandbox's container again: its image is gone
    (`details["reason"]` `image_missing`; a snapshot's image comes back with `restore --snapshots`)."""

    default_code = "sandbox_unrecoverable"


class ClaudeUnavailableError(ConflictError):
    """409: the sandbox's template has no Claude Code (use `node-22-claude-code`)."""


class ClaudeNotEnabledError(ConflictError):
    """409: call `sandbox.claude.enable()` first."""


class AskNotFoundError(NotFoundError):
    pass


class ClaudeSessionNotFoundError(NotFoundError):
    pass


class AskRunningError(ConflictError):
    """409: that Claude session already has a running ask."""


class ClaudeDisabledByModeError(ConflictError):
    """409: the sandbox's collaboration mode is `human`; set `assist` or `autonomous` to ask Claude."""


class NoPendingChangesError(ConflictError):
    """409: there are no Claude changes waiting for review."""


class MergeConflictError(ConflictError):
    """409: Claude's changes conflict with /workspace; nothing was applied (`files`, `conflicts`)."""

    @property
    def files(self) -> list[str]:
        return list(self.details.get("files", []))


class GoneError(VibeBoxError):
    """410: the object existed but cannot be used any more (an expired or used invitation)."""

    default_code = "gone"


class InvitationExpiredError(GoneError):
    """410: the invitation's link has expired; the organization can send it again (renewed)."""

    default_code = "invitation_expired"


class InvitationAcceptedError(GoneError):
    """410: the invitation was accepted already."""

    default_code = "invitation_accepted"


class GitError(VibeBoxError):
    """422: git itself failed (clone, credentials, any other git error); `details["git"]` has its message."""

    default_code = "git_error"


class PackageListFailedError(VibeBoxError):
    """422: the package manager could not list what is installed (`details`: `reason`, `exitCode`, `stderr`)."""

    default_code = "package_list_failed"


class RateLimitError(VibeBoxError):
    """429: too many requests; `retry_after` is in seconds."""

    default_code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(VibeBoxError):
    """5xx: the server or its container engine failed."""

    default_code = "internal_error"


class ServiceUnavailableError(ServerError):
    default_code = "runtime_unavailable"


class TemplateUnavailableError(ServiceUnavailableError):
    """503: the template's image is not built on this server, or its build failed
    (`details["buildState"]` is `failed`); `vibebox templates` shows why."""

    default_code = "template_unavailable"


class TemplateBuildingError(ServiceUnavailableError):
    """503: the template's image is still being built (`details` has `buildState` and `progress`).
    Try again after `retry_after` seconds, or create with `wait=True` to have the server wait for it."""

    default_code = "template_building"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if retry_after is None and isinstance(self.details.get("retryAfter"), int | float):
            retry_after = float(self.details["retryAfter"])
        self.retry_after = retry_after


class NoCapacityError(ServiceUnavailableError):
    """503: no engine of the server has room for the sandbox right now (its memory is held by
    other sandboxes); nothing was made. Try again later, or ask for less memory."""

    default_code = "no_capacity"


class NoMatchingNodeError(ValidationError):
    """400: no engine of the server has the `node_labels` a create asked for (`details.nodeLabels`),
    or the engine the create must run on (its snapshot's, the server's own for a restricted egress
    policy) has not them. Nothing was made; a retry does not help."""

    default_code = "no_matching_node"


class NodeLabelsConflictError(NoMatchingNodeError):
    """400: one node label is required with two values (the create's `node_labels`, its template's,
    its organization's, its snapshot's): no engine can have both. `details.key` names it,
    `details.values` who asked for what. Nothing was made."""

    default_code = "node_labels_conflict"


class DiskFullError(ServerError):
    """507: the sandbox's disk is full (an upload, say); what was there is kept. Free some space
    (delete files, or raise `resources.disk` on a new sandbox) and try again."""

    default_code = "disk_full"


class CommandExitError(VibeBoxError):
    """A command run with `run()` exited non-zero (after any retries).

    `exit_code`, `stdout`, `stderr` and `result` are those of the last attempt; `logs` has the
    output of every attempt.
    """

    default_code = "command_failed"

    def __init__(self, result: ExecutionResult, *, attempts: list[ExecutionResult] | None = None) -> None:
        attempts = attempts or [result]
        self.result = result
        self.attempts = attempts
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.logs = "".join(
            f"--- attempt {n} (exit {a.exit_code}, {a.status}) ---\n{a.output}" for n, a in enumerate(attempts, 1)
        )
        tail = result.output.strip().splitlines()[-1:] or [""]
        super().__init__(
            f"command exited with {result.exit_code} after {len(attempts)} attempt(s): {tail[0][:200]}",
            code=self.default_code,
        )


class CommandTimeoutError(TimeoutError):
    """A command run with `run()` reached its timeout (it was killed with everything it started)."""

    default_code = "command_timeout"

    def __init__(self, result: ExecutionResult, *, attempts: list[ExecutionResult] | None = None) -> None:
        self.result = result
        self.attempts = attempts or [result]
        self.logs = "".join(a.output for a in self.attempts)
        super().__init__(f"command timed out after {result.duration} ms", code=self.default_code)


class WebhookVerificationError(VibeBoxError):
    """A webhook delivery that `verify_webhook` refuses: a header missing or malformed, a timestamp
    outside the tolerance (a replay, or a clock far off), no valid signature, or a body that is not
    a JSON object. Raised by the SDK itself, never by the server: `status` is None; `code` says which
    (`webhook_headers_missing`, `webhook_headers_malformed`, `webhook_timestamp_out_of_tolerance`,
    `webhook_signature_invalid`, `webhook_payload_invalid`). Answer the delivery with a 400."""

    default_code = "webhook_verification_failed"


# The template marketplace (docs/marketplace.md).


class InvalidTemplateYamlError(ValidationError):
    """400: the submission's template.yaml is invalid; `details["fields"]` names each field and why
    (`{"name": [{"message", "code": "taken"}]}`...)."""

    default_code = "invalid_template_yaml"


class InvalidDockerfileError(ValidationError):
    """400: the submission's Dockerfile is refused (empty, too long, a `FROM` that is not allowed)."""

    default_code = "invalid_dockerfile"


class InvalidBuildContextError(ValidationError):
    """400: the build context is not a safe tar archive (absolute names, `..`, links out of it...)."""

    default_code = "invalid_build_context"


class BuildContextTooLargeError(ValidationError):
    """400: the build context is above the server's limit (`VIBEBOX_TEMPLATE_CONTEXT_MAX`, 50 MiB by
    default). `submit()` checks it before uploading: `details` has `limit`, `size` and `largest`
    (the biggest files, to add to `.dockerignore`)."""

    default_code = "build_context_too_large"


class UnknownTemplateVersionError(ValidationError):
    """400: creating from `name@version`: the template has no such published version
    (`details["versions"]` lists those it has)."""

    default_code = "unknown_template_version"


class TemplateVersionYankedError(ValidationError):
    """400: creating from a yanked version (pinned, or a bare name whose versions are all yanked);
    `details["reason"]` says why it was yanked."""

    default_code = "template_version_yanked"


class ReviewNotAllowedError(PermissionDeniedError):
    """403: only users who created a sandbox from a template may rate it."""

    default_code = "review_not_allowed"


class SubmissionNotFoundError(NotFoundError):
    """404: no submission with this id in the organization (another organization's is one too)."""

    default_code = "submission_not_found"


class TemplateVersionNotFoundError(NotFoundError):
    """404: the template has no such version (yank)."""

    default_code = "template_version_not_found"


class SubmissionStateError(ConflictError):
    """409: the submission is not in a state that allows this (cancel once it started, review
    one that is not awaiting review)."""

    default_code = "submission_state_conflict"


class TemplateNameTakenError(ConflictError):
    """409: the template name belongs to another organization or to a built-in template."""

    default_code = "template_name_taken"


class SubmissionFailedError(VibeBoxError):
    """`marketplace.wait(..., check=True)`: the submission ended failed, rejected or cancelled.
    Raised by the SDK itself (`status` is None); `submission` is its last state: `failed_step`
    (upload, build, policy, smoke) and `message` say why."""

    default_code = "submission_failed"

    def __init__(self, submission: Any) -> None:
        self.submission = submission
        step = f" at {submission.failed_step}" if getattr(submission, "failed_step", "") else ""
        why = f": {submission.message}" if getattr(submission, "message", "") else ""
        super().__init__(
            f"submission {submission.id} {submission.state}{step}{why}",
            code=self.default_code,
            details={"state": submission.state, "failedStep": submission.failed_step, "message": submission.message},
        )


class InvalidBillingWindowError(ValidationError):
    """400: `start`/`end` are not ISO 8601 times with start < end."""

    default_code = "invalid_billing_window"


class BillingWindowTooLongError(ValidationError):
    """400: the window is longer than the server allows (VIBEBOX_BILLING_MAX_WINDOW)."""

    default_code = "billing_window_too_long"


class UnknownGroupByError(ValidationError):
    """400: `group_by` is not sandbox, template, day or resource."""

    default_code = "unknown_group_by"


class UnknownExportFormatError(ValidationError):
    """400: the export's `format` is not csv or jsonl."""

    default_code = "unknown_export_format"


class InvalidEffectiveFromError(ValidationError):
    """400: a plan change's `effective_from` is in the past."""

    default_code = "invalid_effective_from"


class StripeSignatureInvalidError(ValidationError):
    """400: a Stripe webhook's Stripe-Signature header does not verify (the server's Stripe endpoint)."""

    default_code = "stripe_signature_invalid"


class PlanNotFoundError(NotFoundError):
    default_code = "plan_not_found"


class InvoiceNotFoundError(NotFoundError):
    """404: no such invoice in the organization (another organization's is this too)."""

    default_code = "invoice_not_found"


class PaymentsNotConfiguredError(NotFoundError):
    """404: this server takes no payments (VIBEBOX_STRIPE_SECRET_KEY is not set)."""

    default_code = "payments_not_configured"


class PlanCurrencyChangeError(ConflictError):
    """409: a plan in another currency can only start at the start of a month (UTC)."""

    default_code = "plan_currency_change"


class MixedCurrenciesError(ConflictError):
    """409: the window spans plans in different currencies; ask for each plan's period apart."""

    default_code = "mixed_currencies"


class PaymentProviderUnavailableError(ServerError):
    """502: the payment provider (Stripe) failed; nothing was done, try again."""

    default_code = "payment_provider_unavailable"


# Preview URLs and code contexts (issue 25)


class InvalidPortError(ValidationError):
    """400: a port is a number from 1 to 65535, and not one VibeBox reserves (sandboxd's)."""

    default_code = "invalid_port"


class ContextNotFoundError(NotFoundError):
    """404: no code context with this id in this sandbox."""

    default_code = "context_not_found"


class ContextDeadError(ConflictError):
    """409: the context's interpreter is gone (its sandbox stopped, or it died): `restart()` it."""

    default_code = "context_dead"


class EgressUnavailableError(ServiceUnavailableError):
    """503: this server cannot enforce egress policies (its firewall is off or iptables is missing):
    only internet on with no lists is possible."""

    default_code = "egress_unavailable"


_BY_CODE: dict[str, type[VibeBoxError]] = {
    "not_authenticated": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "quota_exceeded": QuotaExceededError,
    "sandbox_not_found": SandboxNotFoundError,
    "template_not_found": TemplateNotFoundError,
    "key_not_found": KeyNotFoundError,
    "org_not_found": OrgNotFoundError,
    "member_not_found": MemberNotFoundError,
    "user_not_found": UserNotFoundError,
    "last_owner": LastOwnerError,
    "org_not_empty": OrgNotEmptyError,
    "role_not_found": RoleNotFoundError,
    "role_name_taken": RoleNameTakenError,
    "role_in_use": RoleInUseError,
    "role_built_in": RoleBuiltInError,
    "unknown_permission": UnknownPermissionError,
    "team_not_found": TeamNotFoundError,
    "team_name_taken": TeamNameTakenError,
    "grant_not_found": GrantNotFoundError,
    "invitation_not_found": InvitationNotFoundError,
    "invitation_expired": InvitationExpiredError,
    "invitation_accepted": InvitationAcceptedError,
    "invitation_email_mismatch": InvitationEmailMismatchError,
    "execution_not_found": ExecutionNotFoundError,
    "terminal_not_found": TerminalNotFoundError,
    "env_var_not_found": EnvVarNotFoundError,
    "file_not_found": SandboxFileNotFoundError,
    "sandbox_not_running": SandboxNotRunningError,
    "sandbox_paused": SandboxPausedError,
    "sandbox_unreachable": SandboxUnreachableError,
    "sandbox_outdated": SandboxOutdatedError,
    "snapshot_not_found": SnapshotNotFoundError,
    "snapshot_unusable": SnapshotUnusableError,
    "sandbox_unrecoverable": SandboxUnrecoverableError,
    "request_too_large": RequestTooLargeError,
    "payload_too_large": RequestTooLargeError,  # older servers' code for it
    "invalid_json": ValidationError,
    "malformed_request": ValidationError,  # older servers' code for invalid_json
    "nul_character": ValidationError,
    "rate_limited": RateLimitError,
    "too_many_streams": RateLimitError,  # too many open streams, terminals or background processes
    "runtime_unavailable": ServiceUnavailableError,
    "disk_full": DiskFullError,
    "template_unavailable": TemplateUnavailableError,
    "template_building": TemplateBuildingError,
    "no_capacity": NoCapacityError,
    "no_matching_node": NoMatchingNodeError,
    "node_labels_conflict": NodeLabelsConflictError,
    "rate_limiter_unavailable": ServiceUnavailableError,  # Redis down: nothing was done, retry later
    "database_unavailable": ServiceUnavailableError,  # a write may be half-done: not retried
    "claude_unavailable": ClaudeUnavailableError,
    "claude_not_enabled": ClaudeNotEnabledError,
    "ask_not_found": AskNotFoundError,
    "claude_session_not_found": ClaudeSessionNotFoundError,
    "ask_running": AskRunningError,
    "no_pending_changes": NoPendingChangesError,
    "claude_disabled_by_mode": ClaudeDisabledByModeError,
    "merge_conflict": MergeConflictError,
    "webhook_not_found": WebhookNotFoundError,
    "delivery_not_found": DeliveryNotFoundError,
    "unknown_event": UnknownEventError,
    "invalid_package_spec": InvalidPackageSpecError,
    "unsupported_package_manager": UnsupportedPackageManagerError,
    "package_list_failed": PackageListFailedError,
    "invalid_webhook_url": InvalidWebhookUrlError,
    "webhook_target_refused": WebhookTargetRefusedError,
    "invalid_template_yaml": InvalidTemplateYamlError,
    "invalid_dockerfile": InvalidDockerfileError,
    "invalid_build_context": InvalidBuildContextError,
    "build_context_too_large": BuildContextTooLargeError,
    "unknown_template_version": UnknownTemplateVersionError,
    "template_version_yanked": TemplateVersionYankedError,
    "review_not_allowed": ReviewNotAllowedError,
    "submission_not_found": SubmissionNotFoundError,
    "template_version_not_found": TemplateVersionNotFoundError,
    "submission_state_conflict": SubmissionStateError,
    "template_name_taken": TemplateNameTakenError,
    "invalid_billing_window": InvalidBillingWindowError,
    "billing_window_too_long": BillingWindowTooLongError,
    "unknown_group_by": UnknownGroupByError,
    "unknown_export_format": UnknownExportFormatError,
    "invalid_effective_from": InvalidEffectiveFromError,
    "stripe_signature_invalid": StripeSignatureInvalidError,
    "plan_not_found": PlanNotFoundError,
    "invoice_not_found": InvoiceNotFoundError,
    "payments_not_configured": PaymentsNotConfiguredError,
    "plan_currency_change": PlanCurrencyChangeError,
    "mixed_currencies": MixedCurrenciesError,
    "payment_provider_unavailable": PaymentProviderUnavailableError,
    "invalid_port": InvalidPortError,
    "context_not_found": ContextNotFoundError,
    "context_dead": ContextDeadError,
    "egress_unavailable": EgressUnavailableError,
}

_BY_STATUS: dict[int, type[VibeBoxError]] = {
    400: ValidationError,
    401: AuthenticationError,
    402: QuotaExceededError,  # payment required: a billing quota or budget
    403: PermissionDeniedError,
    404: NotFoundError,
    405: NotSupportedError,
    409: ConflictError,
    410: GoneError,
    413: RequestTooLargeError,
    422: GitError,
    429: RateLimitError,
    501: NotSupportedError,
    503: ServiceUnavailableError,
}


def error_class(code: str, status: int) -> type[VibeBoxError]:
    """The exception class for a server error `code` and HTTP `status`."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServerError
    return ValidationError if 400 <= status < 500 else VibeBoxError


def from_payload(
    status: int, payload: Any, *, request_id: str | None = None, retry_after: float | None = None
) -> VibeBoxError:
    """Builds the exception for an error answer (the `{"error": {...}, "requestId"}` envelope)."""
    body = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(body, dict):
        body = {"code": f"http_{status}", "message": f"HTTP {status}"}
    code = str(body.get("code") or f"http_{status}")
    message = str(body.get("message") or f"HTTP {status}")
    request_id = (payload.get("requestId") if isinstance(payload, dict) else None) or request_id
    cls = error_class(code, status)
    kwargs: dict[str, Any] = {"code": code, "status": status, "details": body.get("details"), "request_id": request_id}
    if issubclass(cls, RateLimitError | TemplateBuildingError):
        kwargs["retry_after"] = retry_after
    return cls(message, **kwargs)
