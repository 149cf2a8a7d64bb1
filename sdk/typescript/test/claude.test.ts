// Claude Code in a sandbox through the SDK: enable, ask (the real claude binary, talking to the
// Anthropic stub through VibeBox's model gateway; the stub is scripted by the pytest driver for
// "TS-WRITE"), pending changes, approve and reject.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { ClaudeUnavailableError, NoPendingChangesError, VibeBox, type ClaudeEvent, type Sandbox } from '../src/index.js';
import { API_KEY, API_URL, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
let sandbox: Sandbox;

before(async () => {
  sandbox = await vb.sandbox('node-22-claude-code');
  cleanupLater(() => sandbox.destroy());
});

describe('claude', () => {
  test('enable, ask, review, approve', async () => {
    const enabled = await sandbox.claude.enable();
    assert.equal(enabled.installed, true);
    const events: ClaudeEvent[] = [];
    const ask = await sandbox.claude.ask('TS-WRITE: create ts.txt', { timeout: 180_000, onEvent: (e) => events.push(e) });
    const kinds = new Set(events.map((e) => e.type));
    for (const kind of ['claude.init', 'claude.tool_use', 'claude.tool_result', 'claude.result', 'claude.ask.finished']) {
      assert.ok(kinds.has(kind), `no ${kind} event in ${[...kinds].join(', ')}`);
    }
    assert.ok(events.every((e) => e.sandboxId === sandbox.id));
    assert.equal(ask.status, 'completed', JSON.stringify(ask));
    assert.equal(ask.result, 'wrote it');
    assert.ok(ask.changeSetId);
    assert.equal((await sandbox.exec('test -e /workspace/ts.txt')).exitCode, 1, 'changes reached /workspace before review');
    const changes = await sandbox.claude.pendingChanges();
    assert.equal(changes.length, 1);
    assert.equal(changes[0]?.files[0]?.path, 'ts.txt');
    assert.match(changes[0]?.diff ?? '', /\+from typescript/);
    const approved = await sandbox.claude.approve();
    assert.equal(approved.status, 'approved');
    assert.equal((await sandbox.files.readText('/workspace/ts.txt')), 'from typescript\n');
    await assert.rejects(sandbox.claude.approve(), NoPendingChangesError);
    assert.ok((await sandbox.claude.asks()).some((a) => a.askId === ask.askId));
    assert.ok((await sandbox.claude.sessions()).some((s) => s.sessionId === ask.sessionId));
  });

  test('reject drops the changes', async () => {
    await sandbox.exec('rm -f /workspace/ts.txt');
    const ask = await sandbox.claude.ask('TS-WRITE again', { timeout: 180_000 });
    assert.equal(ask.status, 'completed');
    assert.equal((await sandbox.claude.pendingChanges({ sessionId: ask.sessionId })).length, 1);
    const rejected = await sandbox.claude.reject();
    assert.equal(rejected.changeSets[0]?.status, 'rejected');
    assert.equal((await sandbox.claude.pendingChanges()).length, 0);
    assert.equal((await sandbox.exec('test -e /workspace/ts.txt')).exitCode, 1);
  });

  test('a template without Claude Code: ClaudeUnavailableError', async () => {
    const plain = await vb.sandbox('node-20');
    cleanupLater(() => plain.destroy());
    await assert.rejects(plain.claude.enable(), ClaudeUnavailableError);
  });
});
