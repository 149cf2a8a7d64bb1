// Code contexts through the TypeScript SDK, against the live server: a Python context with state,
// rich results, errors, streaming over the exec WebSocket, restart and delete; a JavaScript one.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { ContextNotFoundError, VibeBox, type Result } from '../src/index.js';
import { API_KEY, API_URL, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

describe('code contexts', () => {
  test('state, rich results, errors, streaming, restart, delete', async () => {
    const sandbox = await vb.sandbox('python-3');
    cleanupLater(() => sandbox.destroy());
    const ctx = await sandbox.contexts.create({ language: 'python' });
    assert.ok(ctx.id.startsWith('ctx_'));
    assert.equal(ctx.info.status, 'idle');
    await ctx.run('x = 41');
    assert.equal((await ctx.run('x + 1')).text, '42');

    const rich = await ctx.run(
      'class T:\n    def _repr_html_(self):\n        return "<table><tr><td>1</td></tr></table>"\nT()',
    );
    assert.ok(rich.results[0]?.html?.startsWith('<table>'));
    assert.equal(rich.results[0]?.isMainResult, true);

    const failed = await ctx.run('1 / 0');
    assert.equal(failed.error?.name, 'ZeroDivisionError');
    assert.ok(failed.error?.traceback.includes('ZeroDivisionError'));

    const chunks: string[] = [];
    const results: Result[] = [];
    const streamed = await ctx.run('for i in range(3):\n    print(i)\n"done"', {
      onStdout: (data) => chunks.push(data),
      onResult: (result) => results.push(result),
    });
    assert.equal(chunks.join(''), '0\n1\n2\n');
    assert.equal(streamed.stdout, '0\n1\n2\n');
    assert.deepEqual(
      results.map((r) => r.text),
      ["'done'"],
    );

    assert.deepEqual(
      (await sandbox.contexts.list()).map((c) => c.id),
      [ctx.id],
    );
    await ctx.restart();
    assert.equal((await ctx.run("'x' in globals()")).text, 'False');
    await ctx.delete();
    await assert.rejects(sandbox.contexts.get(ctx.id), ContextNotFoundError);
  });
});

describe('javascript contexts', () => {
  test('state, console output and errors', async () => {
    const sandbox = await vb.sandbox('node-20');
    cleanupLater(() => sandbox.destroy());
    const ctx = await sandbox.contexts.create({ language: 'javascript' });
    await ctx.run('let n = 40');
    assert.equal((await ctx.run('n + 2')).text, '42');
    assert.equal((await ctx.run("console.log('hi')")).stdout, 'hi\n');
    assert.equal((await ctx.run("throw new TypeError('bad')")).error?.name, 'TypeError');
  });
});
