// The client: configuration, typed errors, retries (against a local HTTP server that fails
// first), batch helpers and the ephemeral helpers, against the live server.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';

import {
  AuthenticationError,
  ConnectionError,
  NoMatchingNodeError,
  NotSupportedError,
  PermissionDeniedError,
  RateLimitError,
  Sandbox,
  SandboxNotFoundError,
  ServiceUnavailableError,
  TimeoutError,
  TemplateBuildingError,
  TemplateNotFoundError,
  TemplateUnavailableError,
  ValidationError,
  VibeBox,
  VibeBoxError,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, assertDestroyed, cleanupLater, uniqueName } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

type Handler = (request: IncomingMessage, response: ServerResponse, hit: number) => void;

/** A local HTTP server answering with `handler`; counts the requests it got. */
async function flakyServer(handler: Handler): Promise<{ url: string; hits: () => number; server: Server }> {
  let hits = 0;
  const server = createServer((request, response) => {
    hits += 1;
    request.resume();
    request.on('end', () => handler(request, response, hits));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, hits: () => hits, server };
}

function answer(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

const templatesBody = [{ name: 'node-20' }]; // GET /api/v1/templates answers an array

describe('configuration', () => {
  test('new VibeBox() reads VIBEBOX_API_KEY and VIBEBOX_API_URL', async () => {
    const saved = { key: process.env.VIBEBOX_API_KEY, url: process.env.VIBEBOX_API_URL };
    process.env.VIBEBOX_API_KEY = API_KEY;
    process.env.VIBEBOX_API_URL = API_URL;
    try {
      const fromEnv = new VibeBox();
      assert.equal(fromEnv.baseUrl, API_URL);
      const names = (await fromEnv.templates()).map((t) => t.name);
      assert.ok(names.includes('node-20') && names.includes('python-3.13'), String(names));
    } finally {
      process.env.VIBEBOX_API_KEY = saved.key;
      process.env.VIBEBOX_API_URL = saved.url;
    }
  });

  test('the key is never printed; credentials in the URL are refused', async () => {
    const client = new VibeBox({ apiKey: 'vb_live_secret_for_inspect', baseUrl: API_URL });
    const { inspect } = await import('node:util');
    assert.ok(!inspect(client, { depth: 10, showHidden: true }).includes('vb_live_secret_for_inspect'));
    assert.ok(!JSON.stringify(client).includes('vb_live_secret_for_inspect'));
    assert.throws(() => new VibeBox({ apiKey: 'k', baseUrl: 'http://user:pass@127.0.0.1:1' }), ValidationError);
  });

  test('explicit options win; region is accepted', async () => {
    const explicit = new VibeBox({ apiKey: API_KEY, baseUrl: `${API_URL}/`, region: 'us-east-1' });
    assert.equal(explicit.baseUrl, API_URL);
    assert.equal(explicit.region, 'us-east-1');
    assert.equal((await explicit.template('node-20')).name, 'node-20');
    assert.equal((await explicit.health()).ready, true);
  });
});

describe('status', () => {
  test('component health for any caller, SLOs for staff only', async () => {
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    const health = await outsider.status();
    assert.deepEqual(
      health.components.map((component) => component.name).sort(),
      ['api', 'engine', 'gateway', 'pools', 'redis', 'workers'],
    );
    assert.equal(health.components.find((component) => component.name === 'api')?.status, 'ok');
    await assert.rejects(outsider.slo(), PermissionDeniedError);
    const report = await vb.slo(); // the suite's key is a staff user's
    assert.deepEqual(
      report.slos.map((slo) => slo.name).sort(),
      ['api_availability', 'create_latency', 'exec_latency', 'webhook_delivery'],
    );
  });
});

describe('typed errors', () => {
  test('a wrong key is an AuthenticationError with the server code and request id', async () => {
    const wrong = new VibeBox({ apiKey: 'vb_live_wrong', baseUrl: API_URL });
    const error = await wrong.list().catch((e: unknown) => e);
    assert.ok(error instanceof AuthenticationError, String(error));
    assert.equal(error.status, 401);
    assert.equal(error.code, 'invalid_api_key');
    assert.ok(error.requestId);
  });

  test('missing and foreign sandboxes are SandboxNotFoundError', async () => {
    await assert.rejects(vb.get('sbx_doesnotexist'), SandboxNotFoundError);
    const mine = await vb.sandbox('node-20', { name: uniqueName('mine') });
    cleanupLater(() => mine.destroy());
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.get(mine.id), SandboxNotFoundError);
    const theirs = new Sandbox(outsider.transport, mine.info);
    await assert.rejects(theirs.run('echo hi'), SandboxNotFoundError);
    await assert.rejects(theirs.destroy(), SandboxNotFoundError);
    assert.equal((await vb.get(mine.id)).status, 'running');
  });

  test('bad input is a ValidationError with a stable code, and nothing is made', async () => {
    const before = (await vb.list()).length;
    const duration = await vb.create({ template: 'node-20', timeout: 'soon' }).catch((e: unknown) => e);
    assert.ok(duration instanceof ValidationError);
    assert.equal(duration.code, 'invalid_duration');
    const unknown = await vb.create({ template: 'no-such-template' }).catch((e: unknown) => e);
    assert.ok(unknown instanceof VibeBoxError && unknown.status === 400, String(unknown));
    assert.equal(unknown.code, 'unknown_template');
    // Node labels no engine of the server has: 400, a ValidationError of its own.
    const nowhere = await vb.create({ template: 'node-20', nodeLabels: { region: 'nowhere' } }).catch((e: unknown) => e);
    assert.ok(nowhere instanceof NoMatchingNodeError && nowhere instanceof ValidationError, String(nowhere));
    assert.deepEqual(nowhere.details, { nodeLabels: { region: 'nowhere' } });
    await assert.rejects(vb.template('no-such-template'), TemplateNotFoundError);
    assert.equal((await vb.list()).length, before);
  });
});

describe('retries', () => {
  test('a template still building: TemplateBuildingError with retryAfter, not retried; wait is sent', async () => {
    const bodies: unknown[] = [];
    const building = {
      error: {
        code: 'template_building',
        message: "Template 'rust-1.85' is still being built",
        details: { template: 'rust-1.85', buildState: 'building', progress: { step: 2, steps: 7 }, retryAfter: 30 },
      },
    };
    const server = createServer((request, response) => {
      let text = '';
      request.on('data', (chunk: Buffer) => (text += chunk.toString()));
      request.on('end', () => {
        const sent = JSON.parse(text) as { wait?: boolean };
        bodies.push(sent);
        if (sent.wait) answer(response, 201, { id: 'sbx_1', name: 'one', template: 'rust-1.85', status: 'running' });
        else answer(response, 503, building, { 'Retry-After': '30' });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = new VibeBox({ apiKey: 'k', baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
    const error = await client.create({ template: 'rust-1.85' }).catch((e: unknown) => e);
    assert.ok(error instanceof TemplateBuildingError, String(error));
    assert.ok(error instanceof ServiceUnavailableError);
    assert.equal(error.retryAfter, 30);
    assert.equal(error.status, 503);
    assert.deepEqual(error.details.progress, { step: 2, steps: 7 });
    assert.equal(bodies.length, 1, 'a create of a template being built is not sent again');
    const made = await client.create({ template: 'rust-1.85', wait: true });
    assert.equal(made.id, 'sbx_1');
    assert.deepEqual(bodies.at(-1), { template: 'rust-1.85', wait: true });
  });

  test('a template whose build failed: TemplateUnavailableError', async () => {
    const failed = await flakyServer((_req, res) =>
      answer(res, 503, { error: { code: 'template_unavailable', message: "Building template 'go-1.24' failed", details: { buildState: 'failed' } } }),
    );
    const client = new VibeBox({ apiKey: 'k', baseUrl: failed.url, maxRetries: 0 });
    const error = await client.create({ template: 'go-1.24' }).catch((e: unknown) => e);
    assert.ok(error instanceof TemplateUnavailableError, String(error));
    assert.equal(error.details.buildState, 'failed');
  });

  test('503 then 200: retried, answered', async () => {
    const flaky = await flakyServer((_req, res, hit) =>
      hit < 3 ? answer(res, 503, { error: { code: 'runtime_unavailable', message: 'down' } }) : answer(res, 200, templatesBody),
    );
    const client = new VibeBox({ apiKey: 'k', baseUrl: flaky.url, backoff: 10 });
    assert.deepEqual((await client.templates()).map((t) => t.name), ['node-20']);
    assert.equal(flaky.hits(), 3);
  });

  test('429 waits for Retry-After', async () => {
    const flaky = await flakyServer((_req, res, hit) =>
      hit === 1 ? answer(res, 429, { error: { code: 'rate_limited', message: 'slow down' } }, { 'Retry-After': '1' }) : answer(res, 200, templatesBody),
    );
    const client = new VibeBox({ apiKey: 'k', baseUrl: flaky.url, backoff: 10 });
    const started = performance.now();
    await client.templates();
    assert.ok(performance.now() - started >= 950, 'the client did not wait for Retry-After');
    assert.equal(flaky.hits(), 2);
  });

  test('after maxRetries the typed error is thrown; a Retry-After too long is not waited for', async () => {
    const down = await flakyServer((_req, res) => answer(res, 503, { error: { code: 'runtime_unavailable', message: 'down' }, requestId: 'req_1' }));
    const client = new VibeBox({ apiKey: 'k', baseUrl: down.url, backoff: 5, maxRetries: 2 });
    const error = await client.templates().catch((e: unknown) => e);
    assert.ok(error instanceof ServiceUnavailableError);
    assert.equal(error.requestId, 'req_1');
    assert.equal(down.hits(), 3);
    const limited = await flakyServer((_req, res) => answer(res, 429, { error: { code: 'rate_limited', message: 'x' } }, { 'Retry-After': '3600' }));
    const started = performance.now();
    const rate = await new VibeBox({ apiKey: 'k', baseUrl: limited.url }).templates().catch((e: unknown) => e);
    assert.ok(rate instanceof RateLimitError);
    assert.equal(rate.retryAfter, 3600);
    assert.equal(limited.hits(), 1);
    assert.ok(performance.now() - started < 3000);
  });

  test('dropped connections: GET retried, POST not (it may have reached the server)', async () => {
    const dropping = await flakyServer((req, res, hit) => {
      if (req.method === 'GET' && hit > 1) return answer(res, 200, templatesBody);
      res.socket?.destroy();
    });
    const client = new VibeBox({ apiKey: 'k', baseUrl: dropping.url, backoff: 5 });
    await client.templates();
    assert.equal(dropping.hits(), 2);
    await assert.rejects(client.create({ template: 'node-20' }), ConnectionError);
    assert.equal(dropping.hits(), 3);
  });

  test('a refused connection is retried, then a ConnectionError', async () => {
    const closed = await flakyServer(() => undefined);
    const url = closed.url;
    await new Promise<void>((resolve) => closed.server.close(() => resolve()));
    const client = new VibeBox({ apiKey: 'k', baseUrl: url, backoff: 5, maxRetries: 2 });
    const error = await client.templates().catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /ECONNREFUSED/);
  });

  test('POST is not sent again after a 502 (the command may have run), but after a 503 that started nothing', async () => {
    const broken = await flakyServer((_req, res) => answer(res, 502, { error: { code: 'runtime_error', message: 'engine' } }));
    const client = new VibeBox({ apiKey: 'k', baseUrl: broken.url, backoff: 5 });
    await assert.rejects(client.create({ template: 'node-20' }), (e: VibeBoxError) => e.code === 'runtime_error');
    assert.equal(broken.hits(), 1);
    const starting = await flakyServer((_req, res, hit) =>
      hit === 1
        ? answer(res, 503, { error: { code: 'runtime_unavailable', message: 'engine down' } })
        : answer(res, 201, { id: 'sbx_1', name: 'x', template: 'node-20', status: 'running' }),
    );
    const created = await new VibeBox({ apiKey: 'k', baseUrl: starting.url, backoff: 5 }).create({ template: 'node-20' });
    assert.equal(created.id, 'sbx_1');
    assert.equal(starting.hits(), 2);
    // the server's Redis was down: the write was refused before anything happened
    const limiter = await flakyServer((_req, res, hit) =>
      hit === 1
        ? answer(res, 503, { error: { code: 'rate_limiter_unavailable', message: 'redis down' } })
        : answer(res, 201, { id: 'sbx_2', name: 'y', template: 'node-20', status: 'running' }),
    );
    const again = await new VibeBox({ apiKey: 'k', baseUrl: limiter.url, backoff: 5 }).create({ template: 'node-20' });
    assert.equal(again.id, 'sbx_2');
    assert.equal(limiter.hits(), 2);
  });

  test('the timeout is an idle timeout: a slow but moving answer completes, a stalled one times out', async () => {
    const slow = await flakyServer((req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      let sent = 0;
      const stall = req.url?.includes('stall');
      const timer = setInterval(() => {
        if (stall && sent === 2) return; // stops moving
        res.write(Buffer.alloc(10, 97));
        if (++sent === 20) {
          clearInterval(timer);
          res.end();
        }
      }, 100);
      res.on('close', () => clearInterval(timer));
    });
    const client = new VibeBox({ apiKey: 'k', baseUrl: slow.url, timeout: 1000 });
    const body = await client.transport.bytes({ method: 'GET', path: '/moving' }); // 2 s in all
    assert.equal(body.length, 200);
    await assert.rejects(client.transport.bytes({ method: 'GET', path: '/stall' }), TimeoutError);
  });

  test('health() reports what is down without retrying', async () => {
    const down = await flakyServer((_req, res) => answer(res, 503, { status: 'unavailable', checks: { docker: { ok: false, error: 'no engine' } } }));
    const health = await new VibeBox({ baseUrl: down.url }).health();
    assert.deepEqual(health, { ready: false, checks: { docker: { ok: false, error: 'no engine' } } });
    assert.equal(down.hits(), 1);
  });

  test('a server without an endpoint: NotSupportedError', async () => {
    const old = await flakyServer((_req, res) => answer(res, 404, { error: { code: 'not_found', message: 'Not found.' } }));
    const client = new VibeBox({ apiKey: 'k', baseUrl: old.url });
    const error = await client.snapshots().catch((e: unknown) => e);
    assert.ok(error instanceof NotSupportedError);
    assert.equal(error.details.feature, 'snapshots');
  });
});

describe('keys', () => {
  test('create a narrower key, use it, see its usage, rotate, revoke', async () => {
    const created = await vb.keys.create(uniqueName('ci'), { scopes: ['sandboxes:read', 'templates:read'], expiresIn: '1d' });
    assert.match(created.key, /^vb_live_/);
    assert.deepEqual([...created.scopes].sort(), ['sandboxes:read', 'templates:read']);
    const narrow = new VibeBox({ apiKey: created.key, baseUrl: API_URL });
    assert.ok((await narrow.templates()).length > 0);
    const refused = await narrow.create({ template: 'node-20' }).catch((e: unknown) => e);
    assert.ok(refused instanceof PermissionDeniedError, String(refused));
    assert.equal(refused.code, 'insufficient_scope');
    assert.ok((await vb.keys.list()).some((k) => k.id === created.id && !('key' in k)));
    assert.ok((await vb.keys.usage(created.id)).totalRequests >= 2);
    const rotated = await vb.keys.rotate(created.id, { gracePeriod: '1h' });
    assert.notEqual(rotated.key, created.key);
    assert.ok((await new VibeBox({ apiKey: rotated.key, baseUrl: API_URL }).templates()).length > 0);
    assert.ok((await narrow.templates()).length > 0, 'the old key works during the grace period');
    await vb.keys.revoke(rotated.id);
    await assert.rejects(new VibeBox({ apiKey: rotated.key, baseUrl: API_URL }).templates(), AuthenticationError);
    await vb.keys.revoke(created.id);
  });
});

describe('batches and helpers', () => {
  test('createMany makes them in parallel; destroyAll removes them', async () => {
    const tag = uniqueName('batch');
    const sandboxes = await vb.createMany([
      { template: 'node-20', name: `${tag}-1`, metadata: { batch: tag } },
      { template: 'node-20', name: `${tag}-2`, metadata: { batch: tag } },
      { template: 'python-3', name: `${tag}-ml`, metadata: { batch: tag } },
    ]);
    cleanupLater(() => vb.destroyAll(sandboxes));
    assert.deepEqual(sandboxes.map((s) => s.name), [`${tag}-1`, `${tag}-2`, `${tag}-ml`]);
    const results = await Promise.all(sandboxes.map((s) => s.run('echo ready', { language: 'shell' })));
    assert.deepEqual(results.map((r) => r.output), ['ready\n', 'ready\n', 'ready\n']);
    assert.equal((await vb.list({ metadata: { batch: tag } })).length, 3);
    await vb.destroyAll(sandboxes);
    assert.equal((await vb.list({ metadata: { batch: tag } })).length, 0);
    await vb.destroyAll([sandboxes[0]!.id]); // already gone: fine
  });

  test('createMany is all or nothing', async () => {
    const tag = uniqueName('half');
    await assert.rejects(
      vb.createMany([
        { template: 'node-20', metadata: { batch: tag } },
        { template: 'no-such-template', metadata: { batch: tag } },
      ]),
      ValidationError,
    );
    assert.equal((await vb.list({ metadata: { batch: tag } })).length, 0);
  });

  test('withSandbox destroys the sandbox after the block, also when it throws', async () => {
    let id = '';
    const result = await vb.withSandbox('node-20', async (sandbox) => {
      id = sandbox.id;
      await sandbox.run('npm --version');
      return sandbox.run('return 1 + 1');
    });
    assert.equal(result.returnValue, 2);
    await assertDestroyed(id);
    await assert.rejects(
      vb.withSandbox({ template: 'python-3' }, async (sandbox) => {
        id = sandbox.id;
        throw new Error('boom');
      }),
      /boom/,
    );
    await assertDestroyed(id);
  });

  test('ephemeral sandboxes expire; runOnce and withEphemeral clean up', async () => {
    const sandbox = await vb.ephemeral('node-20', '1h');
    cleanupLater(() => sandbox.destroy());
    assert.equal(sandbox.info.ephemeral, true);
    assert.equal(sandbox.info.timeout, 3600);
    assert.ok(sandbox.info.expiresAt);
    const before = (await vb.list()).length;
    const once = await vb.runOnce('node-20', `
      console.log("Hello from ephemeral sandbox!");
      return { status: 'success' };
    `);
    assert.deepEqual(once.returnValue, { status: 'success' });
    assert.equal(once.output, 'Hello from ephemeral sandbox!\n');
    let seen: Sandbox | undefined;
    const tested = await vb.withEphemeral(
      'node-20',
      async (box) => {
        seen = box;
        assert.equal(box.info.ephemeral, true);
        assert.equal(box.info.timeout, 900);
        return box.run('echo ok');
      },
      { timeout: '15m' },
    );
    assert.equal(tested.stdout, 'ok\n');
    await assertDestroyed(seen!.id);
    assert.equal((await vb.list()).length, before);
  });
});
