/**
 * `sandbox.env`: the sandbox's environment variables, passed to every later command.
 * @module
 */

import { EnvVarNotFoundError } from './errors.js';
import { sandboxPath, segment } from './paths.js';
import type { Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * A variable as the server stores it; secret values read back as `********`.
 * @example
 * ```ts
 * const { value, secret } = (await sandbox.env.all()).NODE_ENV!;
 * ```
 */
export type EnvValue = Schemas['EnvVarValue'];

/**
 * What `set` accepts per variable: a value, or `{ value, secret: true }` for a secret.
 * @example
 * ```ts
 * await sandbox.env.set({ PORT: '3000', TOKEN: { value: 's3cr3t', secret: true } });
 * ```
 */
export type EnvInput = string | { value: string; secret?: boolean };

/**
 * The sandbox's environment variables (encrypted at rest; applied to the next command, no restart).
 *
 * @example
 * ```ts
 * await sandbox.env.set('NODE_ENV', 'production');
 * await sandbox.env.set({ API_KEY: { value: 'secret', secret: true }, PORT: '3000' });
 * const nodeEnv = await sandbox.env.get('NODE_ENV'); // "production"
 * ```
 */
export class Env {
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
  ) {}

  private path(...parts: string[]): string {
    return sandboxPath(this.sandboxId(), 'env', ...parts.map((part) => segment(part)));
  }

  /**
   * Sets one variable (`set(name, value)`) or several (`set({ NAME: value })`); answers them all.
   * @example
   * ```ts
   * await sandbox.env.set('NODE_ENV', 'production');
   * await sandbox.env.set({ API_KEY: 'secret', PORT: '3000' });
   * ```
   */
  async set(
    nameOrValues: string | Record<string, EnvInput>,
    value?: EnvInput,
    options: { secret?: boolean } = {},
  ): Promise<Record<string, EnvValue>> {
    let values: Record<string, EnvInput>;
    if (typeof nameOrValues === 'string') {
      if (value === undefined) throw new TypeError('env.set(name, value): the value is missing');
      values = { [nameOrValues]: options.secret && typeof value === 'string' ? { value, secret: true } : value };
    } else values = nameOrValues;
    return this.transport.json({ method: 'PATCH', path: this.path(), json: values });
  }

  /**
   * A variable's value (`********` for secrets), or `undefined` when it is not set.
   * @example
   * ```ts
   * const nodeEnv = await sandbox.env.get('NODE_ENV');
   * ```
   */
  async get(name: string): Promise<string | undefined> {
    try {
      const answer = await this.transport.json<{ value: string }>({ method: 'GET', path: this.path(name) });
      return answer.value;
    } catch (error) {
      if (error instanceof EnvVarNotFoundError) return undefined;
      throw error;
    }
  }

  /**
   * Every variable, by name.
   * @example
   * ```ts
   * const variables = await sandbox.env.all();
   * ```
   */
  async all(): Promise<Record<string, EnvValue>> {
    return this.transport.json({ method: 'GET', path: this.path() });
  }

  /**
   * Replaces every variable with these.
   * @example
   * ```ts
   * await sandbox.env.replace({ ONLY: 'this' });
   * ```
   */
  async replace(values: Record<string, EnvInput>): Promise<Record<string, EnvValue>> {
    return this.transport.json({ method: 'PUT', path: this.path(), json: values });
  }

  /**
   * Removes a variable (`EnvVarNotFoundError` if it is not set).
   * @example
   * ```ts
   * await sandbox.env.delete('PORT');
   * ```
   */
  async delete(name: string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(name) });
  }
}
