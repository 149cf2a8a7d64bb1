// Git through the SDK: clone at create (shorthand and object), clone after, pull, checkout,
// commit, push, status, diff, log, branches, against a git server on the tests' Docker network.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { GitError, ValidationError, VibeBox, type GitAuth } from '../src/index.js';
import { API_KEY, API_URL, GIT_URL, cleanupLater } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
const user = process.env.VIBEBOX_TEST_GIT_USER ?? '';
const token = process.env.VIBEBOX_TEST_GIT_TOKEN ?? '';
const auth: GitAuth = { type: 'token', username: user, token };
const withCredentials = GIT_URL.replace('://', `://${user}:${token}@`);

describe('git', { skip: GIT_URL ? false : 'no git server (VIBEBOX_TEST_GIT_URL)' }, () => {
  test('create with the git shorthand clones into /repo', async () => {
    const sandbox = await vb.create({ template: 'node-20', git: withCredentials });
    cleanupLater(() => sandbox.destroy());
    assert.equal(sandbox.status, 'running');
    await sandbox.run('npm install', { cwd: '/repo' });
    const tested = await sandbox.run('npm test', { cwd: '/repo' });
    assert.match(tested.stdout, /tests passed/);
    const config = await sandbox.exec('cat /repo/.git/config');
    assert.ok(!config.stdout.includes(token), 'the token was written to .git/config');
  });

  test('create with a git object: branch and path', async () => {
    const sandbox = await vb.create({ template: 'node-20', git: { url: GIT_URL, branch: 'develop', path: '/repo', auth } });
    cleanupLater(() => sandbox.destroy());
    assert.equal((await sandbox.git.status()).branch, 'develop');
    assert.equal((await sandbox.run('cat /repo/DEVELOP.md')).stdout, 'develop branch\n');
  });

  test('clone after creation, then the everyday operations and push', async () => {
    const sandbox = await vb.sandbox('node-20');
    cleanupLater(() => sandbox.destroy());
    const shallow = await sandbox.git.clone(GIT_URL, { branch: 'develop', path: '/workspace/shallow', depth: 1, auth });
    assert.equal(shallow.branch, 'develop');
    assert.equal((await sandbox.run('git -C /workspace/shallow rev-list --count HEAD')).stdout, '1\n');
    const cloned = await sandbox.git.clone(GIT_URL, { auth: { ...auth, persist: true } });
    assert.equal(cloned.path, '/repo');
    assert.match(cloned.commit, /^[0-9a-f]{40}$/);
    const pulled = await sandbox.git.pull();
    assert.equal(pulled.updated, false);
    const branch = `feature-${Date.now()}`;
    await sandbox.git.checkout(branch, { create: true });
    await sandbox.run('echo "new feature" > /repo/feature.txt && echo change >> /repo/test.js');
    const status = await sandbox.git.status();
    assert.equal(status.branch, branch);
    assert.equal(status.clean, false);
    assert.ok(status.untracked.includes('feature.txt'));
    const diff = await sandbox.git.diff();
    assert.ok(diff.files.some((f) => f.path === 'test.js' && f.additions === 1));
    const commit = await sandbox.git.commit('feat: add new feature', { all: true, author: { name: 'TS', email: 'ts@example.test' } });
    assert.equal(commit.message, 'feat: add new feature');
    assert.equal((await sandbox.git.status()).clean, true);
    const pushed = await sandbox.git.push({ setUpstream: true });
    assert.equal(pushed.branch, branch);
    assert.equal(pushed.commit, commit.commit);
    const [latest] = await sandbox.git.log({ limit: 1 });
    assert.equal(latest?.sha, commit.commit);
    assert.equal(latest?.author.name, 'TS');
    const { branches } = await sandbox.git.branches();
    assert.ok(branches.some((b) => b.name === branch && b.current));
    await sandbox.run('echo more >> /repo/feature.txt');
    const second = await sandbox.git.commit('feat: more', { all: true });
    assert.equal((await sandbox.git.push()).commit, second.commit); // the upstream is set: no options
    await sandbox.git.checkout('main');
    const other = await vb.sandbox('node-20');
    cleanupLater(() => other.destroy());
    const plain = await other.git.clone(withCredentials); // credentials in the URL, never stored
    assert.equal(plain.path, '/repo');
    await other.git.checkout(branch);
    assert.equal((await other.run('cat /repo/feature.txt')).stdout, 'new feature\nmore\n');
    assert.ok(!(await other.exec('cat /repo/.git/config')).stdout.includes(token));
  });

  test('git failures are typed', async () => {
    const sandbox = await vb.sandbox('node-20');
    cleanupLater(() => sandbox.destroy());
    await assert.rejects(sandbox.git.clone('file:///etc'), ValidationError);
    const denied = await sandbox.git.clone(GIT_URL, { auth: { type: 'token', username: user, token: 'wrong' } }).catch((e: unknown) => e);
    assert.ok(denied instanceof GitError, String(denied));
    assert.ok(!JSON.stringify(denied.details).includes('wrong'));
    await assert.rejects(sandbox.git.status({ path: '/workspace' }), (e: ValidationError) => e.code === 'not_a_git_repository');
  });
});
