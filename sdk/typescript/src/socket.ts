/**
 * WebSockets to the server (streamed exec, logs, Claude events), with the `ws` package: Node 20
 * has no WebSocket client without a flag.
 * @module
 */

import type { IncomingMessage } from 'node:http';
import WebSocket from 'ws';

import {
  AuthenticationError,
  ConnectionError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
  SandboxNotFoundError,
  SandboxNotRunningError,
  ValidationError,
  VibeBoxError,
  fromPayload,
} from './errors.js';
import type { StreamSocket } from './command.js';
import { sleep, type Query, type Transport } from './transport.js';

const OPEN_TIMEOUT = 15_000;
const HANDSHAKE_ATTEMPTS = 3;

const CLOSE_CODES: Record<number, new (message: string, options?: { status?: number }) => VibeBoxError> = {
  4401: AuthenticationError,
  4403: PermissionDeniedError,
  4404: SandboxNotFoundError,
  4409: SandboxNotRunningError,
  4413: ValidationError, // a message above the server's limit
  4429: RateLimitError, // too many open streams
};

/**
 * The error for a stream the server closed with a 4xxx code (4000 + the HTTP status).
 * @example
 * ```ts
 * closeError(4404, '') instanceof SandboxNotFoundError; // true
 * ```
 */
export function closeError(code: number, reason: string): VibeBoxError {
  const Class = CLOSE_CODES[code] ?? (code >= 4400 && code < 4500 ? NotFoundError : ConnectionError);
  const status = code >= 4000 && code < 5000 ? code - 4000 : undefined;
  return new Class(reason || `the server closed the stream (code ${code})`, status ? { status } : {});
}

function refusedUpgrade(response: IncomingMessage): Promise<VibeBoxError> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('error', () => resolve(new ConnectionError(`WebSocket refused (HTTP ${response.statusCode})`)));
    response.on('end', () => {
      let payload: unknown;
      try {
        payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        payload = undefined;
      }
      const requestId = response.headers['x-request-id'];
      resolve(fromPayload(response.statusCode ?? 0, payload, typeof requestId === 'string' ? requestId : undefined));
    });
  });
}

/**
 * A WebSocket whose `message` and `close` events are kept until a listener is there: the
 * server's first frames can arrive with the handshake, before the consumer has attached.
 */
class BufferedSocket implements StreamSocket {
  private readonly queued = new Map<string, unknown[][]>([
    ['message', []],
    ['close', []],
  ]);
  private readonly listeners = new Map<string, Array<(...args: unknown[]) => void>>();

  constructor(private readonly socket: WebSocket) {
    for (const event of ['message', 'close', 'error']) socket.on(event, (...args: unknown[]) => this.emit(event, args));
  }

  private emit(event: string, args: unknown[]): void {
    const listeners = this.listeners.get(event);
    if (listeners?.length) for (const listener of listeners) listener(...args);
    else this.queued.get(event)?.push(args);
  }

  get readyState(): number {
    return this.socket.readyState;
  }

  send(data: string | Uint8Array): void {
    this.socket.send(data);
  }

  close(code?: number): void {
    this.socket.close(code);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as StreamSocket
  on(event: string, listener: (...args: any[]) => void): this {
    const listeners = this.listeners.get(event) ?? [];
    listeners.push(listener);
    this.listeners.set(event, listeners);
    const queued = this.queued.get(event);
    if (queued?.length) {
      this.queued.set(event, []);
      for (const args of queued) listener(...args);
    }
    return this;
  }
}

function connectOnce(url: string, headers: Record<string, string>): Promise<StreamSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, handshakeTimeout: OPEN_TIMEOUT, maxPayload: 0 });
    const buffered = new BufferedSocket(socket);
    let settled = false;
    const fail = (error: VibeBoxError) => {
      if (settled) return;
      settled = true;
      socket.terminate();
      reject(error);
    };
    socket.once('open', () => {
      settled = true;
      resolve(buffered);
    });
    socket.once('unexpected-response', (_request, response) => {
      void refusedUpgrade(response).then(fail);
    });
    socket.once('close', (code, reason) => fail(closeError(code, reason.toString())));
    socket.once('error', (error) =>
      fail(new ConnectionError(`cannot open ${url.split('?')[0]}: ${error.message}`, { cause: error })),
    );
  });
}

/**
 * Opens a WebSocket to a server path with the client's key; a handshake that failed before the
 * server answered is retried (it started nothing). Refusals become typed errors.
 * @example
 * ```ts
 * const socket = await openSocket(transport, '/ws/sandboxes/sbx_1/logs', { follow: 1 });
 * ```
 */
export async function openSocket(transport: Transport, path: string, query?: Query): Promise<StreamSocket> {
  const url = transport.wsUrl(path, query);
  const headers = { ...transport.headers() };
  delete headers.Accept;
  for (let attempt = 1; ; attempt++) {
    try {
      return await connectOnce(url, headers);
    } catch (error) {
      if (!(error instanceof ConnectionError) || attempt >= HANDSHAKE_ATTEMPTS || error.status) throw error;
      await sleep(200 * attempt);
    }
  }
}

/**
 * Parses a text frame as a JSON object (anything else: `undefined`).
 * @example
 * ```ts
 * parseFrame(Buffer.from('{"type":"stdout"}')); // { type: 'stdout' }
 * ```
 */
export function parseFrame(data: unknown): Record<string, unknown> | undefined {
  try {
    const text = Array.isArray(data)
      ? Buffer.concat(data as Buffer[]).toString('utf8')
      : Buffer.from(data as ArrayBuffer).toString('utf8');
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
