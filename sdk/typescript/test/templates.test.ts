// The spec's batch example with the real template names: two node-20 workers and a python-3.11
// sandbox made in parallel, a command in each, then all destroyed. python-3.11's image is built by
// `make test-templates` (images-all), not by `make setup`: the pytest driver runs this suite only
// under the `templates` marker (test_typescript_sdk.py TEMPLATE_SUITES).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { VibeBox } from '../src/index.js';
import { API_KEY, API_URL, assertDestroyed, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

test('createMany: node-20 workers and a python-3.11 ml-processor, a command in each, destroyAll', async () => {
  const templates = new Map((await vb.templates()).map((t) => [t.name, t]));
  assert.equal(templates.get('python-3.11')?.buildState, 'ready', 'python-3.11 is built (make test-templates)');
  assert.ok(templates.get('python-3.11')?.packageManagers.includes('pip'));

  const sandboxes = await vb.createMany([
    { template: 'node-20', name: 'worker-1' },
    { template: 'node-20', name: 'worker-2' },
    { template: 'python-3.11', name: 'ml-processor' },
  ]);
  cleanupLater(() => vb.destroyAll(sandboxes));
  assert.deepEqual(
    sandboxes.map((s) => [s.name, s.template, s.status]),
    [
      ['worker-1', 'node-20', 'running'],
      ['worker-2', 'node-20', 'running'],
      ['ml-processor', 'python-3.11', 'running'],
    ],
  );

  const [worker1, worker2, ml] = sandboxes as [(typeof sandboxes)[0], (typeof sandboxes)[0], (typeof sandboxes)[0]];
  const versions = await Promise.all([
    worker1.run('node --version'),
    worker2.run('node --version'),
    ml.run('python3 --version'),
  ]);
  assert.match(versions[0].stdout, /^v20\./);
  assert.match(versions[1].stdout, /^v20\./);
  assert.match(versions[2].stdout, /^Python 3\.11\.\d+\n$/);
  const code = await ml.run('import sys\nsys.version_info[:2]', { language: 'python' });
  assert.deepEqual(code.returnValue, [3, 11]);

  await vb.destroyAll(sandboxes);
  for (const sandbox of sandboxes) await assertDestroyed(sandbox.id);
});
