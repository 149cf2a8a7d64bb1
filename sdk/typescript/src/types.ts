/**
 * The API's types, from the OpenAPI document (src/generated/openapi.ts), and the SDK's options.
 * @module
 */

import type { components } from './generated/openapi.js';
import type { Duration } from './durations.js';

/** Every schema of the server's OpenAPI document, by name. @example `type S = Schemas['Sandbox']` */
export type Schemas = components['schemas'];

/** A sandbox as the server describes it. @example `console.log(sandbox.info.status)` */
export type SandboxInfo = Schemas['Sandbox'];
/** A sandbox's egress policy as the server answers it: `internet`, `allow`, `deny`, `proxied` (docs/api.md, "Network policy"). @example `const policy: NetworkPolicy = await sandbox.getNetwork()` */
export type NetworkPolicy = Schemas['Network'];
/**
 * Egress policy keys to set, at create or with `sandbox.setNetwork()`: entries are domains, `*.domain`, IPs or CIDRs.
 * @example
 * ```ts
 * const changes: NetworkChanges = { internet: false, allow: ['registry.npmjs.org', '140.82.112.0/20'] };
 * ```
 */
export interface NetworkChanges {
  internet?: boolean;
  allow?: string[];
  deny?: string[];
}
/** A template (`node-20`, `python-3`, `node-22-claude-code`…). @example `(await vb.templates()).map((t) => t.name)` */
export type Template = Schemas['Template'];
/** A snapshot: a sandbox's filesystem and workspace at a moment. @example `const snap: Snapshot = await sandbox.snapshot('before')` */
export type Snapshot = Schemas['Snapshot'];
/** A recorded execution (the sandbox's command history). @example `(await sandbox.executions())[0]?.command` */
export type ExecutionRecord = Schemas['Execution'];
/** A recorded execution with its output. @example `(await sandbox.execution(id)).stdout` */
export type ExecutionDetail = Schemas['ExecutionDetail'];
/** A sandbox's resource use now. @example `(await sandbox.metrics()).memory.usage` */
export type SandboxMetrics = Schemas['SandboxMetrics'];
/** An organization of yours, with your `role` and `permissions` in it. @example `(await vb.orgs.list())[0]?.personal` */
export type Organization = Schemas['Organization'];
/** A member of an organization; `id` names them in `members(org).update()` and `.remove()`. @example `(await vb.orgs.members('acme').list())[0]?.role` */
export type Member = Schemas['Member'];
/** A permission a role grants (`sandboxes.read`, `members.manage`…: docs/api.md, "Organizations"). @example `const read: Permission = 'sandboxes.read'` */
export type Permission = Schemas['PermissionsEnum'];
/** A role of an organization: built in (`builtIn`) or custom, and what it grants. @example `(await vb.orgs.roles('acme').list()).filter((r) => !r.builtIn)` */
export type Role = Schemas['Role'];
/** A team of an organization: its members (usernames) inherit its `role` (`null`: none). @example `(await vb.orgs.teams('acme').get('platform')).members` */
export type Team = Schemas['Team'];
/** Who a sandbox is shared with: a member (`user`) or a team (`team`) at `access`. @example `(await sandbox.grants())[0]?.access` */
export type Grant = Schemas['Grant'];
/** A grant's level: `read`, `use` (also commands, files, git, terminals) or `manage` (also lifecycle, environment, snapshots, grants). @example `const access: GrantAccess = 'use'` */
export type GrantAccess = Schemas['GrantAccessEnum'];
/** An entry of an organization's audit log (docs/audit.md). @example `for await (const entry of vb.orgs.auditLog('acme')) console.log(entry.action)` */
export type AuditEntry = Schemas['AuditEntry'];
/** A pending invitation to an organization (`inv_…`). @example `(await vb.orgs.invitations('acme').list())[0]?.email` */
export type Invitation = Schemas['Invitation'];

/**
 * Credentials for a git remote: a token (HTTPS) or an SSH key.
 * @example
 * ```ts
 * const auth: GitAuth = { type: 'token', token: process.env.GITHUB_TOKEN! };
 * ```
 */
export type GitAuth =
  | { type: 'token'; token: string; username?: string; persist?: boolean }
  | { type: 'ssh'; privateKey: string; knownHosts?: string; persist?: boolean };

/**
 * A repository cloned while the sandbox is created.
 * @example
 * ```ts
 * await vb.create({ template: 'node-20', git: { url: 'https://github.com/user/project.git', branch: 'main' } });
 * ```
 */
export interface GitSource {
  url: string;
  /** Default: the remote's default branch. */
  branch?: string;
  /** Default `/repo`. */
  path?: string;
  depth?: number;
  auth?: GitAuth;
  /** `false`: a failed clone still creates the sandbox (its `statusReason` says why). */
  failOnError?: boolean;
}

/**
 * How to create a sandbox (`vb.create()`); everything but `template` is optional.
 * @example
 * ```ts
 * const sandbox = await vb.create({ template: 'node-20', name: 'my-dev', ephemeral: true, timeout: '2h' });
 * ```
 */
export interface CreateOptions {
  /** `node-20`, `python-3`, `node-22-claude-code`… (`vb.templates()`); may be left out with `snapshot`. */
  template?: string;
  /** Unique among your live sandboxes; letters, digits, `-_.`. */
  name?: string;
  /** Start at once (default `true`); `false` leaves it `stopped`. */
  autoStart?: boolean;
  /** Ephemeral sandboxes always expire (default after 30 minutes). */
  ephemeral?: boolean;
  /** Time to live: seconds or `"30m"`, `"2h"`, `"1d"`; destroyed when it is up. */
  timeout?: Duration;
  /** Environment variables for every command. */
  env?: Record<string, string>;
  /** Your labels (string values), filterable in `vb.list()`. */
  metadata?: Record<string, string>;
  /** CPU cores and memory (`"512m"`, `"2g"`). */
  resources?: { cpu?: number; memory?: string | number; disk?: string | number };
  /** A repository to clone before the sandbox is running: a URL or {@link GitSource}. */
  git?: string | GitSource;
  /** Start from a snapshot (`snap_…`) instead of the template's image. */
  snapshot?: string;
  /** Pause after this long without activity (`"15m"`). */
  autoPause?: Duration;
  /** Commands and file calls on the paused sandbox resume it. */
  autoResume?: boolean;
  /** Time spent paused does not count toward the expiry. */
  pauseStopsTimeout?: boolean;
  /**
   * If the template's image is still being built, the server waits for it (up to its
   * `VIBEBOX_TEMPLATE_WAIT`, 10 minutes by default) instead of throwing `TemplateBuildingError`.
   */
  wait?: boolean;
  /** The egress policy; keys left out come from the template's and the organization's defaults. */
  network?: NetworkChanges;
  /** Run only on an engine of the server that has all these labels (`{ region: 'eu' }`), merged with those the template and the organization require (kept as the sandbox's `nodeLabels`); `NoMatchingNodeError` when none has them, `NodeLabelsConflictError` when one is required with another value. */
  nodeLabels?: Record<string, string>;
}

/**
 * Filters for `vb.list()`.
 * @example
 * ```ts
 * await vb.list({ status: 'running', metadata: { team: 'ml' } });
 * ```
 */
export interface ListOptions {
  /** One status or several (`running`, `paused`, `stopped`…). */
  status?: string | string[];
  template?: string;
  name?: string;
  metadata?: Record<string, string>;
  /** At most this many (default: all). */
  limit?: number;
}
