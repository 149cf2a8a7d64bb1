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
  SandboxNotFoundError,
  SandboxNotRunningError,
  VibeBoxError,
  fromPayload,
} from './errors.js';
import { sleep, type Query, type Transport } from './transport.js';

const OPEN_TIMEOUT = 15_000;
const HANDSHAKE_ATTEMPTS = 3;

const CLOSE_CODES: Record<number, new (message: string, options?: { status?: number }) => VibeBoxError> = {
  4401: AuthenticationError,
  4403: PermissionDeniedError,
  4404: SandboxNotFoundError,
  4409: SandboxNotRunningError,
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

function connectOnce(url: string, headers: Record<string, string>): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { headers, handshakeTimeout: OPEN_TIMEOUT, maxPayload: 0 });
    let settled = false;
    const fail = (error: VibeBoxError) => {
      if (settled) return;
      settled = true;
      socket.terminate();
      reject(error);
    };
    socket.once('open', () => {
      settled = true;
      resolve(socket);
    });
    socket.once('unexpected-response', (_request, response) => {
      void refusedUpgrade(response).then(fail);
    });
    socket.once('close', (code, reason) => fail(closeError(code, reason.toString())));
    socket.once('error', (error) => fail(new ConnectionError(`cannot open ${url.split('?')[0]}: ${error.message}`, { cause: error })));
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
export async function openSocket(transport: Transport, path: string, query?: Query): Promise<WebSocket> {
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
