/**
 * `vb.orgs`: your organizations, their members, roles and teams. Reading needs no scope; changes need the
 * `orgs:manage` scope and, in the organization, the permission of your role. A key sees only the
 * organization it acts in: to manage a new one, create a key in it (`vb.keys.create(name, { org })`).
 * @module
 */

import { API, body, segment } from './paths.js';
import type { Transport } from './transport.js';
import type { Member, Organization, Permission, Role, Schemas, Team } from './types.js';

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
 * permission and every permission the role gives or gave; built-in roles cannot be changed.
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
   * A custom role (`RoleNotFoundError` for any other name, built-in ones included).
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
