/**
 * `vb.keys`: the caller's API keys (needs the `keys:manage` scope).
 * @module
 */

import type { Duration } from './durations.js';
import { API, body, segment } from './paths.js';
import type { Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * A key as listed (never the key itself).
 * @example
 * ```ts
 * for (const key of await vb.keys.list()) console.log(key.name, key.prefix, key.scopes);
 * ```
 */
export type ApiKey = Schemas['ApiKey'];
/**
 * A key just created or rotated: `key` is the only copy of the secret.
 * @example
 * ```ts
 * const { key } = await vb.keys.create('ci', { scopes: ['sandboxes:read'] });
 * ```
 */
export type NewApiKey = Schemas['ApiKeyWithSecret'];
/**
 * Requests per day over the last 30 days.
 * @example
 * ```ts
 * const { totalRequests, days } = await vb.keys.usage(id);
 * ```
 */
export type ApiKeyUsage = Schemas['ApiKeyUsage'];

/**
 * Options of `vb.keys.create()`.
 * @example
 * ```ts
 * await vb.keys.create('ci', { scopes: ['sandboxes:read', 'execute'], expiresIn: '30d', rateLimit: '100/min' });
 * ```
 */
export interface KeyOptions {
  /** Slug of the organization the key acts in (one of yours; default: the calling key's). */
  org?: string;
  /** A subset of the caller's scopes (default: the caller's). */
  scopes?: string[];
  /** Expires this long from now (`"30d"`), or at `expiresAt` (ISO time); no later than the caller's key. */
  expiresIn?: Duration;
  expiresAt?: string;
  /** A `vb_test_` key. */
  test?: boolean;
  /** Such as `"100/min"`; no higher than the caller's. */
  rateLimit?: string;
}

/**
 * API keys: list, create, get, rotate, revoke, usage.
 * @example
 * ```ts
 * const created = await vb.keys.create('ci-pipeline', { scopes: ['sandboxes:read', 'sandboxes:write', 'execute'] });
 * console.log(created.key); // shown once
 * await vb.keys.revoke(created.id);
 * ```
 */
export class Keys {
  constructor(private readonly transport: Transport) {}

  private path(...parts: string[]): string {
    return [`${API}/keys`, ...parts.map((part) => segment(part))].join('/');
  }

  /**
   * Your keys; `{ everyone: true }`: every member's keys in the organization (needs keys.manage).
   * @example
   * ```ts
   * const keys = await vb.keys.list();
   * ```
   */
  async list(options: { everyone?: boolean } = {}): Promise<ApiKey[]> {
    const query = options.everyone ? { all: 'true' } : undefined;
    return this.transport.json<ApiKey[]>({ method: 'GET', path: this.path(), query });
  }

  /**
   * Creates a key no broader than the one you call with; `key` is shown only here.
   * @example
   * ```ts
   * const { key } = await vb.keys.create('ci', { scopes: ['sandboxes:read', 'execute'] });
   * ```
   */
  create(name: string, options: KeyOptions = {}): Promise<NewApiKey> {
    const json = body({ name, ...options }) satisfies Partial<Record<keyof Schemas['ApiKeyCreateRequest'], unknown>>;
    return this.transport.json({ method: 'POST', path: this.path(), json });
  }

  /**
   * One key.
   * @example
   * ```ts
   * const key = await vb.keys.get(id);
   * ```
   */
  get(keyId: string): Promise<ApiKey> {
    return this.transport.json({ method: 'GET', path: this.path(keyId) });
  }

  /**
   * A new key with the same name, scopes and limits; the old one works for `gracePeriod` (default 24h).
   * @example
   * ```ts
   * const { key } = await vb.keys.rotate(id, { gracePeriod: '1h' });
   * ```
   */
  rotate(keyId: string, options: { gracePeriod?: Duration } = {}): Promise<NewApiKey> {
    return this.transport.json({ method: 'POST', path: this.path(keyId, 'rotate'), json: body({ ...options }) });
  }

  /**
   * Revokes a key at once (its ephemeral sandboxes are destroyed).
   * @example
   * ```ts
   * await vb.keys.revoke(id);
   * ```
   */
  async revoke(keyId: string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(keyId) });
  }

  /**
   * Requests per day over the last 30 days.
   * @example
   * ```ts
   * const { totalRequests } = await vb.keys.usage(id);
   * ```
   */
  usage(keyId: string): Promise<ApiKeyUsage> {
    return this.transport.json({ method: 'GET', path: this.path(keyId, 'usage') });
  }
}
