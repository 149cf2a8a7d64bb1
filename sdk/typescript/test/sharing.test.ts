// Sharing a sandbox (grants), an organization's audit log and its invitations, against the live
// server. Each test makes its own organization and manages it with a key made in it. The member is
// the outsider key's user (`ts-outsider`); the invited user is made here with `manage.py`, and an
// invitation's token comes from the server's own code (apps/orgs/tokens.py) through `manage.py
// shell`, as the email would have carried it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import {
  ConflictError,
  GoneError,
  GrantNotFoundError,
  InvitationAcceptedError,
  InvitationEmailMismatchError,
  InvitationExpiredError,
  InvitationNotFoundError,
  MemberNotFoundError,
  PermissionDeniedError,
  TeamNotFoundError,
  ValidationError,
  VibeBox,
  type AuditEntry,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater, manage, uniqueName } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
const OUTSIDER = 'ts-outsider';
const SCOPES = ['sandboxes:read', 'sandboxes:write', 'keys:manage', 'orgs:manage', 'audit:read'];

/** A new organization and a client with a key made in it (the organization is deleted at the end). */
async function newOrg(prefix: string): Promise<{ slug: string; acme: VibeBox }> {
  const slug = uniqueName(prefix);
  await vb.orgs.create('TS Sharing', { slug });
  const { key } = await vb.keys.create(uniqueName('ts-owner'), { org: slug, scopes: SCOPES });
  const acme = new VibeBox({ apiKey: key, baseUrl: API_URL });
  cleanupLater(() => acme.orgs.delete(slug));
  return { slug, acme };
}

function py(text: string): string {
  return JSON.stringify(text); // a Python string literal (JSON's escapes are Python's too)
}

describe('sharing', () => {
  test('share with a member and a team, list, change the level, unshare', async () => {
    const { slug, acme } = await newOrg('ts-share');
    await acme.orgs.members(slug).add(OUTSIDER, { role: 'billing' }); // no sandboxes.read of their own
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    const { key } = await outsider.keys.create(uniqueName('ts-grantee'), { org: slug });
    const grantee = new VibeBox({ apiKey: key, baseUrl: API_URL });
    const box = await acme.create({ template: 'python-3', autoStart: false }); // grants need no container
    cleanupLater(() => box.destroy());

    assert.deepEqual(await box.grants(), []);
    const denied = await grantee.get(box.id).catch((e: unknown) => e);
    assert.ok(denied instanceof PermissionDeniedError && denied.details.permission === 'sandboxes.read', String(denied));
    const grant = await box.share({ user: OUTSIDER, access: 'read' });
    assert.ok(grant.id.startsWith('grt_'));
    assert.deepEqual([grant.user, grant.team, grant.access], [OUTSIDER, null, 'read']);
    const seen = await grantee.get(box.id);
    assert.deepEqual((await seen.grants()).map((g) => g.id), [grant.id]);
    await assert.rejects(seen.share({ user: OUTSIDER, access: 'manage' }), PermissionDeniedError); // read is not manage

    const again = await box.share({ user: OUTSIDER, access: 'use' }); // its level changes
    assert.deepEqual([again.id, again.access], [grant.id, 'use']);
    await acme.orgs.teams(slug).create('readers');
    const teamGrant = await box.share({ team: 'readers', access: 'manage' });
    assert.deepEqual([teamGrant.user, teamGrant.team], [null, 'readers']);
    assert.deepEqual((await box.grants()).map((g) => [g.user ?? g.team, g.access]), [[OUTSIDER, 'use'], ['readers', 'manage']]);
    await assert.rejects(box.share({ user: uniqueName('nobody'), access: 'read' }), MemberNotFoundError);
    await assert.rejects(box.share({ team: 'no-such-team', access: 'read' }), TeamNotFoundError);
    await assert.rejects(box.share({ user: OUTSIDER, team: 'readers', access: 'read' }), ValidationError);

    await seen.unshare(grant); // a grantee may give up their own
    await assert.rejects(grantee.get(box.id), PermissionDeniedError);
    const missing = await box.unshare(grant.id).catch((e: unknown) => e);
    assert.ok(missing instanceof GrantNotFoundError && missing.status === 404, String(missing));
    await box.unshare(teamGrant);
    assert.deepEqual(await box.grants(), []);
    await box.destroy();
    await acme.orgs.members(slug).remove((await acme.orgs.members(slug).list()).find((m) => m.username === OUTSIDER)!.id);
  });
});

describe('audit log', () => {
  test('writes through the SDK read back, filtered, paged and exported', async () => {
    const { slug, acme } = await newOrg('ts-audit');
    await acme.orgs.teams(slug).create('red');
    await acme.orgs.teams(slug).create('blue');
    await acme.orgs.roles(slug).create('reader', { permissions: ['sandboxes.read'] });

    const entries: AuditEntry[] = await acme.orgs.auditLog(slug).toArray();
    const seqs = entries.map((e) => e.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => b - a)); // newest first
    assert.deepEqual(entries.slice(0, 3).map((e) => e.action), ['role.created', 'team.created', 'team.created']);
    const [latest, before] = entries;
    assert.ok(latest && before && latest.prevHash === before.hash && latest.source === 'api');
    assert.deepEqual(latest.changes.name, 'reader');

    const teams: string[] = [];
    for await (const entry of acme.orgs.auditLog(slug, { action: 'team.' })) teams.push(String(entry.changes.name));
    assert.deepEqual(teams, ['blue', 'red']);
    const byKey = await acme.orgs.auditLog(slug, { actor: latest.keyId }).toArray();
    assert.ok(byKey.length >= 3 && byKey.every((e) => e.keyId === latest.keyId));
    const target = `${latest.targetType}:${latest.targetId}`;
    assert.deepEqual((await acme.orgs.auditLog(slug, { target }).toArray()).map((e) => e.seq), [latest.seq]);
    const since = new Date(Date.parse(entries[2]!.createdAt));
    const recent = await acme.orgs.auditLog(slug, { since }).toArray();
    assert.deepEqual(recent.map((e) => e.seq).slice(0, 3), seqs.slice(0, 3));
    assert.deepEqual(await acme.orgs.auditLog(slug, { until: '2000-01-01T00:00:00Z' }).toArray(), []);
    await assert.rejects(acme.orgs.auditLog(slug, { since: '2026-01-01T00:00:00' }).toArray(), ValidationError);

    const log = acme.orgs.auditLog(slug, { pageSize: 2, limit: 3 });
    assert.deepEqual((await log.toArray()).map((e) => e.seq), seqs.slice(0, 3)); // across two pages
    const first = await log.page();
    assert.deepEqual(first.entries.map((e) => e.seq), seqs.slice(0, 2));
    assert.ok(first.nextCursor && first.previousCursor === undefined);
    const second = await log.page(first.nextCursor);
    assert.deepEqual(second.entries.map((e) => e.seq), seqs.slice(2, 4));
    assert.ok(second.previousCursor);
    await assert.rejects(log.page('not-a-cursor'), ValidationError);

    const lines: string[] = [];
    for await (const line of acme.orgs.exportAuditLog(slug)) lines.push(line);
    const rows = lines.map((line) => JSON.parse(line) as { seq: number; hash: string; prev: string });
    assert.deepEqual(rows.map((r) => r.seq), [...seqs].reverse()); // the whole log, oldest first
    assert.equal(rows[1]!.prev, rows[0]!.hash);
    const file = join(mkdtempSync(join(tmpdir(), 'ts-audit-')), 'audit.csv');
    const written = await acme.orgs.exportAuditLog(slug, { to: file, format: 'csv', action: 'team.' });
    assert.equal(written, statSync(file).size);
    const csv = readFileSync(file, 'utf8').trim().split('\n');
    assert.ok(csv[0]!.startsWith('seq,at,actor,') && csv.length === 3, csv.join('\n'));

    const { key } = await vb.keys.create(uniqueName('ts-no-audit'), { org: slug, scopes: ['sandboxes:read'] });
    const noScope = await new VibeBox({ apiKey: key, baseUrl: API_URL }).orgs.auditLog(slug).page().catch((e: unknown) => e);
    assert.ok(noScope instanceof PermissionDeniedError && noScope.code === 'insufficient_scope', String(noScope));
  });
});

describe('invitations', () => {
  test('invite, resend, revoke, accept; expired, used, wrong address', async () => {
    const { slug, acme } = await newOrg('ts-invite');
    const name = uniqueName('ts-invitee');
    const email = `${name}@example.com`;
    const inviteeKey = await manage('createapikey', '--user', name, '--scopes', 'all'); // accepting needs orgs:manage
    await manage('shell', '-c', `from django.contrib.auth import get_user_model; get_user_model().objects.filter(username=${py(name)}).update(email=${py(email)})`);
    const token = (id: string) =>
      manage('shell', '-c', `from types import SimpleNamespace; from apps.orgs.tokens import invitation_token; print(invitation_token(SimpleNamespace(pk=${py(id)})))`);
    const invitee = new VibeBox({ apiKey: inviteeKey, baseUrl: API_URL });
    const invitations = acme.orgs.invitations(slug);

    assert.deepEqual(await invitations.list(), []);
    const invitation = await invitations.create(email.toUpperCase(), { role: 'developer' });
    assert.ok(invitation.id.startsWith('inv_'));
    assert.deepEqual([invitation.email, invitation.role, invitation.expired], [email, 'developer', false]);
    assert.deepEqual((await invitations.list()).map((i) => i.id), [invitation.id]);
    const resent = await invitations.resend(invitation);
    assert.equal(resent.id, invitation.id);
    const other = await invitations.create(`x-${email}`, { role: 'viewer' });
    const otherToken = await token(other.id);
    await invitations.revoke(other.id);
    await assert.rejects(invitee.invitations.accept(otherToken), InvitationNotFoundError); // the link stopped working
    await assert.rejects(invitations.revoke(other), InvitationNotFoundError);

    const link = await token(invitation.id);
    const mismatch = await acme.invitations.accept(link).catch((e: unknown) => e); // the owner's address is not the invited one
    assert.ok(mismatch instanceof InvitationEmailMismatchError && mismatch instanceof PermissionDeniedError, String(mismatch));
    await manage('shell', '-c', `from datetime import timedelta; from django.utils import timezone; from apps.orgs.models import Invitation; Invitation.objects.filter(pk=${py(invitation.id)}).update(expires_at=timezone.now() - timedelta(minutes=1))`);
    assert.equal((await invitations.list())[0]?.expired, true);
    const expired = await invitee.invitations.accept(link).catch((e: unknown) => e);
    assert.ok(expired instanceof InvitationExpiredError && expired instanceof GoneError && expired.status === 410, String(expired));
    await invitations.resend(invitation.id); // renewed: the same link works again

    const joined = await invitee.invitations.accept(`${API_URL}/invitations/${link}`); // the whole link works too
    assert.deepEqual([joined.slug, joined.role], [slug, 'developer']);
    assert.ok((await acme.orgs.members(slug).list()).some((m) => m.username === name && m.role === 'developer'));
    const used = await invitee.invitations.accept(link).catch((e: unknown) => e);
    assert.ok(used instanceof InvitationAcceptedError && used instanceof GoneError && used.code === 'invitation_accepted', String(used));
    const member = await invitations.create(email, { role: 'viewer' }).catch((e: unknown) => e);
    assert.ok(member instanceof ConflictError && member.code === 'already_member', String(member));
  });
});
