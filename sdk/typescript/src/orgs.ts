/**
 * `vb.orgs`: your organizations and their members. Reading needs no scope; changes need the
 * `orgs:manage` scope and, in the organization, the permission of your role. A key sees only the
 * organization it acts in: to manage a new one, create a key in it (`vb.keys.create(name, { org })`).
 * @module
 */

import { API, body, segment } from './paths.js';
import type { Transport } from './transport.js';
import type { Member, Organization, Schemas } from './types.js';

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

const FEATURE = 'organizations';

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
