/**
 * The client: `new VibeBox()`.
 * @module
 */

import type { Duration } from './durations.js';
import { ConnectionError, SandboxNotFoundError } from './errors.js';
import { API, LONG, body, segment } from './paths.js';
import type { ExecResult } from './results.js';
import { Keys } from './keys.js';
import { Marketplace } from './marketplace.js';
import { Invitations, Orgs } from './orgs.js';
import { Webhooks } from './webhook-endpoints.js';
import { Billing } from './billing.js';
import { Sandbox, type RunOptions } from './sandbox.js';
import { Transport } from './transport.js';
import type { CreateOptions, ListOptions, SandboxInfo, Schemas, Snapshot, Template } from './types.js';

/**
 * Where the server is when neither `baseUrl` nor `VIBEBOX_API_URL` says.
 * @example
 * ```ts
 * new VibeBox().baseUrl === DEFAULT_URL; // when VIBEBOX_API_URL is not set
 * ```
 */
export const DEFAULT_URL = 'http://127.0.0.1:8000';

/**
 * Options of `new VibeBox()`; every one is optional.
 * @example
 * ```ts
 * const vb = new VibeBox({ apiKey: 'vb_live_…', baseUrl: 'https://vibebox.example.com', timeout: 30_000 });
 * ```
 */
export interface VibeBoxOptions {
  /** Default: `VIBEBOX_API_KEY`. */
  apiKey?: string;
  /** Default: `VIBEBOX_API_URL`, else `http://127.0.0.1:8000`. */
  baseUrl?: string;
  /** For VibeBox's hosted regions; a self-hosted server has one region and ignores it. */
  region?: string;
  /** Milliseconds for a request (default 60 000; long calls such as creates get more). */
  timeout?: number;
  /** Retries of 429/502/503 and connection failures (default 3). */
  maxRetries?: number;
  /** First backoff delay in ms (default 500, doubling up to 8 000). */
  backoff?: number;
  /** Extra headers for every request. */
  headers?: Record<string, string>;
}

type SandboxSpec = string | CreateOptions;

function spec(template: SandboxSpec, extra: CreateOptions = {}): CreateOptions {
  return typeof template === 'string' ? { ...extra, template } : { ...template, ...extra };
}

/**
 * The VibeBox client. Configuration comes from the options, else the environment
 * (`VIBEBOX_API_KEY`, `VIBEBOX_API_URL`).
 *
 * @example
 * ```ts
 * import { VibeBox } from '@vibebox/sdk';
 *
 * const vb = new VibeBox();
 * const sandbox = await vb.sandbox('node-20');
 * ```
 */
export class VibeBox {
  /** The HTTP transport (retries, authentication) every sandbox of this client uses. */
  readonly transport: Transport;
  /** The region asked for, if any. */
  readonly region: string | undefined;
  /** Your API keys (`keys:manage`). */
  readonly keys: Keys;
  /** Your organizations and their members (changes: `orgs:manage`). */
  readonly orgs: Orgs;
  /** Accepting an invitation to an organization: `vb.invitations.accept(token)`. */
  readonly invitations: Invitations;
  /** The organization's webhooks and their deliveries (`webhooks:manage`). */
  readonly webhooks: Webhooks;
  /** The organization's usage, costs, usage export and plan (`billing:read`, `billing:manage`). */
  readonly billing: Billing;
  /** The template marketplace: submissions and the catalogue (`templates:submit`, `templates:read`). */
  readonly marketplace: Marketplace;

  constructor(options: VibeBoxOptions = {}) {
    const baseUrl = options.baseUrl ?? process.env.VIBEBOX_API_URL ?? DEFAULT_URL;
    this.region = options.region;
    this.transport = new Transport({
      baseUrl,
      apiKey: options.apiKey ?? process.env.VIBEBOX_API_KEY,
      timeout: options.timeout ?? 60_000,
      maxRetries: options.maxRetries ?? 3,
      backoff: options.backoff ?? 500,
      maxBackoff: 8_000,
      maxRetryAfter: 60,
      headers: options.headers ?? {},
    });
    this.keys = new Keys(this.transport);
    this.orgs = new Orgs(this.transport);
    this.invitations = new Invitations(this.transport);
    this.webhooks = new Webhooks(this.transport);
    this.billing = new Billing(this.transport);
    this.marketplace = new Marketplace(this.transport);
  }

  /** The server's URL. */
  get baseUrl(): string {
    return this.transport.options.baseUrl;
  }

  /**
   * Creates a running sandbox from a template (options as in {@link VibeBox.create}).
   * @example
   * ```ts
   * const sandbox = await vb.sandbox('node-20-claude-code');
   * ```
   */
  sandbox(template: string, options: Omit<CreateOptions, 'template'> = {}): Promise<Sandbox> {
    return this.create({ ...options, template });
  }

  /**
   * Creates a sandbox. Ready when this resolves: `running` (or `stopped` with `autoStart: false`),
   * with its repository cloned when `git` is given.
   * @example
   * ```ts
   * const sandbox = await vb.create({
   *   template: 'node-20',
   *   name: 'my-dev-environment',
   *   ephemeral: false,
   *   timeout: '2h',
   *   git: 'https://github.com/user/project.git',
   * });
   * ```
   */
  async create(options: CreateOptions): Promise<Sandbox> {
    const json = body({ ...options }) satisfies Partial<Record<keyof Schemas['SandboxCreateRequest'], unknown>>;
    // With `wait`, the server may first wait up to VIBEBOX_TEMPLATE_WAIT (10 min) for the image.
    const timeout = options.wait ? 2 * LONG : LONG;
    const info = await this.transport.json<SandboxInfo>({ method: 'POST', path: `${API}/sandboxes`, json, timeout });
    return new Sandbox(this.transport, info);
  }

  /**
   * A sandbox by id (`sbx_…`) or name.
   * @example
   * ```ts
   * const sandbox = await vb.get('my-dev-environment');
   * ```
   */
  async get(idOrName: string): Promise<Sandbox> {
    const info = await this.transport.json<SandboxInfo>({ method: 'GET', path: `${API}/sandboxes/${segment(idOrName)}` });
    return new Sandbox(this.transport, info);
  }

  /**
   * Your sandboxes (not destroyed ones unless `status` asks), newest first, every page.
   * @example
   * ```ts
   * const running = await vb.list({ status: 'running', template: 'node-20' });
   * ```
   */
  async list(options: ListOptions = {}): Promise<Sandbox[]> {
    const query: Record<string, string | number | undefined> = {
      status: Array.isArray(options.status) ? options.status.join(',') : options.status,
      template: options.template,
      name: options.name,
    };
    for (const [key, value] of Object.entries(options.metadata ?? {})) query[`metadata.${key}`] = value;
    const found: Sandbox[] = [];
    const wanted = options.limit ?? Number.POSITIVE_INFINITY;
    for (let offset = 0; found.length < wanted; ) {
      const limit = Math.min(100, wanted - found.length);
      const page = await this.transport.json<Schemas['PaginatedSandboxList']>({
        method: 'GET',
        path: `${API}/sandboxes`,
        query: { ...query, limit, offset },
      });
      found.push(...page.results.map((info) => new Sandbox(this.transport, info)));
      if (!page.next || page.results.length === 0) break;
      offset += page.results.length;
    }
    return found;
  }

  /**
   * Creates several sandboxes in parallel. All or nothing: if one fails, those made are destroyed
   * and the first error is thrown.
   * @example
   * ```ts
   * const sandboxes = await vb.createMany([
   *   { template: 'node-20', name: 'worker-1' },
   *   { template: 'node-20', name: 'worker-2' },
   *   { template: 'python-3.11', name: 'ml-processor' },
   * ]);
   * ```
   */
  async createMany(specs: SandboxSpec[]): Promise<Sandbox[]> {
    const outcomes = await Promise.allSettled(specs.map((item) => this.create(spec(item))));
    const made = outcomes.flatMap((outcome) => (outcome.status === 'fulfilled' ? [outcome.value] : []));
    const failed = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
    if (failed) {
      await this.destroyAll(made).catch(() => undefined);
      throw failed.reason;
    }
    return made;
  }

  /**
   * Destroys these sandboxes (ids, names or sandboxes) in parallel; ones already gone are fine.
   * Throws an `AggregateError` of the failures after trying them all.
   * @example
   * ```ts
   * await vb.destroyAll(sandboxes);
   * ```
   */
  async destroyAll(sandboxes: Array<Sandbox | string>): Promise<void> {
    const outcomes = await Promise.allSettled(
      sandboxes.map(async (item) => {
        const sandbox = typeof item === 'string' ? new Sandbox(this.transport, { id: item } as SandboxInfo) : item;
        await sandbox.destroy();
      }),
    );
    const errors = outcomes.flatMap((outcome) =>
      outcome.status === 'rejected' && !(outcome.reason instanceof SandboxNotFoundError) ? [outcome.reason] : [],
    );
    if (errors.length) throw new AggregateError(errors, `${errors.length} of ${sandboxes.length} sandboxes were not destroyed`);
  }

  /**
   * Runs `fn` with a new sandbox and destroys it afterwards, whatever happened; answers `fn`'s value.
   * @example
   * ```ts
   * const result = await vb.withSandbox('node-20', async (sandbox) => {
   *   await sandbox.run('npm install');
   *   return sandbox.run('npm test');
   * });
   * ```
   */
  async withSandbox<T>(template: SandboxSpec, fn: (sandbox: Sandbox) => Promise<T> | T): Promise<T> {
    const sandbox = await this.create(spec(template));
    try {
      return await fn(sandbox);
    } finally {
      await sandbox.destroy().catch(() => undefined);
    }
  }

  /**
   * An ephemeral sandbox: it is destroyed when `timeout` is up (default 30 minutes), even if your
   * program dies, and when the key that made it is revoked.
   * @example
   * ```ts
   * const sandbox = await vb.ephemeral('node-20', '1h');
   * ```
   */
  ephemeral(template: string, timeout?: Duration, options: Omit<CreateOptions, 'template' | 'ephemeral' | 'timeout'> = {}): Promise<Sandbox> {
    return this.create({ ...options, template, ephemeral: true, ...(timeout === undefined ? {} : { timeout }) });
  }

  /**
   * {@link VibeBox.withSandbox} with an ephemeral sandbox (`timeout` default 30 minutes): destroyed
   * after `fn`, or by the server when its time is up if your program dies first.
   * @example
   * ```ts
   * const result = await vb.withEphemeral('node-20', async (sandbox) => {
   *   await sandbox.upload('./package.json');
   *   await sandbox.run('npm install');
   *   return sandbox.run('npm test');
   * }, { timeout: '15m' });
   * ```
   */
  withEphemeral<T>(
    template: string,
    fn: (sandbox: Sandbox) => Promise<T> | T,
    options: Omit<CreateOptions, 'template' | 'ephemeral'> = {},
  ): Promise<T> {
    return this.withSandbox({ ...options, template, ephemeral: true }, fn);
  }

  /**
   * Runs code once in a fresh ephemeral sandbox, destroyed afterwards; answers the result
   * (`returnValue`, `output`…). Throws like `sandbox.run()` when the code fails.
   * @example
   * ```ts
   * const result = await vb.runOnce('node-20', `
   *   console.log("Hello from ephemeral sandbox!");
   *   return { status: 'success' };
   * `);
   * result.returnValue; // { status: 'success' }
   * ```
   */
  runOnce(template: string, code: string, options: RunOptions & { sandboxTimeout?: Duration } = {}): Promise<ExecResult> {
    const { sandboxTimeout = '30m', ...run } = options;
    return this.withEphemeral(template, (sandbox) => sandbox.run(code, run), { timeout: sandboxTimeout });
  }

  /**
   * The platform's component health (API, engine, Redis, workers, gateway, pools); no key needed.
   * @example
   * ```ts
   * const { status, components } = await vb.status(); // status: 'ok' | 'degraded' | 'down'
   * ```
   */
  async status(): Promise<Schemas['PlatformStatus']> {
    return this.transport.json<Schemas['PlatformStatus']>({ method: 'GET', path: `${API}/status` });
  }

  /**
   * The SLOs with their SLI, error budget remaining and burn rates (a staff user's key; others get a `PermissionDeniedError`).
   * @example
   * ```ts
   * for (const slo of (await vb.slo()).slos) console.log(slo.name, slo.errorBudgetRemaining);
   * ```
   */
  async slo(): Promise<Schemas['SloReport']> {
    return this.transport.json<Schemas['SloReport']>({ method: 'GET', path: `${API}/status/slo` });
  }

  /**
   * The templates you can create sandboxes from.
   * @example
   * ```ts
   * for (const template of await vb.templates()) console.log(template.name, template.languages);
   * ```
   */
  async templates(): Promise<Template[]> {
    return this.transport.json<Template[]>({ method: 'GET', path: `${API}/templates` });
  }

  /**
   * One template (by name or alias).
   * @example
   * ```ts
   * const template = await vb.template('python-3');
   * ```
   */
  template(name: string): Promise<Template> {
    return this.transport.json({ method: 'GET', path: `${API}/templates/${segment(name)}` });
  }

  /**
   * All your snapshots, newest first.
   * @example
   * ```ts
   * const snapshots = await vb.snapshots();
   * ```
   */
  async snapshots(): Promise<Snapshot[]> {
    const answer = await this.transport.json<Schemas['SnapshotList']>({ method: 'GET', path: `${API}/snapshots`, feature: 'snapshots' });
    return answer.results;
  }

  /**
   * Deletes a snapshot (sandboxes made from it keep running).
   * @example
   * ```ts
   * await vb.deleteSnapshot(snapshot.id);
   * ```
   */
  async deleteSnapshot(snapshot: Snapshot | string): Promise<void> {
    const id = typeof snapshot === 'string' ? snapshot : snapshot.id;
    await this.transport.json({ method: 'DELETE', path: `${API}/snapshots/${segment(id)}`, feature: 'snapshots' });
  }

  /**
   * Whether the server, its database, Redis and Docker engine answer (no key needed).
   * @example
   * ```ts
   * const { ready } = await vb.health();
   * ```
   */
  async health(): Promise<{ ready: boolean; checks: Record<string, { ok: boolean; error?: string }> }> {
    const call = { method: 'GET' as const, path: '/readyz' };
    // Not through the retries: a 503 here is an answer (what is down), not a reason to wait.
    const response = await fetch(this.transport.url(call.path), { signal: AbortSignal.timeout(10_000) }).catch(
      (error: unknown) => {
        throw new ConnectionError(`cannot reach the VibeBox server at ${this.baseUrl}`, { cause: error });
      },
    );
    const answer = (await response.json().catch(() => ({}))) as { checks?: Record<string, { ok: boolean }> };
    return { ready: response.status === 200, checks: answer.checks ?? {} };
  }

}
