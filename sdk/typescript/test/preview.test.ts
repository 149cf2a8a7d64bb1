// Preview URLs through the TypeScript SDK, against the live server: a `python3 -m http.server` in
// a python-3 sandbox reached through a signed host-form link (the preview host's name resolves to
// loopback in browsers, not here: requests go to 127.0.0.1 with the Host header).
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, test } from 'node:test';

import { InvalidPortError, SandboxNotFoundError, VibeBox, type Sandbox } from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, api, cleanupLater, waitFor } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

async function pythonSandbox(): Promise<Sandbox> {
  const sandbox = await vb.sandbox('python-3');
  cleanupLater(() => sandbox.destroy());
  return sandbox;
}

/** GET through the preview proxy (127.0.0.1, the URL's host in the Host header), redirects followed by hand. */
async function browse(url: string, cookies = new Map<string, string>()): Promise<{ status: number; body: string }> {
  for (let hop = 0; hop < 6; hop++) {
    const target = new URL(url);
    const answer = await new Promise<{ status: number; body: string; location?: string; setCookie: string[] }>(
      (resolve, reject) => {
        const headers: Record<string, string> = { Host: target.host };
        if (cookies.size) headers.Cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
        const req = request(
          { host: '127.0.0.1', port: Number(target.port || 80), path: target.pathname + target.search, headers },
          (response) => {
            const chunks: Buffer[] = [];
            response.on('data', (chunk: Buffer) => chunks.push(chunk));
            response.on('end', () =>
              resolve({
                status: response.statusCode ?? 0,
                body: Buffer.concat(chunks).toString('utf8'),
                location: response.headers.location,
                setCookie: response.headers['set-cookie'] ?? [],
              }),
            );
          },
        );
        req.on('error', reject);
        req.end();
      },
    );
    for (const header of answer.setCookie) {
      const [pair = ''] = header.split(';');
      const at = pair.indexOf('=');
      const name = pair.slice(0, at).trim();
      if (/;\s*max-age=(0|-\d+)\s*(;|$)/i.test(header)) cookies.delete(name); // expired at once, as a browser drops it
      else cookies.set(name, pair.slice(at + 1).trim());
    }
    if (![301, 302, 303, 307, 308].includes(answer.status) || !answer.location) {
      return { status: answer.status, body: answer.body };
    }
    url = new URL(answer.location, url).toString();
  }
  throw new Error(`too many redirects from ${url}`);
}

describe('preview URLs', () => {
  test('ports, a signed link, the path form, the public flag, outsiders', async () => {
    const sandbox = await pythonSandbox();
    const marker = `ts-preview-${Math.random().toString(36).slice(2, 8)}`;
    await sandbox.exec(
      `mkdir -p /workspace/site && cd /workspace/site && echo ${marker} > index.html && exec python3 -m http.server 3000`,
      { background: true },
    );
    const port = (await waitFor(async () => (await sandbox.ports()).find((p) => p.port === 3000 && p.listening), {
      what: 'port 3000 listening',
    }))!;
    assert.equal(port.public, false);
    assert.ok(port.url.toLowerCase().startsWith(`http://3000-${sandbox.id.toLowerCase()}.`));
    assert.ok(port.pathUrl.endsWith(`/preview/${sandbox.id}/3000/`));
    assert.equal(await sandbox.getHost(3000), port.url);
    assert.ok((await sandbox.ports()).some((p) => p.port === 8000 && p.declared)); // python-3.13's declared port

    const link = await sandbox.previewUrl(3000, { expiresIn: '10m' });
    assert.ok(link.url.includes('vibebox_token=') && link.token && link.expiresAt);
    const cookies = new Map<string, string>();
    assert.deepEqual(await browse(link.url, cookies), { status: 200, body: `${marker}\n` });
    assert.equal((await browse(port.url, cookies)).body, `${marker}\n`); // the cookie alone
    const pathLink = await sandbox.previewUrl(3000, { form: 'path' });
    assert.ok(pathLink.url.includes(`/preview/${sandbox.id}/3000/`));
    assert.equal((await browse(pathLink.url)).body, `${marker}\n`);

    assert.ok([401, 403].includes((await browse(port.url)).status));
    assert.equal((await sandbox.setPortPublic(3000, true)).public, true);
    assert.equal((await browse(port.url)).body, `${marker}\n`);
    assert.equal((await sandbox.setPortPublic(3000, false)).public, false);
    await assert.rejects(sandbox.previewUrl(0), InvalidPortError);

    for (const path of ['ports', 'ports/3000/url', 'contexts']) {
      const response = await api('GET', `/api/v1/sandboxes/${sandbox.id}/${path}`, undefined, OUTSIDER_KEY);
      assert.equal(response.status, 404, path);
    }
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.get(sandbox.id), SandboxNotFoundError);
  });
});
