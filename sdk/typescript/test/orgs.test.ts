// Organizations and their members against the live server. A key sees only the organization it
// acts in, so a new organization is managed with a key made in it. The member added is the
// outsider key's user (`ts-outsider`, made by the pytest driver).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  AuthenticationError,
  ConflictError,
  LastOwnerError,
  MemberNotFoundError,
  OrgNotFoundError,
  UserNotFoundError,
  ValidationError,
  VibeBox,
  type Member,
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
});
