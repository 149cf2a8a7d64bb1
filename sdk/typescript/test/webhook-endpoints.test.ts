// vb.webhooks against the live server: create (the secret shown once), list, get, update, rotate,
// delete; a test event and a redelivery sent to a receiver on loopback (the pytest driver's server
// allows http and loopback targets and queues no sender: `deliver()` runs it through manage.py,
// as beat's pass would); deliveries listed newest first and one shown with its attempts; another
// organization's webhook a 404; error codes as the SDK's classes.
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';

import {
  DeliveryNotFoundError,
  PermissionDeniedError,
  UnknownEventError,
  ValidationError,
  VibeBox,
  WebhookNotFoundError,
  verifyWebhook,
  type Delivery,
  type WebhookRef,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater, manage, uniqueName } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

interface Received {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** A receiver on loopback: records each request, answers with the next of `answers` (then 200). */
class Receiver {
  readonly requests: Received[] = [];
  answers: number[] = [];
  url = '';
  private server?: Server;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        this.requests.push({ headers: req.headers, body: Buffer.concat(chunks) });
        res.writeHead(this.answers.shift() ?? 200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async stop(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve));
  }
}

/** Runs the webhook's sender once against the server's database; answers how many attempts it made. */
async function deliver(webhook: WebhookRef): Promise<number> {
  const id = typeof webhook === 'string' ? webhook : webhook.id;
  const code = `from apps.webhooks.delivery import deliver_webhook; print(deliver_webhook(${JSON.stringify(id)}))`;
  return Number(await manage('shell', '-c', code));
}

/** A webhook deleted when the suite ends (unless the test deleted it). */
async function made<T extends { id: string }>(hook: Promise<T>): Promise<T> {
  const created = await hook;
  cleanupLater(() => vb.webhooks.delete(created.id));
  return created;
}

describe('webhooks', () => {
  const receiver = new Receiver();
  before(() => receiver.start());
  after(() => receiver.stop());

  test('create shows the secret once; list, get, update, rotate, delete', async () => {
    const url = `https://hooks.example.com/${uniqueName('ts')}`;
    const hook = await made(
      vb.webhooks.create(url, ['sandbox.created', 'execution.failed'], { description: 'ci', filter: { template: 'python-3' } }),
    );
    assert.ok(hook.id.startsWith('whk_') && hook.secret.startsWith('whsec_'), JSON.stringify(hook));
    assert.deepEqual([hook.url, hook.events, hook.description, hook.active], [url, ['sandbox.created', 'execution.failed'], 'ci', true]);
    assert.deepEqual(hook.filter, { template: 'python-3' });

    const got = await vb.webhooks.get(hook.id);
    assert.equal(got.url, url);
    assert.ok(!('secret' in got), 'get never shows the secret');
    const listed = await vb.webhooks.list();
    assert.ok(listed.some((h) => h.id === hook.id) && listed.every((h) => !('secret' in h)));
    assert.deepEqual(await vb.webhooks.list({ limit: 1 }), listed.slice(0, 1)); // newest first

    const changed = await vb.webhooks.update(hook, { events: ['*'], active: false, filter: { sandboxId: 'sbx_x' } });
    assert.deepEqual([changed.events, changed.active, changed.filter], [['*'], false, { sandboxId: 'sbx_x' }]);
    const cleared = await vb.webhooks.update(hook.id, { filter: {}, active: true });
    assert.deepEqual([cleared.filter, cleared.active, cleared.description], [{}, true, 'ci']);

    const rotated = await vb.webhooks.rotateSecret(hook);
    assert.ok(rotated.secret.startsWith('whsec_') && rotated.secret !== hook.secret);
    assert.ok(rotated.previousSecretExpiresAt, 'the previous secret signs beside the new one for 24 h');

    await vb.webhooks.delete(hook);
    const missing = await vb.webhooks.get(hook).catch((e: unknown) => e);
    assert.ok(missing instanceof WebhookNotFoundError && missing.status === 404, String(missing));
    assert.ok(!(await vb.webhooks.list()).some((h) => h.id === hook.id));
  });

  test('a test event is delivered, listed, shown with its attempts, and redelivered', async () => {
    const hook = await made(vb.webhooks.create(receiver.url, ['sandbox.created'], { description: 'receiver' }));
    receiver.requests.length = 0;
    receiver.answers = [500]; // the first attempt fails; the server's retry schedule waits 0 s

    const queued = await vb.webhooks.test(hook);
    assert.ok(queued.id.startsWith('dlv_'));
    assert.deepEqual([queued.event, queued.status, queued.attempts, queued.webhookId], ['webhook.test', 'pending', 0, hook.id]);
    assert.equal(await deliver(hook), 2);

    assert.equal(receiver.requests.length, 2);
    for (const request of receiver.requests) {
      assert.equal(request.headers['webhook-id'], queued.eventId);
      const event = verifyWebhook(request.body, request.headers, hook.secret);
      assert.equal(event.type, 'webhook.test');
      assert.equal(event.data.webhookId, hook.id);
    }

    const [listed, ...rest] = await vb.webhooks.deliveries(hook);
    assert.equal(rest.length, 0);
    assert.deepEqual([listed?.id, listed?.status, listed?.attempts, listed?.responseStatus], [queued.id, 'succeeded', 2, 200]);

    const shown = await vb.webhooks.delivery(hook, queued);
    assert.equal(shown.payload.type, 'webhook.test');
    assert.deepEqual(shown.attemptLog.map((a) => a.statusCode), [500, 200]);
    assert.equal(shown.attemptLog[0]?.requestHeaders['webhook-id'], queued.eventId);
    assert.equal(shown.attemptLog[0]?.responseBody, '{"ok":true}');

    const again: Delivery = await vb.webhooks.redeliver(hook, queued.id);
    assert.notEqual(again.id, queued.id);
    assert.deepEqual([again.redeliveryOf, again.eventId, again.status], [queued.id, queued.eventId, 'pending']);
    assert.equal(await deliver(hook.id), 1);
    assert.equal(receiver.requests.length, 3);
    assert.equal(receiver.requests[2]?.headers['webhook-id'], queued.eventId); // the same id: receivers dedupe it
    assert.deepEqual(receiver.requests[2]?.body, receiver.requests[0]?.body);

    assert.deepEqual((await vb.webhooks.deliveries(hook)).map((d) => d.id), [again.id, queued.id]); // newest first
    assert.deepEqual((await vb.webhooks.deliveries(hook, { limit: 1 })).map((d) => d.id), [again.id]);
    assert.deepEqual(await vb.webhooks.deliveries(hook, { status: 'failed' }), []);
    const tests = await vb.webhooks.deliveries(hook, { event: 'webhook.test', status: 'succeeded' });
    assert.deepEqual(tests.map((d) => d.id), [again.id, queued.id]);
  });

  test("another organization's webhook is not found", async () => {
    const hook = await made(vb.webhooks.create('https://hooks.example.com/private', ['sandbox.created']));
    const delivery = await vb.webhooks.test(hook);
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    assert.ok(!(await outsider.webhooks.list()).some((h) => h.id === hook.id));
    const attempts: Array<() => Promise<unknown>> = [
      () => outsider.webhooks.get(hook),
      () => outsider.webhooks.update(hook, { description: 'mine now' }),
      () => outsider.webhooks.delete(hook),
      () => outsider.webhooks.rotateSecret(hook),
      () => outsider.webhooks.test(hook),
      () => outsider.webhooks.deliveries(hook),
      () => outsider.webhooks.delivery(hook, delivery),
      () => outsider.webhooks.redeliver(hook, delivery),
    ];
    for (const attempt of attempts) await assert.rejects(attempt(), WebhookNotFoundError);
    assert.equal((await vb.webhooks.get(hook)).description, ''); // nothing changed
    await assert.rejects(vb.webhooks.delivery(hook, 'dlv_nosuchdelivery'), DeliveryNotFoundError);
    await assert.rejects(vb.webhooks.redeliver(hook, 'dlv_nosuchdelivery'), DeliveryNotFoundError);
  });

  test("errors are the SDK's classes", async () => {
    const before = (await vb.webhooks.list()).map((h) => h.id);
    const unknown = await vb.webhooks
      // @ts-expect-error: not an event name (the types know them all)
      .create('https://hooks.example.com/x', ['sandbox.exploded'])
      .catch((e: unknown) => e);
    assert.ok(unknown instanceof UnknownEventError && unknown instanceof ValidationError, String(unknown));
    assert.deepEqual(unknown.details.unknown, ['sandbox.exploded']);
    const badUrl = await vb.webhooks.create('ftp://hooks.example.com/x', ['*']).catch((e: unknown) => e);
    assert.ok(badUrl instanceof ValidationError && badUrl.code === 'validation_error', String(badUrl));
    await assert.rejects(vb.webhooks.create('https://hooks.example.com/x', []), ValidationError);
    assert.deepEqual((await vb.webhooks.list()).map((h) => h.id), before); // nothing was made

    const hook = await made(vb.webhooks.create('https://hooks.example.com/x', ['*']));
    // @ts-expect-error: not an event name
    await assert.rejects(vb.webhooks.update(hook, { events: ['nope'] }), UnknownEventError);
    assert.deepEqual((await vb.webhooks.get(hook)).events, ['*']);
    await assert.rejects(vb.webhooks.update('whk_nosuchwebhook', { active: false }), WebhookNotFoundError);

    const narrow = await vb.keys.create(uniqueName('ts-no-webhooks'), { scopes: ['sandboxes:read'] });
    cleanupLater(() => vb.keys.revoke(narrow.id));
    const limited = new VibeBox({ apiKey: narrow.key, baseUrl: API_URL });
    const denied = await limited.webhooks.list().catch((e: unknown) => e);
    assert.ok(denied instanceof PermissionDeniedError && denied.status === 403, String(denied));
  });
});
