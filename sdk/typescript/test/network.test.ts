// Egress policies through the SDK (docs/api.md, "Network policy"), against the live server.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ValidationError, VibeBox } from '../src/index.js';
import { API_KEY, API_URL, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

describe('network', () => {
  test('network at create, getNetwork and setNetwork', async () => {
    const sandbox = await vb.create({ template: 'python-3', autoStart: false, network: { internet: false, allow: ['pypi.org'] } });
    cleanupLater(() => sandbox.destroy());
    assert.deepEqual(sandbox.info.network, { internet: false, allow: ['pypi.org'], deny: [], proxied: true });
    assert.deepEqual((await sandbox.getNetwork()).allow, ['pypi.org']);
    const policy = await sandbox.setNetwork({ internet: true, deny: ['*.example.com'] });
    assert.deepEqual(policy, { internet: true, allow: ['pypi.org'], deny: ['*.example.com'], proxied: true });
    await assert.rejects(sandbox.setNetwork({ allow: ['not a name'] }), ValidationError);
    assert.deepEqual(await sandbox.getNetwork(), policy);
  });
});
