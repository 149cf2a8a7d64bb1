/**
 * HTTP to the VibeBox API with `fetch`, with retries.
 *
 * Retried, with exponential backoff and full jitter: 429 (after `Retry-After` when the server
 * sends it), 502, 503, connections that could not be made, and dropped connections of
 * idempotent requests (GET, HEAD, PUT, DELETE); never another 4xx, never a POST that may have
 * reached the server. `maxRetries` (default 3) more attempts, delays from `backoff` (500 ms)
 * doubling up to `maxBackoff` (8 s); a `Retry-After` above `maxRetryAfter` (60 s) is not waited
 * for: the error is thrown.
 * @module
 */

import { ConnectionError, NotSupportedError, TimeoutError, ValidationError, VibeBoxError, fromPayload } from './errors.js';
import { VERSION } from './version.js';

/**
 * Query parameters; `undefined` and `null` values are left out.
 * @example
 * ```ts
 * transport.url('/api/v1/sandboxes', { status: 'running', limit: 10 });
 * ```
 */
export type Query = Record<string, string | number | boolean | undefined | null>;

/**
 * A request body made fresh for each attempt (a stream can be read only once).
 * @example
 * ```ts
 * const call: Call = { method: 'POST', path, body: () => Readable.toWeb(createReadStream(file)) };
 * ```
 */
export type BodyFactory = () => Promise<RequestBody> | RequestBody;
/**
 * What {@link BodyFactory} may make.
 * @example
 * ```ts
 * const body: RequestBody = new TextEncoder().encode('hello');
 * ```
 */
export type RequestBody = string | Uint8Array | ReadableStream<Uint8Array>;

/**
 * One API request: what to send and how to treat the answer.
 * @example
 * ```ts
 * await vb.transport.json({ method: 'GET', path: '/api/v1/templates' });
 * ```
 */
export interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  path: string;
  query?: Query;
  json?: unknown;
  body?: BodyFactory;
  headers?: Record<string, string>;
  /** Milliseconds for the whole exchange, when the call needs another than the client's. */
  timeout?: number;
  /** A generic 404/405/501 means the server lacks this feature: throw NotSupportedError. */
  feature?: string;
}

/**
 * Retry settings; see the module's description.
 * @example
 * ```ts
 * new VibeBox({ maxRetries: 5, backoff: 250 });
 * ```
 */
export interface RetryOptions {
  maxRetries: number;
  backoff: number;
  maxBackoff: number;
  maxRetryAfter: number;
}

/**
 * How a {@link Transport} reaches the server.
 * @example
 * ```ts
 * vb.transport.with({ timeout: 5_000 });
 * ```
 */
export interface TransportOptions extends RetryOptions {
  baseUrl: string;
  apiKey: string | undefined;
  timeout: number;
  headers: Record<string, string>;
}

const RETRY_STATUSES = new Set([429, 502, 503]);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const DROPPED = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'ECONNABORTED']);

/**
 * Seconds to wait from a `Retry-After` header (seconds or an HTTP date), if any.
 * @example
 * ```ts
 * retryAfter(new Headers({ 'Retry-After': '2' })); // 2
 * ```
 */
export function retryAfter(headers: Headers): number | undefined {
  const value = headers.get('retry-after');
  if (!value) return undefined;
  const number = Number(value);
  if (Number.isFinite(number)) return Math.max(0, number);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

function errorCode(error: unknown): string | undefined {
  for (let current = error, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError');
}

/** Waits `ms` milliseconds. @example `await sleep(100)` */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Aborts a request once nothing has moved for `ms`: no answer yet, no chunk of its body sent or
 * received. A long transfer that keeps moving is never cut off.
 */
class IdleTimer {
  readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {
    this.touch();
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.controller.abort(new DOMException('idle', 'TimeoutError')), this.ms);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** `source`, touching `timer` at every chunk and turning its failures into `fail(error)`. */
function watched(
  source: ReadableStream<Uint8Array>,
  timer: IdleTimer,
  fail: (error: unknown) => unknown,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (done) {
          timer.stop();
          controller.close();
          return;
        }
        timer.touch();
        controller.enqueue(value);
      } catch (error) {
        timer.stop();
        controller.error(fail(error));
      }
    },
    async cancel(reason) {
      timer.stop();
      await reader.cancel(reason);
    },
  });
}

// Error codes of a 503 that mean nothing was started: a POST may be sent again.
const NOTHING_STARTED = new Set([
  'runtime_unavailable',
  'template_unavailable',
  'rate_limiter_unavailable',
  'no_capacity',
]);

/**
 * The API's JSON answers and raw responses, with retries. Shared by a client's sandboxes.
 * @example
 * ```ts
 * const templates = await vb.transport.json({ method: 'GET', path: '/api/v1/templates' });
 * ```
 */
export class Transport {
  /** Settings (the key is kept apart, so printing a client never shows it). */
  readonly options: Omit<TransportOptions, 'apiKey'>;
  readonly #apiKey: string | undefined;

  constructor(options: TransportOptions) {
    const { apiKey, ...rest } = options;
    const base = new URL(options.baseUrl);
    if (base.username || base.password) {
      throw new ValidationError('the server URL must not hold credentials: pass the API key as apiKey', {
        code: 'invalid_base_url',
      });
    }
    this.options = { ...rest, baseUrl: options.baseUrl.replace(/\/+$/, '') };
    this.#apiKey = apiKey;
  }

  /** A copy with other settings (same server and key); `undefined` values keep the current ones. */
  with(changes: Partial<Omit<TransportOptions, 'apiKey' | 'baseUrl'>>): Transport {
    const defined = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    return new Transport({ ...this.options, ...defined, apiKey: this.#apiKey });
  }

  /** Sends the call and answers its JSON (`undefined` for an empty answer). */
  async json<T>(call: Call): Promise<T> {
    const response = await this.send(call);
    const text = await this.read(call, () => response.text());
    if (!text) return undefined as T;
    try {
      return JSON.parse(text) as T;
    } catch (error) {
      throw new VibeBoxError(`the server's answer to ${call.method} ${call.path} is not JSON`, {
        code: 'invalid_response',
        status: response.status,
        cause: error,
      });
    }
  }

  /** Sends the call and answers its body as bytes. */
  async bytes(call: Call): Promise<Buffer> {
    const response = await this.send(call);
    return Buffer.from(await this.read(call, () => response.arrayBuffer()));
  }

  /**
   * Sends the call and answers the open response (status checked) for the caller to read. The
   * call's timeout is an idle timeout: it runs until the answer starts, then between chunks.
   */
  async send(call: Call): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const timer = new IdleTimer(call.timeout ?? this.options.timeout);
      let response: Response;
      try {
        response = await fetch(this.url(call.path, call.query), await this.init(call, timer));
      } catch (error) {
        timer.stop();
        const delay = this.delayAfterError(error, call.method, attempt);
        if (delay === undefined) throw this.transportError(error, call);
        await sleep(delay);
        continue;
      }
      timer.touch();
      const delay = await this.delayAfterResponse(response, call.method, attempt);
      if (delay !== undefined) {
        timer.stop();
        await response.body?.cancel().catch(() => undefined);
        await sleep(delay);
        continue;
      }
      if (response.status >= 400) {
        try {
          throw await this.errorFor(call, response);
        } finally {
          timer.stop();
        }
      }
      if (!response.body) {
        timer.stop();
        return response;
      }
      const body = watched(response.body, timer, (error) => this.transportError(error, call));
      return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
    }
  }

  /** `http(s)://host/path?query` for this server. */
  url(path: string, query?: Query): string {
    const url = new URL(this.options.baseUrl + path);
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    return url.toString();
  }

  /** The WebSocket URL (`ws://` or `wss://`) for a server path. */
  wsUrl(path: string, query?: Query): string {
    return this.url(path, query).replace(/^http/, 'ws');
  }

  /** Headers for every request: authentication, user agent. */
  headers(): Record<string, string> {
    const headers: Record<string, string> = {
      'User-Agent': `vibebox-sdk-typescript/${VERSION}`,
      Accept: 'application/json',
      ...this.options.headers,
    };
    if (this.#apiKey) headers.Authorization = `Bearer ${this.#apiKey}`;
    return headers;
  }

  private async init(call: Call, timer: IdleTimer): Promise<RequestInit> {
    const headers = { ...this.headers(), ...call.headers };
    let body: RequestBody | undefined;
    if (call.body) body = await call.body();
    else if (call.json !== undefined) {
      body = JSON.stringify(call.json);
      headers['Content-Type'] = 'application/json';
    }
    const init: RequestInit & { duplex?: 'half' } = { method: call.method, headers, signal: timer.controller.signal };
    if (body instanceof ReadableStream) {
      init.body = watched(body, timer, (error) => error) as NonNullable<RequestInit['body']>;
      init.duplex = 'half';
    } else if (body !== undefined) init.body = body as NonNullable<RequestInit['body']>;
    return init;
  }

  private async read<T>(call: Call, reader: () => Promise<T>): Promise<T> {
    try {
      return await reader();
    } catch (error) {
      throw this.transportError(error, call);
    }
  }

  private backoffDelay(attempt: number): number {
    const { backoff, maxBackoff } = this.options;
    return Math.random() * Math.min(maxBackoff, backoff * 2 ** attempt);
  }

  /**
   * Milliseconds to wait before sending the call again after this answer, or undefined. A POST is
   * sent again only when the server cannot have started it: 429, or a 503 saying the engine or
   * the image is unavailable (a 502 may come after the command ran).
   */
  private async delayAfterResponse(response: Response, method: string, attempt: number): Promise<number | undefined> {
    if (!RETRY_STATUSES.has(response.status) || attempt >= this.options.maxRetries) return undefined;
    if (!IDEMPOTENT.has(method) && response.status !== 429) {
      if (response.status !== 503) return undefined;
      const code = await response
        .clone()
        .json()
        .then((payload: unknown) => (payload as { error?: { code?: string } } | null)?.error?.code)
        .catch(() => undefined);
      if (code !== undefined && !NOTHING_STARTED.has(code)) return undefined;
    }
    const after = retryAfter(response.headers);
    if (after === undefined) return this.backoffDelay(attempt);
    return after <= this.options.maxRetryAfter ? after * 1000 : undefined;
  }

  private delayAfterError(error: unknown, method: string, attempt: number): number | undefined {
    if (attempt >= this.options.maxRetries || isTimeout(error)) return undefined;
    const code = errorCode(error) ?? '';
    if (NEVER_SENT.has(code) || (DROPPED.has(code) && IDEMPOTENT.has(method))) return this.backoffDelay(attempt);
    return undefined;
  }

  private transportError(error: unknown, call: Call): VibeBoxError {
    if (error instanceof VibeBoxError) return error;
    if (isTimeout(error) || isTimeout((error as { cause?: unknown })?.cause)) {
      return new TimeoutError(`${call.method} ${call.path}: nothing moved for ${call.timeout ?? this.options.timeout} ms`, {
        cause: error,
      });
    }
    const code = errorCode(error);
    const reason = code ?? (error instanceof Error ? error.message : String(error));
    return new ConnectionError(`cannot reach the VibeBox server at ${this.options.baseUrl}: ${reason}`, {
      cause: error,
    });
  }

  private async errorFor(call: Call, response: Response): Promise<VibeBoxError> {
    let payload: unknown;
    try {
      payload = JSON.parse(await response.text());
    } catch {
      payload = undefined;
    }
    const requestId = response.headers.get('x-request-id') ?? undefined;
    const error = fromPayload(response.status, payload, requestId, retryAfter(response.headers));
    const generic = error.code === 'not_found' || error.code === 'method_not_allowed' || response.status === 501;
    if (call.feature && generic) {
      return new NotSupportedError(`this VibeBox server does not support ${call.feature}`, {
        status: response.status,
        details: { feature: call.feature },
        ...(requestId ? { requestId } : {}),
      });
    }
    return error;
  }
}
