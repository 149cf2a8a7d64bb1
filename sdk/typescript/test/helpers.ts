// Shared by the test suites: the live server the pytest driver started (sdk/typescript/test/
// test_typescript_sdk.py), its keys, and sandboxes that are always destroyed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after } from 'node:test';

export const API_URL = required('VIBEBOX_API_URL');
export const API_KEY = required('VIBEBOX_API_KEY');
/** A key of another user: every sandbox of API_KEY's user is a 404 to it. */
export const OUTSIDER_KEY = required('VIBEBOX_TEST_OUTSIDER_KEY');
/** A git repository sandboxes can clone (smart HTTP, on a Docker network of the tests). */
export const GIT_URL = process.env.VIBEBOX_TEST_GIT_URL ?? '';

function required(name: string): string {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run the suites through pytest (make test)`);
  return value;
}

/** A unique name for a sandbox of this test run. */
export function uniqueName(prefix = 'ts'): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}

const cleanups: Array<() => Promise<unknown>> = [];

// One hook of the file's root test: hooks registered inside `before` would run right after it.
after(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Runs `cleanup` (a destroy) when the suite file ends, also when a test failed. */
export function cleanupLater(cleanup: () => Promise<unknown>): void {
  cleanups.push(cleanup);
}

/** Raw API call with the test key (for checks that go around the SDK). */
export async function api(method: string, path: string, json?: unknown, key = API_KEY): Promise<Response> {
  const init: RequestInit = { method, headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' } };
  if (json !== undefined) init.body = JSON.stringify(json);
  return fetch(`${API_URL}${path}`, init);
}

/** The sandbox is destroyed (the API still answers a destroyed sandbox by id, as `destroyed`). */
export async function assertDestroyed(id: string): Promise<void> {
  const response = await api('GET', `/api/v1/sandboxes/${id}`);
  if (response.status === 404) return;
  const body = (await response.json()) as { status: string };
  assert.equal(body.status, 'destroyed', `sandbox ${id} is ${body.status}`);
}

/**
 * Calls `condition` until it answers something truthy, and answers that; fails after `timeout`
 * ms naming `what` (a deadline on a condition, never a fixed pause: a busy machine is slow).
 */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeout = 60_000, interval = 250, what = 'the condition' }: { timeout?: number; interval?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await condition();
    if (value) return value;
    assert.ok(Date.now() < deadline, `waited ${timeout} ms for ${what}; last: ${String(value)}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/**
 * Runs `manage.py <args>` against the live server's database and data directory (the pytest
 * driver passes how, in VIBEBOX_TEST_MANAGE); answers the last line it printed. The invitation
 * suite gets tokens this way: the server's own code signs them with the server's secret.
 * Asynchronous on purpose: a blocked event loop cannot see the server close an idle kept-alive
 * connection, and the next request on it fails (UND_ERR_SOCKET).
 */
export async function manage(...args: string[]): Promise<string> {
  const raw = process.env.VIBEBOX_TEST_MANAGE;
  assert.ok(raw, 'VIBEBOX_TEST_MANAGE is not set: run the suites through pytest (make test)');
  const spec = JSON.parse(raw) as { command: string[]; cwd: string; env: Record<string, string>; unset: string[] };
  const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env };
  for (const name of spec.unset) delete env[name];
  const [command = 'python', ...rest] = spec.command;
  const { stdout } = await promisify(execFile)(command, [...rest, ...args], { cwd: spec.cwd, env, encoding: 'utf8' });
  return stdout.trim().split('\n').pop() ?? '';
}
