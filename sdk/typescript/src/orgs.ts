/**
 * `vb.orgs`: your organizations, their members, roles and teams. Reading needs no scope; changes need the
 * `orgs:manage` scope and, in the organization, the permission of your role. A key sees only the
 * organization it acts in: to manage a new one, create a key in it (`vb.keys.create(name, { org })`).
 * @module
 */

import { exportLines } from './exports.js';
import { API, LONG, body, segment } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { AuditEntry, Invitation, Member, Organization, Permission, Role, Schemas, Team } from './types.js';

/**
 * An organization: its slug, or the organization itself.
 * @example
 * ```ts
 * const ref: OrgRef = 'acme';
 * ```
 */
export type OrgRef = string | Pick<Organization, 'slug'>;

/**
 * What `vb.orgs.update()` changes.
 * @example
 * ```ts
 * await vb.orgs.update('acme', { name: 'Acme Inc.', slug: 'acme-inc' });
 * ```
 */
export interface OrgUpdateOptions {
  name?: string;
  /** 1–50 lowercase letters, digits and hyphens; taken: `409 org_slug_taken`. */
  slug?: string;
  /**
   * Package registry mirrors used by installs in the organization's sandboxes: `{ pip: 'https://…/simple',
   * npm: 'https://…' }` (pip, npm, cargo, gem, go, maven); `null` removes one, others stay.
   */
  registryMirrors?: Record<string, string | null>;
  /**
   * The node labels the engine of every new sandbox of the organization must have (`{ dedicated: 'acme' }`),
   * merged with a create's `nodeLabels`: replaces the set, `{}` clears it.
   */
  nodeLabels?: Record<string, string>;
}

/**
 * A role: its name, or the role itself.
 * @example
 * ```ts
 * const ref: RoleRef = 'deployer';
 * ```
 */
export type RoleRef = string | Pick<Role, 'name'>;

/**
 * A team: its name, or the team itself.
 * @example
 * ```ts
 * const ref: TeamRef = 'platform';
 * ```
 */
export type TeamRef = string | Pick<Team, 'name'>;

/**
 * What `vb.orgs.roles(org).create()` takes besides the name.
 * @example
 * ```ts
 * const options: RoleCreateOptions = { permissions: ['sandboxes.read'], description: 'read only' };
 * ```
 */
export interface RoleCreateOptions {
  /** From the documented list (docs/api.md, "Organizations"); you must hold them all. */
  permissions: Permission[];
  /** At most 200 characters. */
  description?: string;
}

/**
 * What `vb.orgs.roles(org).update()` changes.
 * @example
 * ```ts
 * await vb.orgs.roles('acme').update('deployer', { permissions: ['sandboxes.read'] });
 * ```
 */
export interface RoleUpdateOptions {
  /** What every holder of the role may do, at once. */
  permissions?: Permission[];
  description?: string;
}

/**
 * What `vb.orgs.teams(org).update()` changes.
 * @example
 * ```ts
 * await vb.orgs.teams('acme').update('platform', { name: 'infra', role: '' });
 * ```
 */
export interface TeamUpdateOptions {
  /** A new name (`TeamNameTakenError` when taken). */
  name?: string;
  /** Another role for its members; `''` takes the team's role away. */
  role?: string;
}

const FEATURE = 'organizations';
const AUDIT = 'the audit log';
const INVITATIONS = 'invitations';

/**
 * Filters of the audit log: `actor` (a username or key id), `action` (`sandbox.created`, or a
 * family: `sandbox.`), `target` (an id, or `type:id`), `since` and `until` (ISO 8601 with a zone, or Dates).
 * @example
 * ```ts
 * const filters: AuditFilters = { action: 'sandbox.', since: new Date(Date.now() - 3_600_000) };
 * ```
 */
export interface AuditFilters {
  actor?: string;
  action?: string;
  target?: string;
  since?: string | Date;
  until?: string | Date;
}

/**
 * What `vb.orgs.auditLog()` takes: filters, `limit` (at most this many entries in all) and
 * `pageSize` (entries per request, 1–500, default 100).
 * @example
 * ```ts
 * const options: AuditLogOptions = { action: 'member.', limit: 20 };
 * ```
 */
export interface AuditLogOptions extends AuditFilters {
  limit?: number;
  pageSize?: number;
}

/**
 * What `vb.orgs.exportAuditLog()` takes: filters and `format` (`jsonl`, the default, or `csv`).
 * @example
 * ```ts
 * const options: AuditExportOptions = { format: 'csv', action: 'sandbox.' };
 * ```
 */
export interface AuditExportOptions extends AuditFilters {
  format?: 'jsonl' | 'csv';
}

/**
 * One page of the audit log, newest first: `nextCursor` leads to older entries, `previousCursor`
 * to newer ones (`undefined` at the ends).
 * @example
 * ```ts
 * const page: AuditPage = await vb.orgs.auditLog('acme').page();
 * ```
 */
export interface AuditPage {
  entries: AuditEntry[];
  nextCursor: string | undefined;
  previousCursor: string | undefined;
}

function auditQuery(filters: AuditFilters): Query {
  const when = (value: string | Date | undefined) => (value instanceof Date ? value.toISOString() : value);
  const { actor, action, target } = filters;
  return { actor, action, target, since: when(filters.since), until: when(filters.until) };
}

/** The `cursor` a `next`/`previous` link carries (the link names the server as it saw itself). */
function cursorOf(link: string | null | undefined): string | undefined {
  if (!link) return undefined;
  return new URL(link, 'http://server.invalid').searchParams.get('cursor') ?? undefined;
}

/**
 * An organization's audit log, newest first (`vb.orgs.auditLog()`): `for await` gives every
 * matching entry, fetching pages as it goes along their cursors; `page()` gets one page.
 * @example
 * ```ts
 * for await (const entry of vb.orgs.auditLog('acme', { action: 'sandbox.', limit: 50 })) {
 *   console.log(entry.seq, entry.actor, entry.action, entry.targetId);
 * }
 * ```
 */
export class AuditLog implements AsyncIterable<AuditEntry> {
  constructor(
    private readonly transport: Transport,
    private readonly org: OrgRef,
    private readonly options: AuditLogOptions = {},
  ) {}

  /**
   * One page: `cursor` from an earlier page (none: the newest), `limit` entries (1–500, default the page size).
   * @example
   * ```ts
   * const first = await log.page(undefined, { limit: 10 });
   * const older = first.nextCursor ? await log.page(first.nextCursor) : undefined;
   * ```
   */
  async page(cursor?: string, options: { limit?: number } = {}): Promise<AuditPage> {
    const query = { ...auditQuery(this.options), cursor, limit: options.limit ?? this.size() };
    const path = orgPath(this.org, 'audit-log');
    const data = await this.transport.json<{ next: string | null; previous: string | null; results: AuditEntry[] }>({
      method: 'GET',
      path,
      query,
      feature: AUDIT,
    });
    return { entries: data.results, nextCursor: cursorOf(data.next), previousCursor: cursorOf(data.previous) };
  }

  private size(): number {
    const pageSize = this.options.pageSize ?? 100;
    return this.options.limit ? Math.min(pageSize, this.options.limit) : pageSize;
  }

  /**
   * Every matching entry, newest first (at most `limit`).
   * @example
   * ```ts
   * const entries = [];
   * for await (const entry of vb.orgs.auditLog('acme')) entries.push(entry);
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<AuditEntry> {
    const { limit } = this.options;
    let cursor: string | undefined;
    let seen = 0;
    for (;;) {
      const page = await this.page(cursor);
      for (const entry of page.entries) {
        if (limit !== undefined && seen >= limit) return;
        seen += 1;
        yield entry;
      }
      if (!page.nextCursor || page.entries.length === 0) return;
      cursor = page.nextCursor;
    }
  }

  /**
   * Every matching entry in an array (at most `limit`).
   * @example
   * ```ts
   * const recent = await vb.orgs.auditLog('acme', { limit: 20 }).toArray();
   * ```
   */
  async toArray(): Promise<AuditEntry[]> {
    const found: AuditEntry[] = [];
    for await (const entry of this) found.push(entry);
    return found;
  }
}

function nameOf(ref: RoleRef | TeamRef): string {
  return typeof ref === 'string' ? ref : ref.name;
}

function orgPath(org: OrgRef, ...parts: string[]): string {
  const slug = typeof org === 'string' ? org : org.slug;
  return [`${API}/orgs`, ...[slug, ...parts].map((part) => segment(part))].join('/');
}

/**
 * Organizations: list, create, get, update, delete, and `members(org)`.
 * @example
 * ```ts
 * const acme = await vb.orgs.create('Acme', { slug: 'acme' }); // you are its owner
 * const { key } = await vb.keys.create('acme admin', { org: acme.slug });
 * const admin = new VibeBox({ apiKey: key });
 * await admin.orgs.members('acme').add('bob', { role: 'developer' });
 * ```
 */
export class Orgs {
  constructor(private readonly transport: Transport) {}

  /**
   * Your organizations, each with your `role` and `permissions` (a key: only its own).
   * @example
   * ```ts
   * const [own] = await vb.orgs.list();
   * ```
   */
  list(): Promise<Organization[]> {
    return this.transport.json({ method: 'GET', path: `${API}/orgs`, feature: FEATURE });
  }

  /**
   * A new organization; you are its owner. `slug` defaults to one made from the name.
   * @example
   * ```ts
   * const org = await vb.orgs.create('Acme', { slug: 'acme' });
   * ```
   */
  create(name: string, options: { slug?: string } = {}): Promise<Organization> {
    const json = body({ name, ...options }) satisfies Partial<Record<keyof Schemas['OrganizationCreateRequest'], unknown>>;
    return this.transport.json({ method: 'POST', path: `${API}/orgs`, json, feature: FEATURE });
  }

  /**
   * One organization of yours (`OrgNotFoundError` for any other).
   * @example
   * ```ts
   * const { role, permissions } = await vb.orgs.get('acme');
   * ```
   */
  get(org: OrgRef): Promise<Organization> {
    return this.transport.json({ method: 'GET', path: orgPath(org), feature: FEATURE });
  }

  /**
   * Renames it or changes its slug (the org.manage permission).
   * @example
   * ```ts
   * await vb.orgs.update('acme', { name: 'Acme Inc.' });
   * ```
   */
  update(org: OrgRef, options: OrgUpdateOptions): Promise<Organization> {
    const json = body({ ...options }) satisfies Partial<Record<keyof Schemas['PatchedOrganizationUpdateRequest'], unknown>>;
    return this.transport.json({ method: 'PATCH', path: orgPath(org), json, feature: FEATURE });
  }

  /**
   * Deletes it with its keys (org.delete); `OrgNotEmptyError` while it has sandboxes or snapshots.
   * @example
   * ```ts
   * await vb.orgs.delete('acme');
   * ```
   */
  async delete(org: OrgRef): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: orgPath(org), feature: FEATURE });
  }

  /**
   * The members of one organization.
   * @example
   * ```ts
   * const members = await vb.orgs.members('acme').list();
   * ```
   */
  members(org: OrgRef): Members {
    return new Members(this.transport, org);
  }

  /**
   * The roles of one organization: the built-in ones and its custom ones.
   * @example
   * ```ts
   * const roles = await vb.orgs.roles('acme').list();
   * ```
   */
  roles(org: OrgRef): Roles {
    return new Roles(this.transport, org);
  }

  /**
   * The teams of one organization.
   * @example
   * ```ts
   * const teams = await vb.orgs.teams('acme').list();
   * ```
   */
  teams(org: OrgRef): Teams {
    return new Teams(this.transport, org);
  }

  /**
   * The pending invitations of one organization.
   * @example
   * ```ts
   * await vb.orgs.invitations('acme').create('ann@example.com', { role: 'developer' });
   * ```
   */
  invitations(org: OrgRef): OrgInvitations {
    return new OrgInvitations(this.transport, org);
  }

  /**
   * The organization's audit log, newest first (the audit.read permission; a key needs the
   * `audit:read` scope): iterate it with `for await`, or get one page with `.page()`.
   * @example
   * ```ts
   * for await (const entry of vb.orgs.auditLog('acme', { actor: 'bob', since: '2026-12-01T00:00:00Z' })) {
   *   console.log(entry.createdAt, entry.action);
   * }
   * ```
   */
  auditLog(org: OrgRef, options: AuditLogOptions = {}): AuditLog {
    return new AuditLog(this.transport, org, options);
  }

  /**
   * The whole filtered log, oldest first, streamed as JSON lines or CSV, each entry with its
   * hashes. With `to` (a file's path): written there, answers the number of bytes; without: its
   * lines (no line ends), as they arrive.
   * @example
   * ```ts
   * const bytes = await vb.orgs.exportAuditLog('acme', { to: 'audit.csv', format: 'csv' });
   * for await (const line of vb.orgs.exportAuditLog('acme', { action: 'key.' })) console.log(JSON.parse(line).action);
   * ```
   */
  exportAuditLog(org: OrgRef, options: AuditExportOptions & { to: string }): Promise<number>;
  exportAuditLog(org: OrgRef, options?: AuditExportOptions): AsyncGenerator<string>;
  exportAuditLog(
    org: OrgRef,
    options: AuditExportOptions & { to?: string } = {},
  ): Promise<number> | AsyncGenerator<string> {
    const call = {
      method: 'GET' as const,
      path: orgPath(org, 'audit-log', 'export'),
      query: { format: options.format ?? 'jsonl', ...auditQuery(options) },
      timeout: LONG,
      feature: AUDIT,
    };
    return exportLines(this.transport, call, options.to);
  }
}

/**
 * The members of one organization. Changes need the members.manage permission; anyone may remove
 * themselves (leave). The last owner stays one (`LastOwnerError`).
 * @example
 * ```ts
 * const team = vb.orgs.members('acme');
 * const bob = await team.add('bob@example.com', { role: 'viewer' });
 * await team.update(bob.id, { role: 'developer' });
 * await team.remove(bob.id);
 * ```
 */
export class Members {
  constructor(
    private readonly transport: Transport,
    private readonly org: OrgRef,
  ) {}

  private path(memberId?: number | string): string {
    return memberId === undefined ? orgPath(this.org, 'members') : orgPath(this.org, 'members', String(memberId));
  }

  /**
   * The members and their roles.
   * @example
   * ```ts
   * for (const member of await vb.orgs.members('acme').list()) console.log(member.username, member.role);
   * ```
   */
  list(): Promise<Member[]> {
    return this.transport.json({ method: 'GET', path: this.path(), feature: FEATURE });
  }

  /**
   * Adds an existing user by username, or by email when `user` holds an `@`; `role` is owner,
   * admin, developer, viewer, billing or a custom role of the organization.
   * @example
   * ```ts
   * const member = await vb.orgs.members('acme').add('bob', { role: 'developer' });
   * ```
   */
  add(user: string, options: { role: string }): Promise<Member> {
    const { role } = options;
    const json = (user.includes('@') ? { email: user, role } : { username: user, role }) satisfies Schemas['MemberAddRequest'];
    return this.transport.json({ method: 'POST', path: this.path(), json, feature: FEATURE });
  }

  /**
   * Changes a member's role (`memberId`: `Member.id`).
   * @example
   * ```ts
   * await vb.orgs.members('acme').update(member.id, { role: 'admin' });
   * ```
   */
  update(memberId: number | string, options: { role: string }): Promise<Member> {
    const json = { role: options.role } satisfies Schemas['PatchedMemberUpdateRequest'];
    return this.transport.json({ method: 'PATCH', path: this.path(memberId), json, feature: FEATURE });
  }

  /**
   * Removes a member: their keys in this organization stop working at once.
   * @example
   * ```ts
   * await vb.orgs.members('acme').remove(member.id);
   * ```
   */
  async remove(memberId: number | string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(memberId), feature: FEATURE });
  }
}

/**
 * The roles of one organization (`Role`: `name`, `builtIn`, `description`, `permissions`): the
 * built-in ones, then its custom ones. Reading: any member. Changes need the members.manage
 * permission and every permission the role gives or gave; built-in roles are never changed or deleted (`RoleBuiltInError`).
 * @example
 * ```ts
 * const roles = vb.orgs.roles('acme');
 * await roles.create('deployer', { permissions: ['sandboxes.read', 'sandboxes.create'], description: 'CI' });
 * await roles.update('deployer', { permissions: ['sandboxes.read'] }); // every holder, at once
 * await roles.delete('deployer'); // RoleInUseError while a member or team holds it
 * ```
 */
export class Roles {
  constructor(
    private readonly transport: Transport,
    private readonly org: OrgRef,
  ) {}

  private path(role?: RoleRef): string {
    return role === undefined ? orgPath(this.org, 'roles') : orgPath(this.org, 'roles', nameOf(role));
  }

  /**
   * Built-in roles (`builtIn: true`) first, then the organization's own.
   * @example
   * ```ts
   * const custom = (await vb.orgs.roles('acme').list()).filter((role) => !role.builtIn);
   * ```
   */
  list(): Promise<Role[]> {
    return this.transport.json({ method: 'GET', path: this.path(), feature: FEATURE });
  }

  /**
   * A custom role: `name` 1–50 of `a-z 0-9 _ -` (`RoleNameTakenError` when taken or built in).
   * @example
   * ```ts
   * const role = await vb.orgs.roles('acme').create('auditor', { permissions: ['audit.read'] });
   * ```
   */
  create(name: string, options: RoleCreateOptions): Promise<Role> {
    const { permissions, description } = options;
    const json = body({ name, permissions, description }) satisfies Partial<Schemas['RoleCreateRequest']>;
    return this.transport.json({ method: 'POST', path: this.path(), json, feature: FEATURE });
  }

  /**
   * A role, built-in or custom, by name (`RoleNotFoundError` when there is none).
   * @example
   * ```ts
   * const { permissions } = await vb.orgs.roles('acme').get('deployer');
   * ```
   */
  get(role: RoleRef): Promise<Role> {
    return this.transport.json({ method: 'GET', path: this.path(role), feature: FEATURE });
  }

  /**
   * Changes what the role grants (every member and team holding it, at once) or its description.
   * @example
   * ```ts
   * await vb.orgs.roles('acme').update('deployer', { description: 'deploys from CI' });
   * ```
   */
  update(role: RoleRef, options: RoleUpdateOptions): Promise<Role> {
    const { permissions, description } = options;
    const json = body({ permissions, description }) satisfies Schemas['PatchedRoleUpdateRequest'];
    return this.transport.json({ method: 'PATCH', path: this.path(role), json, feature: FEATURE });
  }

  /**
   * Deletes a custom role; `RoleInUseError` while a member or team holds it.
   * @example
   * ```ts
   * await vb.orgs.roles('acme').delete('deployer');
   * ```
   */
  async delete(role: RoleRef): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(role), feature: FEATURE });
  }
}

/**
 * The teams of one organization (`Team`: `name`, `role`, `members`). Members of a team inherit
 * its role (`null`: a team that grants nothing). Reading: any member; changes need members.manage
 * and every permission of the team's role.
 * @example
 * ```ts
 * const teams = vb.orgs.teams('acme');
 * await teams.create('platform', { role: 'developer' });
 * await teams.addMember('platform', 'bob');
 * await teams.update('platform', { name: 'infra', role: '' });
 * await teams.removeMember('infra', 'bob');
 * await teams.delete('infra');
 * ```
 */
export class Teams {
  constructor(
    private readonly transport: Transport,
    private readonly org: OrgRef,
  ) {}

  private path(team?: TeamRef, ...parts: string[]): string {
    return team === undefined ? orgPath(this.org, 'teams') : orgPath(this.org, 'teams', nameOf(team), ...parts);
  }

  /**
   * The teams, their roles and members (usernames).
   * @example
   * ```ts
   * for (const team of await vb.orgs.teams('acme').list()) console.log(team.name, team.members);
   * ```
   */
  list(): Promise<Team[]> {
    return this.transport.json({ method: 'GET', path: this.path(), feature: FEATURE });
  }

  /**
   * A team (`TeamNameTakenError` when taken); `role`: built-in or custom, none by default.
   * @example
   * ```ts
   * const team = await vb.orgs.teams('acme').create('platform', { role: 'developer' });
   * ```
   */
  create(name: string, options: { role?: string } = {}): Promise<Team> {
    const json = body({ name, role: options.role }) satisfies Partial<Schemas['TeamCreateRequest']>;
    return this.transport.json({ method: 'POST', path: this.path(), json, feature: FEATURE });
  }

  /**
   * One team (`TeamNotFoundError` when there is none of this name).
   * @example
   * ```ts
   * const { members } = await vb.orgs.teams('acme').get('platform');
   * ```
   */
  get(team: TeamRef): Promise<Team> {
    return this.transport.json({ method: 'GET', path: this.path(team), feature: FEATURE });
  }

  /**
   * Renames the team, or gives it another role (`role: ''` takes its role away).
   * @example
   * ```ts
   * await vb.orgs.teams('acme').update('platform', { role: 'viewer' });
   * ```
   */
  update(team: TeamRef, options: TeamUpdateOptions): Promise<Team> {
    const json = body({ name: options.name, role: options.role }) satisfies Schemas['PatchedTeamUpdateRequest'];
    return this.transport.json({ method: 'PATCH', path: this.path(team), json, feature: FEATURE });
  }

  /**
   * Deletes the team: its members keep their own roles, not the team's.
   * @example
   * ```ts
   * await vb.orgs.teams('acme').delete('platform');
   * ```
   */
  async delete(team: TeamRef): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(team), feature: FEATURE });
  }

  /**
   * Adds a member of the organization to the team (`MemberNotFoundError` for anyone else);
   * answers the team.
   * @example
   * ```ts
   * const team = await vb.orgs.teams('acme').addMember('platform', 'bob');
   * ```
   */
  addMember(team: TeamRef, username: string): Promise<Team> {
    const json = { username } satisfies Schemas['TeamMemberAddRequest'];
    return this.transport.json({ method: 'POST', path: this.path(team, 'members'), json, feature: FEATURE });
  }

  /**
   * Takes a member out of the team (`MemberNotFoundError` when they are not in it).
   * @example
   * ```ts
   * await vb.orgs.teams('acme').removeMember('platform', 'bob');
   * ```
   */
  async removeMember(team: TeamRef, username: string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(team, 'members', username), feature: FEATURE });
  }
}

/**
 * The pending invitations of one organization. Everything needs the members.manage permission
 * and every permission of the invitation's role (a key: `orgs:manage` to write). The email
 * carries a signed link; the invited user accepts it with `vb.invitations.accept(token)`.
 * @example
 * ```ts
 * const invitations = vb.orgs.invitations('acme');
 * const invitation = await invitations.create('ann@example.com', { role: 'developer' });
 * await invitations.resend(invitation); // the same link, a fresh expiry
 * await invitations.revoke(invitation); // the link stops working
 * ```
 */
export class OrgInvitations {
  constructor(
    private readonly transport: Transport,
    private readonly org: OrgRef,
  ) {}

  private path(invitation?: Invitation | string, ...parts: string[]): string {
    if (invitation === undefined) return orgPath(this.org, 'invitations');
    return orgPath(this.org, 'invitations', typeof invitation === 'string' ? invitation : invitation.id, ...parts);
  }

  /**
   * Pending invitations, expired ones too (`expired: true`) until revoked or sent again.
   * @example
   * ```ts
   * const pending = await vb.orgs.invitations('acme').list();
   * ```
   */
  list(): Promise<Invitation[]> {
    return this.transport.json({ method: 'GET', path: this.path(), feature: INVITATIONS });
  }

  /**
   * Invites an address with a role and emails it the link. An address with a pending invitation
   * has that one sent again with this role and a fresh expiry; a member's address is a
   * `ConflictError` (`already_member`).
   * @example
   * ```ts
   * const invitation = await vb.orgs.invitations('acme').create('ann@example.com', { role: 'viewer' });
   * ```
   */
  create(email: string, options: { role: string }): Promise<Invitation> {
    const json = { email, role: options.role } satisfies Schemas['InvitationCreateRequest'];
    return this.transport.json({ method: 'POST', path: this.path(), json, feature: INVITATIONS });
  }

  /**
   * Sends the email again, with a fresh expiry (`InvitationNotFoundError` once accepted or revoked).
   * @example
   * ```ts
   * await vb.orgs.invitations('acme').resend('inv_123');
   * ```
   */
  resend(invitation: Invitation | string): Promise<Invitation> {
    return this.transport.json({ method: 'POST', path: this.path(invitation, 'resend'), feature: INVITATIONS });
  }

  /**
   * Revokes it: its link stops working.
   * @example
   * ```ts
   * await vb.orgs.invitations('acme').revoke('inv_123');
   * ```
   */
  async revoke(invitation: Invitation | string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(invitation), feature: INVITATIONS });
  }
}

/**
 * `vb.invitations.accept(token)`: joins the organization an invitation is for, with its role;
 * answers that organization (your role in it now). The caller's email must be the invited
 * address (`InvitationEmailMismatchError`); a wrong or revoked link is `InvitationNotFoundError`,
 * an expired one `InvitationExpiredError`, one used already `InvitationAcceptedError` (both `GoneError`, 410).
 * @example
 * ```ts
 * const org = await vb.invitations.accept('https://vibebox.example.com/invitations/eyJp…');
 * ```
 */
export class Invitations {
  constructor(private readonly transport: Transport) {}

  /**
   * Accepts an invitation: `token` is the link's last part, or the whole link.
   * @example
   * ```ts
   * const { slug, role } = await vb.invitations.accept(token);
   * ```
   */
  accept(token: string): Promise<Organization> {
    let value = token.trim();
    if (value.includes('/invitations/')) value = value.replace(/\/+$/, '').split('/').pop() ?? value;
    const json = { token: value } satisfies Schemas['InvitationAcceptRequest'];
    return this.transport.json({ method: 'POST', path: `${API}/invitations/accept`, json, feature: INVITATIONS });
  }
}
