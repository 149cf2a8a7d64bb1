/**
 * Errors: one class per kind of server error, all extending {@link VibeBoxError}.
 *
 * Every error carries the server's stable `code`, its `message`, the HTTP `status`, `details`
 * and the `requestId` to quote when reporting a problem.
 *
 * @example
 * ```ts
 * try {
 *   await vb.get('no-such-box');
 * } catch (error) {
 *   if (error instanceof SandboxNotFoundError) console.log(error.code, error.requestId);
 * }
 * ```
 * @module
 */

/**
 * Options every {@link VibeBoxError} accepts.
 * @example
 * ```ts
 * new VibeBoxError('failed', { code: 'my_code', status: 400 });
 * ```
 */
export interface ErrorOptions {
  code?: string;
  status?: number;
  details?: Record<string, unknown>;
  requestId?: string;
  cause?: unknown;
}

/**
 * Base class of every error the SDK throws.
 *
 * @example
 * ```ts
 * await sandbox.run('exit 3').catch((error: VibeBoxError) => console.log(error.code)); // "command_failed"
 * ```
 */
export class VibeBoxError extends Error {
  /** The code used when the server sent none. */
  static defaultCode = 'error';
  /** The server's stable error code (`sandbox_not_found`, `rate_limited`…). */
  readonly code: string;
  /** The HTTP status of the answer, when there was one. */
  readonly status: number | undefined;
  /** Structured details the server attached (`details.fields`, `details.status`…). */
  readonly details: Record<string, unknown>;
  /** The server's request id (`X-Request-Id`), to quote in bug reports. */
  readonly requestId: string | undefined;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code ?? (new.target as typeof VibeBoxError).defaultCode;
    this.status = options.status;
    this.details = options.details ?? {};
    this.requestId = options.requestId;
  }
}

/**
 * The server could not be reached (refused, reset, DNS), after the retries.
 * @example
 * ```ts
 * new VibeBox({ baseUrl: 'http://127.0.0.1:1' }).templates().catch((e) => e instanceof ConnectionError); // true
 * ```
 */
export class ConnectionError extends VibeBoxError {
  static override defaultCode = 'connection_error';
}

/**
 * A request took longer than its timeout. {@link CommandTimeoutError} is the kind for commands.
 * @example
 * ```ts
 * if (error instanceof TimeoutError) console.log('too slow');
 * ```
 */
export class TimeoutError extends VibeBoxError {
  static override defaultCode = 'timeout';
}

/**
 * This server has no endpoint for the call (an older server, or a feature it lacks).
 * @example
 * ```ts
 * if (error instanceof NotSupportedError) console.log(error.details.feature);
 * ```
 */
export class NotSupportedError extends VibeBoxError {
  static override defaultCode = 'not_supported';
}

/**
 * 400: the request was refused as invalid (`code` says why, `details.fields` which field).
 * @example
 * ```ts
 * await vb.create({ template: 'node-20', timeout: 'soon' }).catch((e: ValidationError) => e.code); // "invalid_duration"
 * ```
 */
export class ValidationError extends VibeBoxError {
  static override defaultCode = 'validation_error';
}

/** 400: a role names a permission that does not exist (`details.unknown` lists them). @example `if (e instanceof UnknownPermissionError) console.log(e.details.unknown)` */
export class UnknownPermissionError extends ValidationError {
  static override defaultCode = 'unknown_permission';
}

/** 400: a webhook names an event that does not exist (`details.unknown` lists them, `details.known` every name). @example `if (e instanceof UnknownEventError) console.log(e.details.unknown)` */
export class UnknownEventError extends ValidationError {
  static override defaultCode = 'unknown_event';
}

/** 400: a package spec is not a name and version in the manager's syntax (options are never accepted); `details` has `index`, `spec`, `reason`. @example `if (e instanceof InvalidPackageSpecError) console.log(e.details.reason)` */
export class InvalidPackageSpecError extends ValidationError {
  static override defaultCode = 'invalid_package_spec';
}

/** 400: the sandbox's template has no such package manager; `details.supported` lists those it has. @example `if (e instanceof UnsupportedPackageManagerError) console.log(e.details.supported)` */
export class UnsupportedPackageManagerError extends ValidationError {
  static override defaultCode = 'unsupported_package_manager';
}

/** 422: the package manager could not list what is installed (`details.reason`, `details.exitCode`, `details.stderr`). @example `if (e instanceof PackageListFailedError) console.log(e.details.stderr)` */
export class PackageListFailedError extends VibeBoxError {
  static override defaultCode = 'package_list_failed';
}

/** 400: the webhook URL is not accepted (`http` on a server that allows only `https`, a bad port). @example `if (e instanceof InvalidWebhookUrlError) console.log(e.message)` */
export class InvalidWebhookUrlError extends ValidationError {
  static override defaultCode = 'invalid_webhook_url';
}

/** 400: the webhook URL's host resolves to a loopback, private, link-local or the server's own address (`details.addresses`). @example `if (e instanceof WebhookTargetRefusedError) console.log(e.details.addresses)` */
export class WebhookTargetRefusedError extends ValidationError {
  static override defaultCode = 'webhook_target_refused';
}

/**
 * 413: the request body (an upload, stdin, code, a task result…) is above the server's limit;
 * `details.limit` says how many bytes fit.
 * @example `if (e instanceof RequestTooLargeError) console.log(e.details.limit)`
 */
export class RequestTooLargeError extends ValidationError {
  static override defaultCode = 'request_too_large';
}

/**
 * The old name of {@link RequestTooLargeError} (older servers answered `payload_too_large`).
 * @example `if (e instanceof PayloadTooLargeError) …`
 */
export const PayloadTooLargeError = RequestTooLargeError;
/**
 * The old name of {@link RequestTooLargeError}, as a type.
 * @example `const tooBig: PayloadTooLargeError | undefined = undefined;`
 */
export type PayloadTooLargeError = RequestTooLargeError;

/**
 * 401: no API key, or a wrong, expired or revoked one.
 * @example
 * ```ts
 * await new VibeBox({ apiKey: 'vb_live_wrong' }).list().catch((e) => e instanceof AuthenticationError); // true
 * ```
 */
export class AuthenticationError extends VibeBoxError {
  static override defaultCode = 'invalid_api_key';
}

/** 403: the key lacks a scope, or the sandbox user may not do that. @example `if (e instanceof PermissionDeniedError) console.log(e.details.missing)` */
export class PermissionDeniedError extends VibeBoxError {
  static override defaultCode = 'permission_denied';
}

/** 402: a quota or the budget is used up (`details.quota`, `limit`, `used`, `requested`); nothing was done. Still extends PermissionDeniedError for one release (it was a 403). @example `if (e instanceof QuotaExceededError) console.log(e.details.quota)` */
export class QuotaExceededError extends PermissionDeniedError {
  static override defaultCode = 'quota_exceeded';
}

/** 404: no such object (or someone else's). @example `if (e instanceof NotFoundError) …` */
export class NotFoundError extends VibeBoxError {
  static override defaultCode = 'not_found';
}

/**
 * 404: no such sandbox, or another owner's.
 * @example
 * ```ts
 * await vb.get('sbx_missing').catch((e) => e instanceof SandboxNotFoundError); // true
 * ```
 */
export class SandboxNotFoundError extends NotFoundError {
  static override defaultCode = 'sandbox_not_found';
}

/** 404: no organization of yours with this slug (a key sees only the one it acts in). @example `await vb.orgs.get('nope') // throws OrgNotFoundError` */
export class OrgNotFoundError extends NotFoundError {
  static override defaultCode = 'org_not_found';
}

/** 404: no such member in this organization. @example `await vb.orgs.members('acme').remove(999) // throws MemberNotFoundError` */
export class MemberNotFoundError extends NotFoundError {
  static override defaultCode = 'member_not_found';
}

/** 404: adding a member: no user with this username or email. @example `await vb.orgs.members('acme').add('nobody', { role: 'viewer' }) // throws UserNotFoundError` */
export class UserNotFoundError extends NotFoundError {
  static override defaultCode = 'user_not_found';
}

/** 404: no role of this name in the organization (built-in or custom). @example `await vb.orgs.roles('acme').get('nope') // throws RoleNotFoundError` */
export class RoleNotFoundError extends NotFoundError {
  static override defaultCode = 'role_not_found';
}

/** 404: no team of this name in the organization. @example `await vb.orgs.teams('acme').get('nope') // throws TeamNotFoundError` */
export class TeamNotFoundError extends NotFoundError {
  static override defaultCode = 'team_not_found';
}

/** 404: no grant with this id on this sandbox. @example `await sandbox.unshare('grt_gone') // throws GrantNotFoundError` */
export class GrantNotFoundError extends NotFoundError {
  static override defaultCode = 'grant_not_found';
}

/** 404: no code context with this id in this sandbox. @example `await sandbox.contexts.get('ctx_gone') // throws ContextNotFoundError` */
export class ContextNotFoundError extends NotFoundError {
  static override defaultCode = 'context_not_found';
}

/** 404: no pending invitation with this id, or a wrong, changed or revoked link. @example `await vb.invitations.accept('bad') // throws InvitationNotFoundError` */
export class InvitationNotFoundError extends NotFoundError {
  static override defaultCode = 'invitation_not_found';
}

/** 404: no webhook with this id in the organization (another organization's is one too). @example `await vb.webhooks.get('whk_gone') // throws WebhookNotFoundError` */
export class WebhookNotFoundError extends NotFoundError {
  static override defaultCode = 'webhook_not_found';
}

/** 404: no delivery with this id of this webhook. @example `await vb.webhooks.delivery(hook, 'dlv_gone') // throws DeliveryNotFoundError` */
export class DeliveryNotFoundError extends NotFoundError {
  static override defaultCode = 'delivery_not_found';
}

/** 403: the invitation was sent to another email address than your account's. @example `if (e instanceof InvitationEmailMismatchError) …` */
export class InvitationEmailMismatchError extends PermissionDeniedError {
  static override defaultCode = 'invitation_email_mismatch';
}

/** 410: the object existed but cannot be used any more (an expired or used invitation). @example `if (e instanceof GoneError) console.log(e.code)` */
export class GoneError extends VibeBoxError {
  static override defaultCode = 'gone';
}

/** 410: the invitation's link has expired; the organization can send it again (renewed). @example `if (e instanceof InvitationExpiredError) …` */
export class InvitationExpiredError extends GoneError {
  static override defaultCode = 'invitation_expired';
}

/** 410: the invitation was accepted already. @example `if (e instanceof InvitationAcceptedError) …` */
export class InvitationAcceptedError extends GoneError {
  static override defaultCode = 'invitation_accepted';
}

/** 404: no such template. @example `await vb.template('nope') // throws TemplateNotFoundError` */
export class TemplateNotFoundError extends NotFoundError {
  static override defaultCode = 'template_not_found';
}

/** 404: no such execution in this sandbox. @example `if (e instanceof ExecutionNotFoundError) …` */
export class ExecutionNotFoundError extends NotFoundError {
  static override defaultCode = 'execution_not_found';
}

/** 404: no such open terminal session. @example `await sandbox.killTerminal('term_gone') // throws TerminalNotFoundError` */
export class TerminalNotFoundError extends NotFoundError {
  static override defaultCode = 'terminal_not_found';
}

/** 404: no such environment variable. @example `await sandbox.env.delete('NOPE') // throws EnvVarNotFoundError` */
export class EnvVarNotFoundError extends NotFoundError {
  static override defaultCode = 'env_var_not_found';
}

/** 404: no such file or directory in the sandbox. @example `await sandbox.download('missing.txt') // throws FileNotFoundError` */
export class FileNotFoundError extends NotFoundError {
  static override defaultCode = 'file_not_found';
}

/** 404: no such snapshot of yours. @example `await sandbox.restore('snap_missing') // throws SnapshotNotFoundError` */
export class SnapshotNotFoundError extends NotFoundError {
  static override defaultCode = 'snapshot_not_found';
}

/** 404: no such Claude ask in this sandbox. @example `if (e instanceof AskNotFoundError) …` */
export class AskNotFoundError extends NotFoundError {
  static override defaultCode = 'ask_not_found';
}

/** 409: the request clashes with the object's state (name taken, wrong state, file exists…). @example `if (e instanceof ConflictError) console.log(e.details)` */
export class ConflictError extends VibeBoxError {
  static override defaultCode = 'conflict';
}

/** 409: commands need a running sandbox (`details.status` says what it is). @example `await sandbox.start()` */
export class SandboxNotRunningError extends ConflictError {
  static override defaultCode = 'sandbox_not_running';
}

/** 409: the sandbox is paused: `resume()` it, or pass `autoResume: true`. @example `await sandbox.resume()` */
export class SandboxPausedError extends SandboxNotRunningError {
  static override defaultCode = 'sandbox_paused';
}

/** 409: the sandbox's node is down; nothing reaches it until the node returns (a destroy is accepted and finished then). @example `await sandbox.destroy()` */
export class SandboxUnreachableError extends SandboxNotRunningError {
  static override defaultCode = 'sandbox_unreachable';
}

/** 409: the context's interpreter is gone (its sandbox stopped, or it died): restart it. @example `await ctx.restart()` */
export class ContextDeadError extends ConflictError {
  static override defaultCode = 'context_dead';
}

/** 400: a port is a number from 1 to 65535, and not one VibeBox reserves. @example `await sandbox.previewUrl(0) // throws InvalidPortError` */
export class InvalidPortError extends ValidationError {
  static override defaultCode = 'invalid_port';
}

/** 409: the sandbox's container was made before sandboxd (an upgraded server) and cannot run commands or file operations: snapshot it and restore the snapshot. @example `await sandbox.restore(await sandbox.snapshot())` */
export class SandboxOutdatedError extends ConflictError {
  static override defaultCode = 'sandbox_outdated';
}

/** 409: the snapshot's image or workspace archive is missing or damaged (`details.reason`); the sandbox is left as it was. @example `if (e instanceof SnapshotUnusableError) console.log(e.details)` */
export class SnapshotUnusableError extends ConflictError {
  static override defaultCode = 'snapshot_unusable';
}

/** 409: `recover()` cannot make the sandbox's container again: its image is gone (`details.reason` `image_missing`). @example `if (e instanceof SandboxUnrecoverableError) console.log(e.details)` */
export class SandboxUnrecoverableError extends ConflictError {
  static override defaultCode = 'sandbox_unrecoverable';
}

/** 409: an organization keeps at least one owner: make another member an owner first. @example `if (e instanceof LastOwnerError) console.log(e.details.org)` */
export class LastOwnerError extends ConflictError {
  static override defaultCode = 'last_owner';
}

/** 409: the organization still has sandboxes or snapshots (`details.sandboxes`, `details.snapshots`): destroy them first. @example `if (e instanceof OrgNotEmptyError) console.log(e.details)` */
export class OrgNotEmptyError extends ConflictError {
  static override defaultCode = 'org_not_empty';
}

/** 409: the organization has a role of this name already, or it is a built-in role's. @example `if (e instanceof RoleNameTakenError) console.log(e.details.role)` */
export class RoleNameTakenError extends ConflictError {
  static override defaultCode = 'role_name_taken';
}

/** 409: built-in roles (owner, admin, developer, viewer, billing) are never changed or deleted. @example `await vb.orgs.roles('acme').delete('viewer') // throws RoleBuiltInError` */
export class RoleBuiltInError extends ConflictError {
  static override defaultCode = 'role_built_in';
}

/** 409: members or teams hold this role: give them another one before deleting it. @example `if (e instanceof RoleInUseError) console.log(e.details.role)` */
export class RoleInUseError extends ConflictError {
  static override defaultCode = 'role_in_use';
}

/** 409: the organization has a team of this name already. @example `if (e instanceof TeamNameTakenError) console.log(e.details.team)` */
export class TeamNameTakenError extends ConflictError {
  static override defaultCode = 'team_name_taken';
}

/** 409: the template has no Claude Code (use `node-22-claude-code`). @example `await vb.sandbox('node-22-claude-code')` */
export class ClaudeUnavailableError extends ConflictError {
  static override defaultCode = 'claude_unavailable';
}

/** 409: call `sandbox.claude.enable()` first. @example `await sandbox.claude.enable()` */
export class ClaudeNotEnabledError extends ConflictError {
  static override defaultCode = 'claude_not_enabled';
}

/** 409: that Claude session already has a running ask. @example `await sandbox.claude.cancel(askId)` */
export class AskRunningError extends ConflictError {
  static override defaultCode = 'ask_running';
}

/** 409: the sandbox's collaboration mode is `human`: Claude asks are refused. @example `if (e instanceof ClaudeDisabledByModeError) console.log(e.code)` */
export class ClaudeDisabledByModeError extends ConflictError {
  static override defaultCode = 'claude_disabled_by_mode';
}

/** 409: no Claude changes wait for review. @example `if (e instanceof NoPendingChangesError) …` */
export class NoPendingChangesError extends ConflictError {
  static override defaultCode = 'no_pending_changes';
}

/**
 * 409: Claude's changes conflict with /workspace; nothing was applied.
 * @example
 * ```ts
 * await sandbox.claude.approve().catch((e: MergeConflictError) => console.log(e.files));
 * ```
 */
export class MergeConflictError extends ConflictError {
  static override defaultCode = 'merge_conflict';
  /** The files in conflict. */
  get files(): string[] {
    const files = this.details.files;
    return Array.isArray(files) ? files.map(String) : [];
  }
}

/** 422: git failed (clone, credentials, any other git error); `details.git` has git's message. @example `if (e instanceof GitError) console.log(e.details.git)` */
export class GitError extends VibeBoxError {
  static override defaultCode = 'git_error';
}

/**
 * 429: too many requests; `retryAfter` is in seconds (the SDK already waited and retried).
 * @example
 * ```ts
 * if (error instanceof RateLimitError) await new Promise((r) => setTimeout(r, (error.retryAfter ?? 1) * 1000));
 * ```
 */
export class RateLimitError extends VibeBoxError {
  static override defaultCode = 'rate_limited';
  /** Seconds the server asked to wait (`Retry-After`), when it said. */
  retryAfter: number | undefined;
}

/** 5xx: the server or its container engine failed. @example `if (e instanceof ServerError) console.log(e.requestId)` */
export class ServerError extends VibeBoxError {
  static override defaultCode = 'internal_error';
}

/** 503: the container engine is unreachable, or the template's image is not built. @example `if (e instanceof ServiceUnavailableError) …` */
export class ServiceUnavailableError extends ServerError {
  static override defaultCode = 'runtime_unavailable';
}

/** 503: this server cannot enforce egress policies (its firewall is off or iptables is missing): only internet on with no lists is possible. @example `await sandbox.setNetwork({ internet: true, allow: [], deny: [] })` */
export class EgressUnavailableError extends ServiceUnavailableError {
  static override defaultCode = 'egress_unavailable';
}

/**
 * 503: the template's image is not built on this server, or its build failed (`details.buildState`
 * is `failed`; `vb.templates()` shows `buildMessage`).
 * @example
 * ```ts
 * if (error instanceof TemplateUnavailableError) console.log(error.details.buildState);
 * ```
 */
export class TemplateUnavailableError extends ServiceUnavailableError {
  static override defaultCode = 'template_unavailable';
}

/**
 * 503: the template's image is still being built (`details.buildState`, `details.progress`).
 * Try again after `retryAfter` seconds, or create with `wait: true` to have the server wait for it.
 * @example
 * ```ts
 * try {
 *   await vb.create({ template: 'rust-1.85' });
 * } catch (error) {
 *   if (error instanceof TemplateBuildingError) await vb.create({ template: 'rust-1.85', wait: true });
 * }
 * ```
 */
export class TemplateBuildingError extends ServiceUnavailableError {
  static override defaultCode = 'template_building';
  /** Seconds the server asked to wait (`Retry-After`, else `details.retryAfter`). */
  retryAfter: number | undefined;
}

/** 503: no engine of the server has room for the sandbox right now (its memory is held by other sandboxes); nothing was made. Try again later, or ask for less memory. @example `if (e instanceof NoCapacityError) console.log(e.details.memory)` */
export class NoCapacityError extends ServiceUnavailableError {
  static override defaultCode = 'no_capacity';
}

/** 400: no engine of the server has the `nodeLabels` a create asked for (`details.nodeLabels`), or the engine the create must run on has not them; nothing was made, a retry does not help. @example `if (e instanceof NoMatchingNodeError) console.log(e.details.nodeLabels)` */
export class NoMatchingNodeError extends ValidationError {
  static override defaultCode = 'no_matching_node';
}

/** 400: one node label is required with two values (the create's `nodeLabels`, its template's, its organization's, its snapshot's): no engine can have both; nothing was made. @example `if (e instanceof NodeLabelsConflictError) console.log(e.details.key, e.details.values)` */
export class NodeLabelsConflictError extends NoMatchingNodeError {
  static override defaultCode = 'node_labels_conflict';
}

/** 507: the sandbox's disk is full (an upload, say); what was there is kept. Free some space and try again. @example `if (e instanceof DiskFullError) console.log(e.details.path)` */
export class DiskFullError extends ServerError {
  static override defaultCode = 'disk_full';
}

/**
 * What a failed command left: the result of each attempt.
 * @example
 * ```ts
 * error.attempts.map((attempt: AttemptLike) => attempt.exitCode);
 * ```
 */
export interface AttemptLike {
  exitCode: number | null;
  status: string;
  output: string;
  duration: number;
}

function attemptLogs(attempts: AttemptLike[]): string {
  return attempts
    .map((a, n) => `--- attempt ${n + 1} (exit ${a.exitCode ?? 'none'}, ${a.status}) ---\n${a.output}`)
    .join('');
}

/**
 * A command run with `run()` exited non-zero (after any retries). `exitCode` and `result` are
 * the last attempt's; `logs` has the output of every attempt.
 *
 * @example
 * ```ts
 * await sandbox.run('npm test', { retries: 3 }).catch((error: CommandExitError) => {
 *   console.error(error.exitCode, error.logs);
 * });
 * ```
 */
export class CommandExitError<R extends AttemptLike = AttemptLike> extends VibeBoxError {
  static override defaultCode = 'command_failed';
  /** The last attempt's result. */
  readonly result: R;
  /** Every attempt's result, first to last. */
  readonly attempts: R[];
  /** The last attempt's exit code. */
  readonly exitCode: number | null;
  /** The output (stdout then stderr) of every attempt, each under a header line. */
  readonly logs: string;

  constructor(result: R, attempts: R[] = [result]) {
    const tail = result.output.trim().split('\n').at(-1) ?? '';
    super(`command exited with ${result.exitCode} after ${attempts.length} attempt(s): ${tail.slice(0, 200)}`);
    this.result = result;
    this.attempts = attempts;
    this.exitCode = result.exitCode;
    this.logs = attemptLogs(attempts);
  }
}

/**
 * A command run with `run()` reached its timeout: it was killed with everything it started.
 *
 * @example
 * ```ts
 * await sandbox.run('sleep 60', { timeout: '1s' }).catch((e) => e instanceof CommandTimeoutError); // true
 * ```
 */
export class CommandTimeoutError<R extends AttemptLike = AttemptLike> extends TimeoutError {
  static override defaultCode = 'command_timeout';
  readonly result: R;
  readonly attempts: R[];
  /** The output of every attempt. */
  readonly logs: string;

  constructor(result: R, attempts: R[] = [result]) {
    super(`command timed out after ${result.duration} ms`);
    this.result = result;
    this.attempts = attempts;
    this.logs = attemptLogs(attempts);
  }
}

/**
 * The error for a callback of yours that threw inside a stream (`cause` is what it threw): the
 * stream ends and its promise rejects with this instead of the process crashing.
 * @example
 * ```ts
 * await cmd.wait().catch((e) => e instanceof CallbackError && console.error(e.cause));
 * ```
 */
export class CallbackError extends VibeBoxError {
  static override defaultCode = 'callback_error';
}

/**
 * A webhook delivery that {@link verifyWebhook} refuses: a header missing or malformed, a timestamp
 * outside the tolerance (a replay, or a clock far off), no valid signature, or a body that is not a
 * JSON object. Thrown by the SDK itself, never by the server (`status` is undefined); `code` says
 * which: `webhook_headers_missing` (`details.missing`), `webhook_headers_malformed`,
 * `webhook_timestamp_out_of_tolerance`, `webhook_signature_invalid`, `webhook_payload_invalid`.
 * Answer the delivery with a 400.
 * @example
 * ```ts
 * try {
 *   verifyWebhook(body, req.headers, secret);
 * } catch (error) {
 *   if (error instanceof WebhookVerificationError) res.writeHead(400).end(error.code);
 * }
 * ```
 */
export class WebhookVerificationError extends VibeBoxError {
  static override defaultCode = 'webhook_verification_failed';
}

/**
 * Runs a user's callback; what it throws is handed to `fail` as a {@link CallbackError}.
 * @example
 * ```ts
 * guarded(() => onData(chunk), (error) => stream.fail(error));
 * ```
 */
export function guarded(run: () => unknown, fail: (error: CallbackError) => void): void {
  try {
    run();
  } catch (error) {
    fail(new CallbackError(`a callback threw: ${error instanceof Error ? error.message : String(error)}`, { cause: error }));
  }
}

/**
 * Reports an error nobody can receive any more (a callback that threw after its stream ended).
 * @example
 * ```ts
 * warnLate(new CallbackError('late'));
 * ```
 */
export function warnLate(error: VibeBoxError): void {
  process.emitWarning(error.message, { code: error.code });
}

// ---- the template marketplace (docs/marketplace.md) ----

/** 400: the submission's template.yaml is invalid; `details.fields` names each field and why. @example `await vb.marketplace.submit(dir) // throws InvalidTemplateYamlError` */
export class InvalidTemplateYamlError extends ValidationError {
  static override defaultCode = 'invalid_template_yaml';
}

/** 400: the submission's Dockerfile is refused (empty, too long, a FROM that is not allowed). @example `error instanceof InvalidDockerfileError` */
export class InvalidDockerfileError extends ValidationError {
  static override defaultCode = 'invalid_dockerfile';
}

/** 400: the build context is not a safe tar archive. @example `error instanceof InvalidBuildContextError` */
export class InvalidBuildContextError extends ValidationError {
  static override defaultCode = 'invalid_build_context';
}

/** 400: the build context is above the limit (also checked by `submit()` before sending: `details.largest`). @example `error instanceof BuildContextTooLargeError` */
export class BuildContextTooLargeError extends ValidationError {
  static override defaultCode = 'build_context_too_large';
}

/** 400: creating from `name@version` that is not a published version (`details.versions`). @example `await vb.create({ template: 'x@9.9.9' }) // throws UnknownTemplateVersionError` */
export class UnknownTemplateVersionError extends ValidationError {
  static override defaultCode = 'unknown_template_version';
}

/** 400: creating from a yanked version (`details.reason`). @example `error instanceof TemplateVersionYankedError` */
export class TemplateVersionYankedError extends ValidationError {
  static override defaultCode = 'template_version_yanked';
}

/** 403: only users who created a sandbox from a template may rate it. @example `await vb.marketplace.rate('x', 5) // throws ReviewNotAllowedError` */
export class ReviewNotAllowedError extends PermissionDeniedError {
  static override defaultCode = 'review_not_allowed';
}

/** 404: no submission with this id in the organization. @example `await vb.marketplace.submission('sub_gone') // throws SubmissionNotFoundError` */
export class SubmissionNotFoundError extends NotFoundError {
  static override defaultCode = 'submission_not_found';
}

/** 404: the template has no such version. @example `await vb.marketplace.yank('x', '9.9.9') // throws TemplateVersionNotFoundError` */
export class TemplateVersionNotFoundError extends NotFoundError {
  static override defaultCode = 'template_version_not_found';
}

/** 409: the submission's state does not allow this (cancel once started, review twice). @example `error instanceof SubmissionStateError` */
export class SubmissionStateError extends ConflictError {
  static override defaultCode = 'submission_state_conflict';
}

/** 409: the template name belongs to another organization or a built-in template. @example `error instanceof TemplateNameTakenError` */
export class TemplateNameTakenError extends ConflictError {
  static override defaultCode = 'template_name_taken';
}

/** 400: `from`/`to` are not ISO 8601 times with from < to. @example `await vb.billing.costs({ from: '2026-12-01', to: '2026-11-01' }) // throws InvalidBillingWindowError` */
export class InvalidBillingWindowError extends ValidationError {
  static override defaultCode = 'invalid_billing_window';
}

/** 400: the window is longer than the server allows (VIBEBOX_BILLING_MAX_WINDOW). @example `if (e instanceof BillingWindowTooLongError) …` */
export class BillingWindowTooLongError extends ValidationError {
  static override defaultCode = 'billing_window_too_long';
}

/** 400: `groupBy` is not sandbox, template, day or resource. @example `if (e instanceof UnknownGroupByError) …` */
export class UnknownGroupByError extends ValidationError {
  static override defaultCode = 'unknown_group_by';
}

/** 400: the export's `format` is not csv or jsonl. @example `if (e instanceof UnknownExportFormatError) …` */
export class UnknownExportFormatError extends ValidationError {
  static override defaultCode = 'unknown_export_format';
}

/** 400: a plan change's `effectiveFrom` is in the past. @example `if (e instanceof InvalidEffectiveFromError) …` */
export class InvalidEffectiveFromError extends ValidationError {
  static override defaultCode = 'invalid_effective_from';
}

/** 400: a Stripe webhook's Stripe-Signature header does not verify (the server's Stripe endpoint). @example `if (e instanceof StripeSignatureInvalidError) …` */
export class StripeSignatureInvalidError extends ValidationError {
  static override defaultCode = 'stripe_signature_invalid';
}

/** 404: no such plan. @example `await vb.billing.changePlan('platinum') // throws PlanNotFoundError` */
export class PlanNotFoundError extends NotFoundError {
  static override defaultCode = 'plan_not_found';
}

/** 404: no such invoice in the organization (another organization's is this too). @example `await vb.billing.invoice('inv_missing') // throws InvoiceNotFoundError` */
export class InvoiceNotFoundError extends NotFoundError {
  static override defaultCode = 'invoice_not_found';
}

/** 404: this server takes no payments (VIBEBOX_STRIPE_SECRET_KEY is not set). @example `if (e instanceof PaymentsNotConfiguredError) …` */
export class PaymentsNotConfiguredError extends NotFoundError {
  static override defaultCode = 'payments_not_configured';
}

/** 409: a plan in another currency can only start at the start of a month (UTC). @example `if (e instanceof PlanCurrencyChangeError) …` */
export class PlanCurrencyChangeError extends ConflictError {
  static override defaultCode = 'plan_currency_change';
}

/** 409: the window spans plans in different currencies; ask for each plan's period apart. @example `if (e instanceof MixedCurrenciesError) …` */
export class MixedCurrenciesError extends ConflictError {
  static override defaultCode = 'mixed_currencies';
}

/** 502: the payment provider (Stripe) failed; nothing was done, try again. @example `if (e instanceof PaymentProviderUnavailableError) …` */
export class PaymentProviderUnavailableError extends ServerError {
  static override defaultCode = 'payment_provider_unavailable';
}

/**
 * `vb.marketplace.wait(..., { check: true })`: the submission ended failed, rejected or cancelled;
 * `submission.failedStep` and `submission.message` say why. Thrown by the SDK itself (no status).
 * @example
 * ```ts
 * try { await vb.marketplace.wait(sub, { check: true }); } catch (e) { if (e instanceof SubmissionFailedError) console.log(e.submission.failedStep); }
 * ```
 */
export class SubmissionFailedError extends VibeBoxError {
  static override defaultCode = 'submission_failed';
  readonly submission: { id: string; state: string; failedStep: string; message: string };

  constructor(submission: { id: string; state: string; failedStep: string; message: string }) {
    const step = submission.failedStep ? ` at ${submission.failedStep}` : '';
    const why = submission.message ? `: ${submission.message}` : '';
    super(`submission ${submission.id} ${submission.state}${step}${why}`, {
      details: { state: submission.state, failedStep: submission.failedStep, message: submission.message },
    });
    this.submission = submission;
  }
}

type ErrorClass = new (message: string, options?: ErrorOptions) => VibeBoxError;

const BY_CODE: Record<string, ErrorClass> = {
  not_authenticated: AuthenticationError,
  invalid_api_key: AuthenticationError,
  quota_exceeded: QuotaExceededError,
  sandbox_not_found: SandboxNotFoundError,
  template_not_found: TemplateNotFoundError,
  execution_not_found: ExecutionNotFoundError,
  terminal_not_found: TerminalNotFoundError,
  env_var_not_found: EnvVarNotFoundError,
  file_not_found: FileNotFoundError,
  snapshot_not_found: SnapshotNotFoundError,
  snapshot_unusable: SnapshotUnusableError,
  sandbox_unrecoverable: SandboxUnrecoverableError,
  ask_not_found: AskNotFoundError,
  org_not_found: OrgNotFoundError,
  member_not_found: MemberNotFoundError,
  user_not_found: UserNotFoundError,
  last_owner: LastOwnerError,
  org_not_empty: OrgNotEmptyError,
  role_not_found: RoleNotFoundError,
  role_name_taken: RoleNameTakenError,
  role_in_use: RoleInUseError,
  role_built_in: RoleBuiltInError,
  unknown_permission: UnknownPermissionError,
  team_not_found: TeamNotFoundError,
  team_name_taken: TeamNameTakenError,
  grant_not_found: GrantNotFoundError,
  invitation_not_found: InvitationNotFoundError,
  invitation_expired: InvitationExpiredError,
  invitation_accepted: InvitationAcceptedError,
  invitation_email_mismatch: InvitationEmailMismatchError,
  sandbox_not_running: SandboxNotRunningError,
  sandbox_paused: SandboxPausedError,
  sandbox_unreachable: SandboxUnreachableError,
  sandbox_outdated: SandboxOutdatedError,
  disk_full: DiskFullError,
  request_too_large: RequestTooLargeError,
  payload_too_large: RequestTooLargeError, // older servers' code for it
  invalid_json: ValidationError,
  malformed_request: ValidationError, // older servers' code for invalid_json
  nul_character: ValidationError,
  rate_limited: RateLimitError,
  too_many_streams: RateLimitError, // too many open streams, terminals or background processes
  runtime_unavailable: ServiceUnavailableError,
  template_unavailable: TemplateUnavailableError,
  template_building: TemplateBuildingError,
  no_capacity: NoCapacityError,
  no_matching_node: NoMatchingNodeError,
  node_labels_conflict: NodeLabelsConflictError,
  rate_limiter_unavailable: ServiceUnavailableError, // Redis down: nothing was done, retry later
  database_unavailable: ServiceUnavailableError, // a write may be half-done: not retried
  claude_unavailable: ClaudeUnavailableError,
  claude_not_enabled: ClaudeNotEnabledError,
  ask_running: AskRunningError,
  no_pending_changes: NoPendingChangesError,
  claude_disabled_by_mode: ClaudeDisabledByModeError,
  merge_conflict: MergeConflictError,
  webhook_not_found: WebhookNotFoundError,
  delivery_not_found: DeliveryNotFoundError,
  unknown_event: UnknownEventError,
  invalid_webhook_url: InvalidWebhookUrlError,
  webhook_target_refused: WebhookTargetRefusedError,
  invalid_package_spec: InvalidPackageSpecError,
  unsupported_package_manager: UnsupportedPackageManagerError,
  package_list_failed: PackageListFailedError,
  invalid_template_yaml: InvalidTemplateYamlError,
  invalid_dockerfile: InvalidDockerfileError,
  invalid_build_context: InvalidBuildContextError,
  build_context_too_large: BuildContextTooLargeError,
  unknown_template_version: UnknownTemplateVersionError,
  template_version_yanked: TemplateVersionYankedError,
  review_not_allowed: ReviewNotAllowedError,
  submission_not_found: SubmissionNotFoundError,
  template_version_not_found: TemplateVersionNotFoundError,
  submission_state_conflict: SubmissionStateError,
  template_name_taken: TemplateNameTakenError,
  invalid_billing_window: InvalidBillingWindowError,
  billing_window_too_long: BillingWindowTooLongError,
  unknown_group_by: UnknownGroupByError,
  unknown_export_format: UnknownExportFormatError,
  invalid_effective_from: InvalidEffectiveFromError,
  stripe_signature_invalid: StripeSignatureInvalidError,
  plan_not_found: PlanNotFoundError,
  invoice_not_found: InvoiceNotFoundError,
  payments_not_configured: PaymentsNotConfiguredError,
  plan_currency_change: PlanCurrencyChangeError,
  mixed_currencies: MixedCurrenciesError,
  payment_provider_unavailable: PaymentProviderUnavailableError,
  context_not_found: ContextNotFoundError,
  context_dead: ContextDeadError,
  invalid_port: InvalidPortError,
  egress_unavailable: EgressUnavailableError,
};

const BY_STATUS: Record<number, ErrorClass> = {
  400: ValidationError,
  401: AuthenticationError,
  402: QuotaExceededError, // payment required: a billing quota or budget
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
};

/**
 * The error class for a server error `code` and HTTP `status`.
 * @example
 * ```ts
 * errorClass('sandbox_not_found', 404) === SandboxNotFoundError; // true
 * ```
 */
export function errorClass(code: string, status: number): ErrorClass {
  const known = BY_CODE[code] ?? BY_STATUS[status];
  if (known) return known;
  if (status >= 500) return ServerError;
  return status >= 400 ? ValidationError : VibeBoxError;
}

/**
 * Builds the error for an error answer (the `{"error": {...}, "requestId"}` envelope).
 * @example
 * ```ts
 * fromPayload(404, { error: { code: 'sandbox_not_found', message: 'Sandbox not found.' } });
 * ```
 */
export function fromPayload(
  status: number,
  payload: unknown,
  requestId?: string,
  retryAfter?: number,
): VibeBoxError {
  const envelope = isRecord(payload) ? payload : {};
  const body = isRecord(envelope.error) ? envelope.error : {};
  const code = typeof body.code === 'string' && body.code ? body.code : `http_${status}`;
  const message = typeof body.message === 'string' && body.message ? body.message : `HTTP ${status}`;
  const details = isRecord(body.details) ? body.details : {};
  const id = typeof envelope.requestId === 'string' ? envelope.requestId : requestId;
  const Class = errorClass(code, status);
  const error = new Class(message, { code, status, details, ...(id ? { requestId: id } : {}) });
  if (error instanceof RateLimitError) error.retryAfter = retryAfter;
  if (error instanceof TemplateBuildingError) {
    error.retryAfter = retryAfter ?? (typeof details.retryAfter === 'number' ? details.retryAfter : undefined);
  }
  return error;
}

/** True for plain objects (JSON objects). @example `isRecord({}) // true` */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
