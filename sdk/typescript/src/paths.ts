/**
 * API paths and the HTTP timeouts of long calls.
 * @module
 */

import { posix } from 'node:path';

import { seconds, type Duration } from './durations.js';
import { ValidationError } from './errors.js';

/**
 * The API's base path.
 * @example
 * ```ts
 * `${API}/sandboxes`; // "/api/v1/sandboxes"
 * ```
 */
export const API = '/api/v1';
/**
 * Milliseconds for creates with a git clone, restarts, snapshots, uploads and downloads.
 * @example
 * ```ts
 * transport.json({ method: 'POST', path, timeout: LONG });
 * ```
 */
export const LONG = 600_000;
const EXEC_DEFAULT = 60;
const EXEC_MAX = 3600;
const SLACK = 30;

/**
 * `/api/v1/sandboxes/<id>/<parts…>`.
 * @example
 * ```ts
 * sandboxPath('sbx_1', 'git', 'status'); // "/api/v1/sandboxes/sbx_1/git/status"
 * ```
 */
export function sandboxPath(sandboxId: string, ...parts: string[]): string {
  return [`${API}/sandboxes/${segment(sandboxId)}`, ...parts].join('/');
}

/**
 * `/ws/sandboxes/<id>/<parts…>`: a sandbox's WebSocket path.
 * @example
 * ```ts
 * socketPath('sbx_1', 'processes', 'exec_2'); // "/ws/sandboxes/sbx_1/processes/exec_2"
 * ```
 */
export function socketPath(sandboxId: string, ...parts: string[]): string {
  return ['/ws/sandboxes', ...[sandboxId, ...parts].map((part) => segment(part))].join('/');
}

/**
 * One path segment, encoded; `.` and `..` (which URL parsing would collapse, reaching another
 * endpoint) are refused.
 * @example
 * ```ts
 * segment('my box'); // "my%20box"
 * ```
 */
export function segment(value: string): string {
  if (value === '' || value === '.' || value === '..') {
    throw new ValidationError(`${JSON.stringify(value)} is not a valid name or id`, { code: 'invalid_path' });
  }
  return encodeURIComponent(value);
}

/**
 * A sandbox path made absolute and normalised the way the server reads it (relative paths start
 * at `/workspace`; `..` cannot climb above `/`).
 * @example
 * ```ts
 * sandboxFile('src/../a b.txt'); // "/workspace/a b.txt"
 * ```
 */
export function sandboxFile(path: string): string {
  return posix.normalize(posix.join('/workspace', path.startsWith('/') ? posix.relative('/workspace', path) : path));
}

/**
 * `…/files/<path>`; an absolute path keeps its leading slash (`files//app/x`).
 * @example
 * ```ts
 * filePath('sbx_1', '/app/x y'); // "/api/v1/sandboxes/sbx_1/files//app/x%20y"
 * filePath('sbx_1', '../../other'); // "/api/v1/sandboxes/sbx_1/files//other"
 * ```
 */
export function filePath(sandboxId: string, path: string): string {
  const absolute = sandboxFile(path).replace(/\/+$/, '') || '/';
  return sandboxPath(sandboxId, 'files', absolute.split('/').map(encodeURIComponent).join('/'));
}

/**
 * The HTTP timeout (ms) for a command with this timeout: the command's own, plus slack for the answer.
 * @example
 * ```ts
 * execTimeout('5m'); // 330000
 * ```
 */
export function execTimeout(timeout: Duration | undefined): number {
  const value = timeout === undefined ? EXEC_DEFAULT : (seconds(timeout) ?? EXEC_DEFAULT);
  return ((value || EXEC_MAX) + SLACK) * 1000;
}

/**
 * A JSON body without the fields left undefined.
 * @example
 * ```ts
 * body({ a: 1, b: undefined }); // { a: 1 }
 * ```
 */
export function body<T extends Record<string, unknown>>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined)) as Partial<T>;
}
