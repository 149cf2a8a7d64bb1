// sandbox.files.watch against the live server and a real sandbox: 100 files made by one command all
// reported, a watch that outlives a pause and resume, one that ends with its directory, a callback
// that throws, and the refusals.
import assert from 'node:assert/strict';
import * as net from 'node:net';
import { before, describe, test } from 'node:test';

import { AuthenticationError, CallbackError, FileNotFoundError, SandboxNotFoundError, ValidationError } from '../src/errors.js';
import { VibeBox } from '../src/client.js';
import { Files } from '../src/files.js';
import type { Sandbox } from '../src/sandbox.js';
import { Transport } from '../src/transport.js';
import type { FileEvent } from '../src/watch.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater, waitFor } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
const HUNDRED = 'for i in $(seq 100); do echo $i > f$i; done';
let sandbox: Sandbox;

function transport(apiKey: string, baseUrl = API_URL): Transport {
  return new Transport({
    baseUrl,
    apiKey,
    timeout: 60_000,
    maxRetries: 2,
    backoff: 200,
    maxBackoff: 2_000,
    maxRetryAfter: 30,
    headers: {},
  });
}

before(async () => {
  sandbox = await vb.sandbox('node-20');
  cleanupLater(() => sandbox.destroy());
});

function created(events: FileEvent[]): Set<string> {
  return new Set(events.filter((e) => e.type === 'create').map((e) => e.path));
}

describe('files.watch', () => {
  test('reports the 100 files one command makes, and outlives a pause and resume', async () => {
    const events: FileEvent[] = [];
    const watch = await sandbox.files.watch('/workspace', (event) => events.push(event), {
      recursive: true,
      excludes: ['node_modules'],
    });
    await sandbox.exec(`${HUNDRED}; mkdir -p node_modules/x; mv f1 moved`);
    await waitFor(() => [...Array(100).keys()].every((i) => created(events).has(`/workspace/f${i + 1}`)), {
      what: '100 creates',
    });
    const rename = (await waitFor(() => events.find((e) => e.type === 'rename'), { what: 'the rename' })) as FileEvent;
    assert.deepEqual([rename.from, rename.path], ['/workspace/f1', '/workspace/moved']);
    assert.equal(events.filter((e) => e.path.includes('node_modules')).length, 0);
    assert.equal(events.filter((e) => e.type === 'overflow').length, 0);
    assert.equal(typeof events[0]?.isDir, 'boolean');

    await sandbox.pause();
    await sandbox.resume();
    await sandbox.exec('echo later > resumed.txt');
    await waitFor(() => events.some((e) => e.path === '/workspace/resumed.txt'), { what: 'an event after the resume' });
    watch.stop();
    assert.equal(await watch.done, 'stopped');
  });

  test('ends with its directory', async () => {
    await sandbox.exec('mkdir -p gone/sub');
    const events: FileEvent[] = [];
    const watch = await sandbox.files.watch('gone', (event) => events.push(event), { recursive: false });
    assert.equal(watch.root, '/workspace/gone');
    await sandbox.exec('touch gone/top gone/sub/deep && rm -rf gone');
    assert.equal(await watch.done, 'root_removed');
    assert.deepEqual(events.at(-1), { type: 'end', reason: 'root_removed' });
    assert.ok(events.some((e) => e.path === '/workspace/gone/top'));
    assert.ok(!events.some((e) => e.path === '/workspace/gone/sub/deep')); // not recursive
  });

  test('a timeout ends it', async () => {
    const events: FileEvent[] = [];
    const watch = await sandbox.files.watch('/workspace', (event) => events.push(event), { timeout: '1s' });
    assert.equal(await watch.done, 'timeout');
    assert.deepEqual(events, [{ type: 'end', reason: 'timeout' }]);
  });

  test('a callback that throws ends the watch', async () => {
    const watch = await sandbox.files.watch('/workspace', () => {
      throw new Error('boom');
    });
    await sandbox.exec('touch thrown.txt');
    await assert.rejects(watch.done, CallbackError);
  });

  test('refusals', async () => {
    await sandbox.exec('echo x > afile');
    await assert.rejects(sandbox.files.watch('missing', () => undefined), FileNotFoundError);
    await assert.rejects(sandbox.files.watch('afile', () => undefined), (error: ValidationError) => {
      assert.ok(error instanceof ValidationError);
      assert.equal(error.code, 'invalid_path');
      return true;
    });
    // Another user's sandbox does not exist for them; a bad key is refused.
    const outsider = new Files(transport(OUTSIDER_KEY), () => sandbox.id);
    await assert.rejects(outsider.watch('/workspace', () => undefined), SandboxNotFoundError);
    const nobody = new Files(transport('vb_live_nonsense'), () => sandbox.id);
    await assert.rejects(nobody.watch('/workspace', () => undefined), AuthenticationError);
  });

  test('a dropped connection is opened again, with an overflow (reconnect) event', async () => {
    // A TCP relay to the server whose connections the test cuts: a network that drops.
    const target = new URL(API_URL);
    const sockets = new Set<net.Socket>();
    let accepted = 0;
    const relay = net.createServer((client) => {
      accepted += 1;
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => sockets.delete(socket));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    try {
      const port = (relay.address() as net.AddressInfo).port;
      const files = new Files(transport(API_KEY, `http://127.0.0.1:${port}`), () => sandbox.id);
      const events: FileEvent[] = [];
      const watch = await files.watch('/workspace', (event) => events.push(event));
      await sandbox.exec('touch before.txt');
      await waitFor(() => events.some((e) => e.path === '/workspace/before.txt'), { what: 'the first event' });
      const opened = accepted;
      for (const socket of sockets) socket.destroy();
      const reconnect = (await waitFor(() => events.find((e) => e.reason === 'reconnect'), { what: 'the reconnect' })) as FileEvent;
      assert.deepEqual([reconnect.type, reconnect.path], ['overflow', '/workspace']);
      assert.ok(accepted > opened);
      await sandbox.exec('touch after.txt');
      await waitFor(() => events.some((e) => e.path === '/workspace/after.txt'), { what: 'an event after it' });
      watch.stop();
      assert.equal(await watch.done, 'stopped');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => relay.close(resolve));
    }
  });
});
