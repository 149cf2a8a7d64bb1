// Package installs through the TypeScript SDK against the live server and the real npm registry
// (through the machine's proxy): install, use, list, the refusals, and an organization's mirror.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  CommandExitError,
  InvalidPackageSpecError,
  SandboxNotFoundError,
  UnsupportedPackageManagerError,
  VibeBox,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

describe('packages', () => {
  test('npm install streams, is usable and listed; bad specs and managers are refused', async () => {
    const sandbox = await vb.sandbox('node-20');
    cleanupLater(() => sandbox.destroy());
    const chunks: string[] = [];
    const result = await sandbox.packages.install(['is-odd@3.0.1'], { manager: 'npm', onData: (d) => chunks.push(d) });
    assert.equal(result.exitCode, 0);
    assert.match(chunks.join(''), /added \d+ package/);
    const required = await sandbox.exec(`node -e "console.log(require('is-odd')(3))"`);
    assert.equal(required.stdout, 'true\n');
    assert.deepEqual(await sandbox.packages.list({ manager: 'npm' }), [{ name: 'is-odd', version: '3.0.1' }]);

    await assert.rejects(sandbox.packages.install(['--registry=https://evil.example'], { manager: 'npm' }), (e) => {
      assert.ok(e instanceof InvalidPackageSpecError);
      assert.equal(e.status, 400);
      return true;
    });
    await assert.rejects(sandbox.packages.install('six', { manager: 'pip' }), (e) => {
      assert.ok(e instanceof UnsupportedPackageManagerError);
      assert.deepEqual(e.details.supported, ['npm']);
      return true;
    });
    await assert.rejects(sandbox.packages.install('is-odd@0.0.0-nope', { manager: 'npm' }), CommandExitError);
    const failed = await sandbox.packages.install('is-odd@0.0.0-nope', { manager: 'npm', check: false });
    assert.notEqual(failed.exitCode, 0);
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.get(sandbox.id), SandboxNotFoundError);
  });

  test('the organization mirror setting', async () => {
    const [org] = await vb.orgs.list();
    const updated = await vb.orgs.update(org!.slug, { registryMirrors: { pip: 'https://pypi.org/simple' } });
    assert.deepEqual(updated.registryMirrors, { pip: 'https://pypi.org/simple' });
    const cleared = await vb.orgs.update(org!.slug, { registryMirrors: { pip: null } });
    assert.deepEqual(cleared.registryMirrors, {});
  });
});
