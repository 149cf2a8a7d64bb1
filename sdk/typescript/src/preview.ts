/**
 * Preview URLs: a sandbox's ports and the links that reach a server listening on one
 * (docs/api.md, "Preview URLs").
 * @module
 */

import type { Duration } from './durations.js';
import { sandboxPath } from './paths.js';
import type { Transport } from './transport.js';

const FEATURE = 'preview URLs';

/**
 * A port of a sandbox: one a server listens on now, and/or one its template declares.
 * @example
 * ```ts
 * for (const port of await sandbox.ports()) console.log(port.port, port.listening, port.url);
 * ```
 */
export interface Port {
  port: number;
  listening: boolean;
  declared: boolean;
  public: boolean;
  address: string;
  description: string;
  /** The host form, without a token: `http://3000-sbx_….preview.localhost:8000/`. */
  url: string;
  /** The path form, without a token: `http://…/preview/sbx_…/3000/`. */
  pathUrl: string;
}

/**
 * A signed, expiring link to a port: `url` carries `?vibebox_token=…`.
 * @example
 * ```ts
 * const { url, expiresAt } = await sandbox.previewUrl(3000, { expiresIn: '2h' });
 * ```
 */
export interface PreviewUrl {
  port: number;
  url: string;
  token: string;
  expiresAt: string;
  public: boolean;
}

/**
 * Options of `sandbox.previewUrl()`.
 * @example
 * ```ts
 * await sandbox.previewUrl(3000, { expiresIn: '1d', form: 'path' });
 * ```
 */
export interface PreviewUrlOptions {
  /** How long the link works (default `1h`, at most `7d`). */
  expiresIn?: Duration;
  /** `host` (default: `http://<port>-<id>.<domain>/`, its own origin) or `path` (`/preview/<id>/<port>/`). */
  form?: 'host' | 'path';
}

/**
 * A URL without its query string (the token).
 * @example
 * ```ts
 * withoutQuery('http://3000-sbx_1.preview.localhost/?vibebox_token=x'); // "http://3000-sbx_1.preview.localhost/"
 * ```
 */
export function withoutQuery(url: string): string {
  // Not through `new URL()`: it lowercases the host, and the server's URLs keep the sandbox id's case.
  return url.split('#', 1)[0]!.split('?', 1)[0]!;
}

/** @internal The requests behind `sandbox.ports()`, `.previewUrl()`, `.setPortPublic()`. @example `await sandbox.ports() // through PreviewCalls.ports()` */
export class PreviewCalls {
  constructor(
    private readonly transport: Transport,
    private readonly id: () => string,
  ) {}

  async ports(): Promise<Port[]> {
    const path = sandboxPath(this.id(), 'ports');
    return (await this.transport.json<{ ports: Port[] }>({ method: 'GET', path, feature: FEATURE })).ports;
  }

  url(port: number, options: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    const path = sandboxPath(this.id(), 'ports', String(port), 'url');
    const query: Record<string, string> = {};
    if (options.expiresIn !== undefined) query.expiresIn = String(options.expiresIn);
    if (options.form !== undefined) query.form = options.form;
    return this.transport.json<PreviewUrl>({ method: 'GET', path, query, feature: FEATURE });
  }

  setPublic(port: number, isPublic: boolean): Promise<Port> {
    const path = sandboxPath(this.id(), 'ports', String(port));
    return this.transport.json<Port>({ method: 'PATCH', path, json: { public: isPublic }, feature: FEATURE });
  }
}
