/**
 * `vb.marketplace`: submitting template versions to the marketplace, following their validation,
 * reviewing them, and the catalogue (search, ratings, yank, deprecation, featured);
 * docs/marketplace.md. Submitting, cancelling, yanking and deprecating need templates.submit (a
 * key: the `templates:submit` scope); reading needs `templates:read`; reviewing public
 * submissions and featuring are for staff.
 *
 * A directory's other files are the build context (a gzip tar), without `.git` and what its
 * `.dockerignore` excludes; it is checked against the server's limit (50 MiB unpacked by default)
 * before anything is sent (`BuildContextTooLargeError`).
 * @module
 */

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';

import { BuildContextTooLargeError, SubmissionFailedError, TimeoutError, ValidationError } from './errors.js';
import { API, segment } from './paths.js';
import { tarChunks, type PackEntry } from './tar.js';
import { sleep, type Query, type Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * A submission as listed: `state`, and when failed `failedStep` (upload, build, policy, smoke) and `message`.
 * @example
 * ```ts
 * for (const sub of await vb.marketplace.submissions({ state: 'failed' })) console.log(sub.id, sub.failedStep, sub.message);
 * ```
 */
export type Submission = Schemas['Submission'];

/**
 * A submission with its build log (from `logOffset`), smoke test output and accepted spec.
 * @example
 * ```ts
 * const { buildLog, smokeOutput } = await vb.marketplace.submission('sub_123');
 * ```
 */
export type SubmissionDetail = Schemas['SubmissionDetail'];

/**
 * A submission's state: queued, building, smoke_testing, awaiting_review, published, rejected, failed, cancelled.
 * @example
 * ```ts
 * const state: SubmissionState = 'awaiting_review';
 * ```
 */
export type SubmissionState = Schemas['StateEnum'];

/**
 * A template of the catalogue, as listed.
 * @example
 * ```ts
 * const [top] = await vb.marketplace.templates({ sort: 'rating', limit: 1 });
 * console.log(top?.name, top?.rating.average);
 * ```
 */
export type MarketplaceTemplate = Schemas['CatalogueTemplate'];

/**
 * A catalogue template with its readme, versions (newest first), ports, smoke command and resources.
 * @example
 * ```ts
 * const { readme, versions } = await vb.marketplace.template('react-vite');
 * ```
 */
export type MarketplaceTemplateDetail = Schemas['CatalogueTemplateDetail'];

/**
 * One published version of a marketplace template (yanked ones stay for running sandboxes).
 * @example
 * ```ts
 * const version: TemplateVersion = await vb.marketplace.yank('react-vite', '1.2.0', 'broken');
 * ```
 */
export type TemplateVersion = Schemas['TemplateVersion'];

/**
 * A user's rating (1-5) and text of a template.
 * @example
 * ```ts
 * const review: TemplateReview = await vb.marketplace.rate('react-vite', 5, 'works out of the box');
 * ```
 */
export type TemplateReview = Schemas['Review'];

/**
 * A submission: its id (`sub_…`), or the submission itself.
 * @example
 * ```ts
 * const ref: SubmissionRef = 'sub_3kT9';
 * ```
 */
export type SubmissionRef = string | Pick<Submission, 'id'>;

/**
 * A template: its name, or the template itself.
 * @example
 * ```ts
 * const ref: TemplateRef = 'react-vite';
 * ```
 */
export type TemplateRef = string | Pick<MarketplaceTemplate, 'name'>;

/**
 * The parts of a submission, when they are not a directory.
 * @example
 * ```ts
 * await vb.marketplace.submit({ dockerfile: 'FROM debian:trixie\n', templateYaml: yaml });
 * ```
 */
export interface SubmissionParts {
  dockerfile: string | Uint8Array;
  templateYaml: string | Uint8Array;
  /** The build context: a tar (plain or gzip). */
  context?: Uint8Array;
}

/**
 * Options of `vb.marketplace.submit()`.
 * @example
 * ```ts
 * await vb.marketplace.submit('./react-vite', { visibility: 'public' });
 * ```
 */
export interface SubmitOptions {
  /** `private` (default: the organization only, no review) or `public` (after staff review). */
  visibility?: 'private' | 'public';
  /** Bytes the context may hold (default 50 MiB, the server's default limit). */
  contextLimit?: number;
}

/**
 * Options of `vb.marketplace.wait()`.
 * @example
 * ```ts
 * await vb.marketplace.wait(sub, { onLog: (text) => process.stderr.write(text), timeout: 1_200_000 });
 * ```
 */
export interface SubmissionWaitOptions {
  /** Gets each new part of the build log as it comes. */
  onLog?: (text: string) => void;
  /** Also wait for the review of a public submission (default: stop at `awaiting_review`). */
  untilPublished?: boolean;
  /** Milliseconds, then `TimeoutError`. */
  timeout?: number;
  /** Milliseconds between looks (default 1000). */
  interval?: number;
  /** Throw `SubmissionFailedError` when it ends failed, rejected or cancelled. */
  check?: boolean;
}

/**
 * Filters of `vb.marketplace.templates()`, and `limit` (default: every page).
 * @example
 * ```ts
 * const options: CatalogueOptions = { q: 'react', language: 'typescript', sort: 'rating' };
 * ```
 */
export interface CatalogueOptions {
  q?: string;
  language?: string;
  tag?: string;
  featured?: boolean;
  /** `true`: built-in ones; `false`: community ones. */
  official?: boolean;
  sort?: 'featured' | 'rating' | 'usage' | 'newest' | 'name';
  limit?: number;
}

/** The server's default VIBEBOX_TEMPLATE_CONTEXT_MAX. @example `await vb.marketplace.submit(dir, { contextLimit: CONTEXT_MAX })` */
export const CONTEXT_MAX = 50 * 1024 * 1024;
const FEATURE = 'the template marketplace';
const PAGE = 100;
const SUBMISSIONS = `${API}/marketplace/submissions`;
const CATALOGUE = `${API}/marketplace/templates`;
const SUBMIT_TIMEOUT = 300_000;
const WAIT_DONE = new Set(['published', 'rejected', 'failed', 'cancelled', 'awaiting_review']);
const ENDED = new Set(['published', 'rejected', 'failed', 'cancelled']);
const FAILED = new Set(['rejected', 'failed', 'cancelled']);
const encoder = new TextEncoder();

function idOf(ref: SubmissionRef): string {
  return typeof ref === 'string' ? ref : ref.id;
}

function nameOf(ref: TemplateRef): string {
  return typeof ref === 'string' ? ref : ref.name;
}

// ---- .dockerignore ----

function patternRegex(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] as string;
    if (pattern.startsWith('**', i)) {
      i += 1;
      if (pattern[i + 1] === '/') {
        i += 1;
        out += '(?:.*/)?';
      } else out += '.*';
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end === -1) out += '\\[';
      else {
        const body = pattern.slice(i + 1, end);
        out += `[${body.startsWith('!') || body.startsWith('^') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < pattern.length) {
      i += 1;
      out += (pattern[i] as string).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    } else out += c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/**
 * The rules of a `.dockerignore`: a pattern a line (`*`, `?`, `**`, classes), `!` re-includes,
 * `#` comments; the last rule matching a path or one of its parent directories decides.
 * @example
 * ```ts
 * new IgnoreRules('node_modules\n*.log\n!keep.log').excluded('node_modules/x/index.js'); // true
 * ```
 */
export class IgnoreRules {
  private readonly rules: Array<{ negate: boolean; regex: RegExp }> = [];

  constructor(text = '') {
    for (let line of text.split(/\r?\n/)) {
      line = line.trim();
      if (!line || line.startsWith('#')) continue;
      const negate = line.startsWith('!');
      let pattern = path.posix.normalize((negate ? line.slice(1).trim() : line).replace(/\\/g, '/'));
      pattern = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
      while (pattern.startsWith('./')) pattern = pattern.slice(2);
      if (!pattern || pattern === '.') continue;
      this.rules.push({ negate, regex: patternRegex(pattern) });
    }
  }

  /** Whether some rule re-includes (`!`): excluded directories must then still be walked. */
  get hasExceptions(): boolean {
    return this.rules.some((rule) => rule.negate);
  }

  /** Whether a relative, `/`-separated path is left out. */
  excluded(relative: string): boolean {
    const parts = relative.split('/');
    const prefixes = parts.map((_, n) => parts.slice(0, n + 1).join('/'));
    let verdict = false;
    for (const { negate, regex } of this.rules) {
      if (prefixes.some((prefix) => regex.test(prefix))) verdict = !negate;
    }
    return verdict;
  }
}

async function walk(root: string, rules: IgnoreRules, directory = ''): Promise<PackEntry[]> {
  const found: PackEntry[] = [];
  for (const name of (await fs.readdir(path.join(root, directory))).sort()) {
    const relative = directory ? `${directory}/${name}` : name;
    if (!directory && (name === '.git' || name === 'Dockerfile' || name === 'template.yaml')) continue;
    const absolute = path.join(root, relative);
    const stat = await fs.lstat(absolute);
    const mtime = Math.floor(stat.mtimeMs / 1000);
    if (stat.isDirectory()) {
      if (rules.excluded(relative) && !rules.hasExceptions) continue;
      found.push(...(await walk(root, rules, relative)));
    } else if (rules.excluded(relative)) continue;
    else if (stat.isFile()) {
      found.push({ name: relative, type: 'file', mode: stat.mode & 0o777, mtime, size: stat.size, source: absolute });
    } else if (stat.isSymbolicLink()) {
      const linkname = (await fs.readlink(absolute)).replace(/\\/g, '/');
      found.push({ name: relative, type: 'symlink', mode: 0o777, mtime, linkname });
    }
  }
  return found;
}

/**
 * A directory's build context as a gzip tar: every file but Dockerfile, template.yaml, `.git` and
 * what `.dockerignore` excludes; `undefined` when there is none. Throws `BuildContextTooLargeError`
 * above `limit` bytes (before reading any file).
 * @example
 * ```ts
 * const context = await packContext('./react-vite');
 * ```
 */
export async function packContext(directory: string, limit = CONTEXT_MAX): Promise<Uint8Array | undefined> {
  const ignore = await fs.readFile(path.join(directory, '.dockerignore'), 'utf8').catch(() => '');
  const entries = await walk(directory, new IgnoreRules(ignore));
  if (entries.length === 0) return undefined;
  const total = entries.reduce((sum, entry) => sum + (entry.size ?? 0), 0);
  if (total > limit) {
    const largest = [...entries].sort((a, b) => (b.size ?? 0) - (a.size ?? 0)).slice(0, 5);
    const listing = largest.map((e) => `${e.name} (${((e.size ?? 0) / 1024 ** 2).toFixed(1)} MiB)`).join(', ');
    throw new BuildContextTooLargeError(
      `the build context of ${directory} is ${(total / 1024 ** 2).toFixed(1)} MiB, above the limit of ` +
        `${Math.round(limit / 1024 ** 2)} MiB; leave files out with a .dockerignore (largest: ${listing})`,
      { details: { limit, size: total, largest: largest.map((e) => ({ name: e.name, size: e.size ?? 0 })) } },
    );
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of tarChunks(entries)) chunks.push(chunk);
  return gzipSync(Buffer.concat(chunks));
}

/**
 * A multipart/form-data body and its Content-Type: a string is a text field, `{ filename, content,
 * type }` a file.
 * @example
 * ```ts
 * const { body, contentType } = multipart({ visibility: 'public' });
 * ```
 */
export function multipart(fields: Record<string, string | { filename: string; content: Uint8Array; type: string }>): {
  body: Uint8Array;
  contentType: string;
} {
  const boundary = `vibebox-${randomBytes(16).toString('hex')}`;
  const parts: Uint8Array[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (typeof value === 'string') {
      parts.push(encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
    } else {
      parts.push(
        encoder.encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${value.filename}"\r\n` +
            `Content-Type: ${value.type}\r\n\r\n`,
        ),
        value.content,
        encoder.encode('\r\n'),
      );
    }
  }
  parts.push(encoder.encode(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

function bytes(value: string | Uint8Array): Uint8Array {
  return typeof value === 'string' ? encoder.encode(value) : value;
}

async function partsOf(source: string | SubmissionParts, limit: number): Promise<SubmissionParts> {
  if (typeof source !== 'string') return source;
  let directory = source;
  const stat = await fs.stat(directory);
  if (stat.isFile()) directory = path.dirname(directory);
  const missing: string[] = [];
  for (const name of ['Dockerfile', 'template.yaml']) {
    const found = await fs.stat(path.join(directory, name)).catch(() => undefined);
    if (!found?.isFile()) missing.push(name);
  }
  if (missing.length) {
    throw new ValidationError(
      `${directory} has no ${missing.join(' and no ')}: a template is a directory with a Dockerfile and a ` +
        'template.yaml (docs/marketplace.md)',
      { code: 'invalid_template_directory', details: { missing } },
    );
  }
  const context = await packContext(directory, limit);
  return {
    dockerfile: await fs.readFile(path.join(directory, 'Dockerfile')),
    templateYaml: await fs.readFile(path.join(directory, 'template.yaml')),
    ...(context ? { context } : {}),
  };
}

/**
 * The template marketplace.
 * @example
 * ```ts
 * const sub = await vb.marketplace.submit('./react-vite', { visibility: 'public' });
 * const done = await vb.marketplace.wait(sub, { onLog: (text) => process.stderr.write(text) });
 * console.log(done.state, done.failedStep, done.message);
 * for (const t of await vb.marketplace.templates({ q: 'react', sort: 'rating' })) console.log(t.name, t.latestVersion);
 * ```
 */
export class Marketplace {
  constructor(private readonly transport: Transport) {}

  private async pages<T>(urlPath: string, query: Query, limit?: number): Promise<T[]> {
    const found: T[] = [];
    const wanted = limit ?? Number.POSITIVE_INFINITY;
    while (found.length < wanted) {
      const size = Math.min(PAGE, wanted - found.length);
      const page = await this.transport.json<{ next: string | null; results: T[] }>({
        method: 'GET',
        path: urlPath,
        query: { ...query, limit: size, offset: found.length },
        feature: FEATURE,
      });
      found.push(...page.results);
      if (!page.next || page.results.length === 0) break;
    }
    return found;
  }

  private post<T>(urlPath: string, json?: unknown): Promise<T> {
    return this.transport.json<T>({ method: 'POST', path: urlPath, json: json ?? {}, feature: FEATURE });
  }

  private catalogue(name: TemplateRef, ...parts: string[]): string {
    return [CATALOGUE, ...[nameOf(name), ...parts].map((part) => segment(part))].join('/');
  }

  private submissionPath(ref: SubmissionRef, ...parts: string[]): string {
    return [SUBMISSIONS, segment(idOf(ref)), ...parts].join('/');
  }

  /**
   * Queues a template version for validation (build, policy checks, smoke test): a directory with a
   * Dockerfile, a template.yaml and the build context's files (or the template.yaml's path), or the
   * parts. Refusals: `InvalidTemplateYamlError` (`details.fields`), `InvalidDockerfileError`,
   * `InvalidBuildContextError`, `BuildContextTooLargeError` (also before sending).
   * @example
   * ```ts
   * const sub = await vb.marketplace.submit('./react-vite'); // { id: 'sub_…', state: 'queued', … }
   * ```
   */
  async submit(source: string | SubmissionParts, options: SubmitOptions = {}): Promise<SubmissionDetail> {
    const limit = options.contextLimit ?? CONTEXT_MAX;
    const parts = await partsOf(source, limit);
    if (parts.context && parts.context.length > limit) {
      throw new BuildContextTooLargeError(
        `the build context is ${(parts.context.length / 1024 ** 2).toFixed(1)} MiB, above the limit of ` +
          `${Math.round(limit / 1024 ** 2)} MiB`,
        { details: { limit, size: parts.context.length } },
      );
    }
    const fields: Parameters<typeof multipart>[0] = {
      dockerfile: { filename: 'Dockerfile', content: bytes(parts.dockerfile), type: 'text/plain; charset=utf-8' },
      templateYaml: { filename: 'template.yaml', content: bytes(parts.templateYaml), type: 'application/yaml' },
    };
    if (parts.context?.length) {
      fields.context = { filename: 'context.tar.gz', content: parts.context, type: 'application/gzip' };
    }
    if (options.visibility) fields.visibility = options.visibility;
    const { body, contentType } = multipart(fields);
    return this.transport.json<SubmissionDetail>({
      method: 'POST',
      path: SUBMISSIONS,
      body: () => body,
      headers: { 'Content-Type': contentType },
      timeout: SUBMIT_TIMEOUT,
      feature: FEATURE,
    });
  }

  /**
   * A submission with its build log (with `logOffset`, only what follows that byte of the whole log).
   * @example
   * ```ts
   * const { state, buildLog, logSize } = await vb.marketplace.submission('sub_123');
   * ```
   */
  submission(ref: SubmissionRef, options: { logOffset?: number } = {}): Promise<SubmissionDetail> {
    return this.transport.json<SubmissionDetail>({
      method: 'GET',
      path: this.submissionPath(ref),
      query: { logOffset: options.logOffset },
      feature: FEATURE,
    });
  }

  /**
   * The organization's submissions, newest first; staff: `allOrgs` (with `state: 'awaiting_review'`).
   * @example
   * ```ts
   * const queue = await vb.marketplace.submissions({ state: 'awaiting_review', allOrgs: true });
   * ```
   */
  submissions(options: { state?: SubmissionState; allOrgs?: boolean; limit?: number } = {}): Promise<Submission[]> {
    const query = { state: options.state, allOrgs: options.allOrgs ? 'true' : undefined };
    return this.pages<Submission>(SUBMISSIONS, query, options.limit);
  }

  /**
   * Approves (publishes) or rejects (with a reason, shown to the author) a submission awaiting review.
   * @example
   * ```ts
   * await vb.marketplace.review('sub_123', false, 'The smoke command only prints a version.');
   * ```
   */
  review(ref: SubmissionRef, approve: boolean, reason?: string): Promise<Submission> {
    return this.post<Submission>(this.submissionPath(ref, 'review'), { approve, ...(reason ? { reason } : {}) });
  }

  /**
   * Cancels a queued submission (`SubmissionStateError` once its validation started).
   * @example
   * ```ts
   * await vb.marketplace.cancel(sub);
   * ```
   */
  cancel(ref: SubmissionRef): Promise<Submission> {
    return this.post<Submission>(this.submissionPath(ref, 'cancel'));
  }

  /**
   * Follows a submission until it stops moving (published, failed, rejected, cancelled, or awaiting
   * review) and answers its last state; `onLog` gets the build log as it comes.
   * @example
   * ```ts
   * const done = await vb.marketplace.wait(sub, { onLog: (t) => process.stderr.write(t), check: true });
   * ```
   */
  async wait(ref: SubmissionRef, options: SubmissionWaitOptions = {}): Promise<SubmissionDetail> {
    const deadline = options.timeout === undefined ? undefined : Date.now() + options.timeout;
    let offset: number | undefined;
    for (;;) {
      const current = await this.submission(ref, offset === undefined ? {} : { logOffset: offset });
      if (options.onLog && current.buildLog) options.onLog(current.buildLog);
      offset = current.logSize;
      const done = options.untilPublished ? ENDED.has(current.state) : WAIT_DONE.has(current.state);
      if (done) {
        if (options.check && FAILED.has(current.state)) throw new SubmissionFailedError(current);
        return current;
      }
      if (deadline !== undefined && Date.now() > deadline) {
        throw new TimeoutError(`submission ${idOf(ref)} is still being validated`, { code: 'timeout' });
      }
      await sleep(options.interval ?? 1000);
    }
  }

  /**
   * The catalogue's templates the organization sees: `q` searches names, descriptions and tags.
   * @example
   * ```ts
   * const found = await vb.marketplace.templates({ q: 'fastapi', official: false, sort: 'usage' });
   * ```
   */
  templates(options: CatalogueOptions = {}): Promise<MarketplaceTemplate[]> {
    const { limit, ...filters } = options;
    return this.pages<MarketplaceTemplate>(CATALOGUE, filters, limit);
  }

  /**
   * One template with its readme, versions, rating and usage.
   * @example
   * ```ts
   * const { versions, rating, usage } = await vb.marketplace.template('react-vite');
   * ```
   */
  template(name: TemplateRef): Promise<MarketplaceTemplateDetail> {
    return this.transport.json<MarketplaceTemplateDetail>({ method: 'GET', path: this.catalogue(name), feature: FEATURE });
  }

  /**
   * The template's reviews, newest first.
   * @example
   * ```ts
   * for (const r of await vb.marketplace.reviews('react-vite')) console.log(r.user, r.rating, r.text);
   * ```
   */
  reviews(name: TemplateRef, options: { limit?: number } = {}): Promise<TemplateReview[]> {
    return this.pages<TemplateReview>(this.catalogue(name, 'reviews'), {}, options.limit);
  }

  /**
   * Rates the template 1-5 (sent again, it edits your review); only after creating a sandbox from it
   * (`ReviewNotAllowedError`).
   * @example
   * ```ts
   * await vb.marketplace.rate('react-vite', 4, 'fast start');
   * ```
   */
  rate(name: TemplateRef, rating: number, text?: string): Promise<TemplateReview> {
    return this.post<TemplateReview>(this.catalogue(name, 'reviews'), { rating, ...(text ? { text } : {}) });
  }

  /**
   * Hides a version from new creates (running sandboxes keep it).
   * @example
   * ```ts
   * await vb.marketplace.yank('react-vite', '1.2.0', 'the dev server does not start');
   * ```
   */
  yank(name: TemplateRef, version: string, reason?: string): Promise<TemplateVersion> {
    return this.post<TemplateVersion>(this.catalogue(name, 'versions', version, 'yank'), reason ? { reason } : {});
  }

  /**
   * Sets a deprecation notice with a suggested replacement (an empty message clears it).
   * @example
   * ```ts
   * await vb.marketplace.deprecate('react-vite', 'Use react-vite-6.', 'react-vite-6');
   * ```
   */
  deprecate(name: TemplateRef, message: string, replacement?: string): Promise<MarketplaceTemplateDetail> {
    return this.post(this.catalogue(name, 'deprecate'), { message, ...(replacement ? { replacement } : {}) });
  }

  /**
   * Staff: features a template in the catalogue (a lower rank first), or stops featuring it.
   * @example
   * ```ts
   * await vb.marketplace.feature('react-vite', true, 1);
   * ```
   */
  feature(name: TemplateRef, featured = true, rank?: number): Promise<MarketplaceTemplateDetail> {
    return this.post(this.catalogue(name, 'feature'), { featured, ...(rank === undefined ? {} : { rank }) });
  }
}
