// Organizations and their members against the live server. A key sees only the organization it
// acts in, so a new organization is managed with a key made in it. The member added is the
// outsider key's user (`ts-outsider`, made by the pytest driver); with a custom role and in a
// team, their own key made in the organization shows what the two give them.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  AuthenticationError,
  ConflictError,
  LastOwnerError,
  MemberNotFoundError,
  NoMatchingNodeError,
  NodeLabelsConflictError,
  OrgNotFoundError,
  PermissionDeniedError,
  RoleBuiltInError,
  RoleInUseError,
  RoleNameTakenError,
  RoleNotFoundError,
  TeamNameTakenError,
  TeamNotFoundError,
  UserNotFoundError,
  ValidationError,
  VibeBox,
  type Member,
  type Permission,
  type Role,
  type Team,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater, uniqueName } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
const OUTSIDER = 'ts-outsider';

describe('orgs', () => {
  test('a key lists its own (personal) organization only', async () => {
    const orgs = await vb.orgs.list();
    assert.equal(orgs.length, 1);
    const [own] = orgs;
    assert.ok(own?.personal && own.role === 'owner', JSON.stringify(own));
    assert.ok(own.permissions.includes('members.manage'));
    assert.equal((await vb.orgs.get(own)).slug, own.slug);
    const personal = await vb.orgs.members(own.slug).add(OUTSIDER, { role: 'viewer' }).catch((e: unknown) => e);
    assert.ok(personal instanceof ConflictError && personal.code === 'personal_org', String(personal));
    await assert.rejects(vb.orgs.get(uniqueName('no-such-org')), OrgNotFoundError);
    // The outsider's key sees its own personal organization, not this one.
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.orgs.get(own.slug), OrgNotFoundError);
  });

  test("the organization's node labels bind its creates (the server's engine has none)", async () => {
    const [own] = await vb.orgs.list();
    assert.ok(own);
    assert.deepEqual(own.nodeLabels, {});
    try {
      assert.deepEqual((await vb.orgs.update(own, { nodeLabels: { dedicated: 'ts' } })).nodeLabels, { dedicated: 'ts' });
      const conflict = await vb.create({ template: 'node-20', nodeLabels: { dedicated: 'other' } }).catch((e: unknown) => e);
      assert.ok(conflict instanceof NodeLabelsConflictError && conflict instanceof NoMatchingNodeError, String(conflict));
      assert.deepEqual(conflict.details, { key: 'dedicated', values: { request: 'other', organization: 'ts' } });
      const nowhere = await vb.create({ template: 'node-20' }).catch((e: unknown) => e);
      assert.ok(nowhere instanceof NoMatchingNodeError && !(nowhere instanceof NodeLabelsConflictError), String(nowhere));
      assert.deepEqual(nowhere.details, { nodeLabels: { dedicated: 'ts' } });
    } finally {
      await vb.orgs.update(own, { nodeLabels: {} });
    }
    assert.deepEqual((await vb.orgs.get(own)).nodeLabels, {});
  });

  test('create, a key in it, members and roles, last owner, rename, delete', async () => {
    const slug = uniqueName('ts-org');
    const org = await vb.orgs.create('TS Org', { slug });
    assert.deepEqual([org.slug, org.name, org.role, org.personal], [slug, 'TS Org', 'owner', false]);
    await assert.rejects(vb.orgs.get(slug), OrgNotFoundError); // the calling key acts in its personal org
    const taken = await vb.orgs.create('again', { slug }).catch((e: unknown) => e);
    assert.ok(taken instanceof ConflictError && taken.code === 'org_slug_taken', String(taken));

    const key = await vb.keys.create(uniqueName('ts-org-admin'), { org: slug });
    assert.equal(key.org, slug);
    assert.equal((await vb.keys.get(key.id)).org, slug);
    const acme = new VibeBox({ apiKey: key.key, baseUrl: API_URL });
    cleanupLater(() => acme.orgs.delete(slug));
    assert.deepEqual((await acme.orgs.list()).map((o) => o.slug), [slug]);
    const everyone = await acme.keys.list({ everyone: true }); // the owner holds keys.manage
    assert.deepEqual(everyone.map((k) => [k.id, k.org, Boolean(k.user)]), [[key.id, slug, true]]);

    const team = acme.orgs.members(org);
    const [owner] = await team.list();
    assert.equal(owner?.role, 'owner');
    const added: Member = await team.add(OUTSIDER, { role: 'developer' });
    assert.deepEqual([added.username, added.role], [OUTSIDER, 'developer']);
    const again = await team.add(OUTSIDER, { role: 'viewer' }).catch((e: unknown) => e);
    assert.ok(again instanceof ConflictError && again.code === 'already_member', String(again));
    await assert.rejects(team.add(uniqueName('nobody'), { role: 'viewer' }), UserNotFoundError);
    await assert.rejects(team.add(`${uniqueName('nobody')}@example.com`, { role: 'viewer' }), UserNotFoundError);
    const role = await team.add(OUTSIDER, { role: 'wizard' }).catch((e: unknown) => e);
    assert.ok(role instanceof ValidationError && role.code === 'unknown_role', String(role));

    assert.equal((await team.update(added.id, { role: 'admin' })).role, 'admin');
    const last = await team.update(owner.id, { role: 'admin' }).catch((e: unknown) => e);
    assert.ok(last instanceof LastOwnerError && last instanceof ConflictError, String(last));
    assert.deepEqual([last.status, last.code, last.details.org], [409, 'last_owner', slug]);
    await assert.rejects(team.remove(owner.id), LastOwnerError);

    await team.remove(added.id);
    assert.deepEqual((await team.list()).map((m) => m.username), [owner.username]);
    await assert.rejects(team.remove(added.id), MemberNotFoundError);

    assert.equal((await acme.orgs.update(slug, { name: 'TS Org Renamed' })).name, 'TS Org Renamed');
    await acme.orgs.delete(slug);
    await assert.rejects(acme.orgs.list(), AuthenticationError); // its keys went with it
  });

  test('custom roles and teams decide what a member may do', async () => {
    const BUILT_IN = ['owner', 'admin', 'developer', 'viewer', 'billing'];
    const slug = uniqueName('ts-roles');
    await vb.orgs.create('TS Roles', { slug });
    const acme = new VibeBox({ apiKey: (await vb.keys.create(uniqueName('ts-roles-admin'), { org: slug })).key, baseUrl: API_URL });
    cleanupLater(() => acme.orgs.delete(slug));
    const roles = acme.orgs.roles(slug);
    const teams = acme.orgs.teams(slug);

    const listed: Role[] = await roles.list();
    assert.deepEqual(listed.map((r) => [r.name, r.builtIn]), BUILT_IN.map((name) => [name, true]));
    const deployer = await roles.create('deployer', { permissions: ['sandboxes.read', 'sandboxes.create'], description: 'CI' });
    assert.deepEqual(deployer, { name: 'deployer', builtIn: false, description: 'CI', permissions: ['sandboxes.create', 'sandboxes.read'] });
    assert.deepEqual(await roles.get(deployer), deployer);
    assert.deepEqual((await roles.list()).map((r) => r.name), [...BUILT_IN, 'deployer']);
    const taken = await roles.create('deployer', { permissions: [] }).catch((e: unknown) => e);
    assert.ok(taken instanceof RoleNameTakenError && taken instanceof ConflictError, String(taken));
    assert.deepEqual(taken.details, { role: 'deployer' });
    await assert.rejects(roles.create('admin', { permissions: ['sandboxes.read'] }), RoleNameTakenError);
    // The request's validation refuses an unknown permission first (validation_error, the field named).
    const unknown = await roles.create('wizard', { permissions: ['sandboxes.fly' as Permission] }).catch((e: unknown) => e);
    assert.ok(unknown instanceof ValidationError && unknown.code === 'validation_error', String(unknown));
    assert.ok('permissions.0' in (unknown.details.fields as Record<string, unknown>), JSON.stringify(unknown.details));
    await assert.rejects(roles.get('no-such-role'), RoleNotFoundError);
    const owner = await roles.get('owner'); // built-in roles are read by name, never changed or deleted
    assert.ok(owner.builtIn && owner.permissions.includes('org.delete'), JSON.stringify(owner));
    const builtIn = await roles.update('owner', { description: 'mine' }).catch((e: unknown) => e);
    assert.ok(builtIn instanceof RoleBuiltInError && builtIn instanceof ConflictError && builtIn.code === 'role_built_in', String(builtIn));
    await assert.rejects(roles.delete('viewer'), RoleBuiltInError);

    const platform = await teams.create('platform', { role: 'developer' });
    assert.deepEqual([platform.name, platform.role, platform.members], ['platform', 'developer', []]);
    assert.ok(platform.createdAt);
    assert.equal((await teams.create('readers')).role, null);
    const teamTaken = await teams.create('platform').catch((e: unknown) => e);
    assert.ok(teamTaken instanceof TeamNameTakenError && teamTaken instanceof ConflictError, String(teamTaken));
    const noRole = await teams.create('wizards', { role: 'wizard' }).catch((e: unknown) => e);
    assert.ok(noRole instanceof ValidationError && noRole.code === 'unknown_role', String(noRole));
    await assert.rejects(teams.addMember('platform', OUTSIDER), MemberNotFoundError); // not a member yet
    await assert.rejects(teams.addMember('platform', uniqueName('nobody')), UserNotFoundError);
    await assert.rejects(teams.addMember('no-such-team', OUTSIDER), TeamNotFoundError);

    const holder: Member = await acme.orgs.members(slug).add(OUTSIDER, { role: 'deployer' });
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    const mine = new VibeBox({ apiKey: (await outsider.keys.create(uniqueName('ts-in-roles'), { org: slug })).key, baseUrl: API_URL });
    assert.deepEqual((await mine.orgs.get(slug)).permissions, ['sandboxes.create', 'sandboxes.read']);
    const denied = await mine.orgs.roles(slug).create('mine', { permissions: ['sandboxes.read'] }).catch((e: unknown) => e);
    assert.ok(denied instanceof PermissionDeniedError && denied.details.permission === 'members.manage', String(denied));
    assert.deepEqual((await mine.orgs.teams(slug).list()).map((t) => t.name), ['platform', 'readers']); // reading: any member

    const inUse = await roles.delete('deployer').catch((e: unknown) => e);
    assert.ok(inUse instanceof RoleInUseError && inUse instanceof ConflictError, String(inUse));
    const changed = await roles.update('deployer', { permissions: ['sandboxes.read'], description: 'read only' });
    assert.deepEqual([changed.permissions, changed.description], [['sandboxes.read'], 'read only']);
    assert.deepEqual((await mine.orgs.get(slug)).permissions, ['sandboxes.read']); // every holder, at once

    const joined: Team = await teams.addMember(platform, OUTSIDER);
    assert.deepEqual(joined.members, [OUTSIDER]);
    assert.deepEqual((await mine.orgs.get(slug)).permissions, ['sandboxes.create', 'sandboxes.exec', 'sandboxes.read', 'templates.submit']);
    const infra = await teams.update('platform', { name: 'infra', role: '' });
    assert.deepEqual([infra.name, infra.role, infra.members], ['infra', null, [OUTSIDER]]);
    await assert.rejects(teams.get('platform'), TeamNotFoundError);
    assert.deepEqual((await mine.orgs.get(slug)).permissions, ['sandboxes.read']);
    assert.equal((await teams.update(infra, { role: 'deployer' })).role, 'deployer');

    await teams.removeMember('infra', OUTSIDER);
    assert.deepEqual((await teams.get('infra')).members, []);
    await assert.rejects(teams.removeMember('infra', OUTSIDER), MemberNotFoundError);
    await assert.rejects(roles.delete('deployer'), RoleInUseError); // the member and the team hold it
    await teams.delete('infra');
    await teams.delete('readers');
    assert.deepEqual(await teams.list(), []);
    await assert.rejects(teams.delete('infra'), TeamNotFoundError);
    await acme.orgs.members(slug).update(holder.id, { role: 'viewer' });
    await roles.delete('deployer');
    await assert.rejects(roles.get('deployer'), RoleNotFoundError);
    assert.deepEqual((await roles.list()).map((r) => r.name), BUILT_IN);
    await acme.orgs.delete(slug);
  });
});
