/**
 * A sandbox's log: its container's own output and VibeBox's events for it, live.
 * @module
 */

import type { StreamSocket } from './command.js';
import type { Duration } from './durations.js';
import { VibeBoxError, guarded } from './errors.js';
import { openSocket } from './socket.js';
import { parseFrame } from './socket.js';
import type { Query, Transport } from './transport.js';

/**
 * Severity given to each entry: stderr is `error`, stdout `info`, events by their name.
 * @example
 * ```ts
 * sandbox.onLog({ level: 'error' }, (log) => console.error(log.text));
 * ```
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/**
 * Which entries: container stdout, stderr, VibeBox's events, or all.
 * @example
 * ```ts
 * sandbox.onLog({ filter: 'events' }, (log) => console.log(log.event));
 * ```
 */
export type LogFilter = 'stdout' | 'stderr' | 'events' | 'all';

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * One log entry.
 * @example
 * ```ts
 * sandbox.onLog((log) => console.log(log.text)); // "2026-11-27T08:03:04.123Z [stdout] hello"
 * ```
 */
export interface LogEntry {
  /** `log` (the container's output) or `event` (VibeBox's: `sandbox.started`…). */
  type: 'log' | 'event';
  /** `stdout`, `stderr`, or `vibebox` for events. */
  stream: string;
  /** The line formatted with its time and stream: `2026-11-27T08:03:04.123Z [stdout] hello`. */
  text: string;
  /** The line itself, as printed. */
  message: string;
  /** When it happened. */
  timestamp: Date;
  level: LogLevel;
  /** The event's name, for events. */
  event?: string;
  /** The entry as the server sent it. */
  raw: Record<string, unknown>;
}

/**
 * Options of `sandbox.onLog()`.
 * @example
 * ```ts
 * sandbox.onLog({ filter: 'stderr', since: '10m', onError: console.error }, (log) => console.log(log.text));
 * ```
 */
export interface LogOptions {
  /** `stdout`, `stderr`, `events`, or `all` (the default). */
  filter?: LogFilter;
  /** The lowest level delivered (default: every entry). */
  level?: LogLevel;
  /** Also deliver earlier entries from this far back (`"10m"`) or this many (`tail`). */
  since?: Duration;
  /** Earlier entries to deliver first (default 0: only new ones). `'all'` for every kept one. */
  tail?: number | 'all';
  /** Called when the stream fails after it opened (by default the failure is only in `closed`). */
  onError?: (error: VibeBoxError) => void;
}

function levelOf(entry: Record<string, unknown>): LogLevel {
  if (entry.stream === 'stderr') return 'error';
  const event = typeof entry.event === 'string' ? entry.event : '';
  if (/error|fail|oom|killed/i.test(event)) return 'error';
  if (/expir|destroy|stop|pause/i.test(event)) return 'warn';
  return 'info';
}

/**
 * The SDK's entry for a log line or event the server sent.
 * @example
 * ```ts
 * toLogEntry({ type: 'log', stream: 'stdout', text: 'hi', timestamp: '2026-11-27T08:00:00Z' }).level; // "info"
 * ```
 */
export function toLogEntry(raw: Record<string, unknown>): LogEntry {
  const stamp = raw.timestamp;
  const timestamp = typeof stamp === 'number' ? new Date(stamp * 1000) : new Date(String(stamp ?? Date.now()));
  const message = String(raw.text ?? '').replace(/\n$/, '');
  const stream = String(raw.stream ?? (raw.type === 'event' ? 'vibebox' : 'stdout'));
  const when = Number.isNaN(timestamp.getTime()) ? '' : timestamp.toISOString();
  const entry: LogEntry = {
    type: raw.type === 'event' ? 'event' : 'log',
    stream,
    message,
    text: `${when} [${raw.type === 'event' ? String(raw.event ?? stream) : stream}] ${message}`.trim(),
    timestamp,
    level: levelOf(raw),
    raw,
  };
  if (typeof raw.event === 'string') entry.event = raw.event;
  return entry;
}

/**
 * The WebSocket query for a log stream.
 * @example
 * ```ts
 * logQuery({ filter: 'stdout' }, true); // { follow: 1, tail: 0, stdout: 1, stderr: 0, … }
 * ```
 */
export function logQuery(options: LogOptions, follow: boolean): Query {
  const filter = options.filter ?? 'all';
  return {
    follow: follow ? 1 : 0,
    tail: options.tail ?? (options.since === undefined ? 0 : undefined),
    since: options.since,
    stdout: filter === 'all' || filter === 'stdout' ? 1 : 0,
    stderr: filter === 'all' || filter === 'stderr' ? 1 : 0,
  };
}

/**
 * Whether an entry passes the options' `filter` and `level`.
 * @example
 * ```ts
 * logMatches(entry, { filter: 'stdout', level: 'info' });
 * ```
 */
export function logMatches(entry: LogEntry, options: LogOptions): boolean {
  const filter = options.filter ?? 'all';
  if (filter === 'events' && entry.type !== 'event') return false;
  if ((filter === 'stdout' || filter === 'stderr') && (entry.type !== 'log' || entry.stream !== filter)) return false;
  return LEVELS.indexOf(entry.level) >= LEVELS.indexOf(options.level ?? 'debug');
}

/**
 * A live subscription made by `sandbox.onLog()`; `close()` ends it.
 * @example
 * ```ts
 * const logs = sandbox.onLog((log) => console.log(log.text));
 * await logs.ready;
 * // …
 * logs.close();
 * ```
 */
export class LogSubscription {
  /** Resolves once the stream is open (entries from then on are delivered); rejects if refused. */
  readonly ready: Promise<void>;
  /** Resolves when the stream ends (after `close()`), rejects if it failed. */
  readonly closed: Promise<void>;
  private socket: StreamSocket | undefined;
  private closing = false;
  private failure: unknown;

  constructor(transport: Transport, path: string, options: LogOptions, callback: (entry: LogEntry) => void) {
    let opened: Promise<StreamSocket>;
    this.ready = (opened = openSocket(transport, path, logQuery(options, true))).then((socket) => {
      this.socket = socket;
      if (this.closing) socket.close(1000);
    });
    this.closed = opened.then(
      (socket) =>
        new Promise<void>((resolve, reject) => {
          socket.on('message', (data) => {
            const raw = parseFrame(data);
            if (!raw || raw.type === 'error' || this.failure !== undefined) return;
            const entry = toLogEntry(raw);
            if (!logMatches(entry, options)) return;
            // A failing callback ends the subscription: `closed` rejects with a CallbackError.
            guarded(
              () => callback(entry),
              (error) => {
                this.failure = error;
                this.closing = true;
                options.onError?.(error);
                socket.close(1000);
              },
            );
          });
          socket.on('error', () => undefined);
          socket.on('close', (code: number) => {
            if (this.failure !== undefined) return reject(this.failure);
            if (this.closing || code === 1000) return resolve();
            const error = new VibeBoxError(`the log stream closed (code ${code})`, { code: 'stream_closed' });
            options.onError?.(error);
            reject(error);
          });
        }),
    );
    this.ready.catch((error: VibeBoxError) => options.onError?.(error));
    this.closed.catch(() => undefined);
  }

  /** Ends the subscription. */
  close(): void {
    this.closing = true;
    this.socket?.close(1000);
  }
}
