/**
 * `sandbox.files.watch()`: a sandbox's file changes as they happen, over the WebSocket
 * `/ws/sandboxes/{id}/files/watch` (docs/api.md, "File watch").
 *
 * The watch survives a pause and resume of the sandbox (its connection stays open). When the
 * connection drops, or the server's time limit for one watch (an hour) ends it, a new one is
 * opened and an `overflow` event with reason `reconnect` is delivered: changes in between may
 * have been missed, so rescan. It ends (an `end` event, then `done` resolves) when the directory
 * goes away, the sandbox stops, the `timeout` you gave passes, or on `stop()`.
 * @module
 */

import { CallbackError, ConnectionError, VibeBoxError, fromPayload, guarded } from './errors.js';
import { socketPath } from './paths.js';
import { closeError, openSocket, parseFrame } from './socket.js';
import type { StreamSocket } from './command.js';
import type { Duration } from './durations.js';
import { sleep, type Transport } from './transport.js';

const RECONNECT_ATTEMPTS = 5;

/**
 * One change in a watched directory. `path` is absolute in the sandbox; `from` is a rename's old
 * path; `reason` says why for an `overflow` (queue, kernel, watch_limit, path_limit, reconnect:
 * events were lost, rescan) and for the last event, `end` (root_removed, root_moved, unmounted,
 * sandbox_stopped, timeout, error).
 * @example
 * ```ts
 * const event: FileEvent = { type: 'create', path: '/workspace/a.txt', isDir: false, time: '2026-12-04T00:00:00Z' };
 * ```
 */
export interface FileEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod' | 'overflow' | 'end';
  path: string;
  isDir: boolean;
  time: string;
  from?: string;
  reason?: string;
}

/**
 * Options of `files.watch()`.
 * @example
 * ```ts
 * const options: WatchOptions = { recursive: false, excludes: ['node_modules', '*.pyc'], timeout: '10m' };
 * ```
 */
export interface WatchOptions {
  /** Subdirectories too (default true). */
  recursive?: boolean;
  /** Glob patterns left out: without `/` matched against each name, with `/` against the path below the directory. */
  excludes?: string[];
  /** End the watch after this long (default: until `stop()`). */
  timeout?: Duration;
  /** Called when the watch fails (as well as `done` rejecting). */
  onError?: (error: VibeBoxError) => void;
}

/**
 * An open file watch, made by `sandbox.files.watch()`: the callback gets every {@link FileEvent};
 * `stop()` ends it; `done` resolves with why it ended (`stopped`, `root_removed`, `timeout`…) or
 * rejects when it failed (a callback that threw: a {@link CallbackError}).
 * @example
 * ```ts
 * const watch = await sandbox.files.watch('/workspace', (event) => console.log(event.type, event.path));
 * await sandbox.exec('touch /workspace/a.txt');
 * watch.stop();
 * console.log(await watch.done); // "stopped"
 * ```
 */
export class FileWatch {
  /** Resolves with why the watch ended; rejects if it failed. */
  readonly done: Promise<string>;
  /** The watched directory (absolute). */
  readonly root: string;
  private socket: StreamSocket;
  private stopped = false;
  private finish!: (reason: string) => void;
  private failWith!: (error: unknown) => void;
  private settled = false;

  private constructor(
    private readonly open: () => Promise<StreamSocket>,
    socket: StreamSocket,
    root: string,
    private readonly callback: (event: FileEvent) => unknown,
    private readonly options: WatchOptions,
  ) {
    this.root = root;
    this.socket = socket;
    this.done = new Promise<string>((resolve, reject) => {
      this.finish = resolve;
      this.failWith = reject;
    });
    this.done.catch(() => undefined);
    this.attach(socket);
  }

  /**
   * Opens a watch (what `files.watch()` calls): resolves once it is in place.
   * @example
   * ```ts
   * const watch = await FileWatch.start(transport, 'sbx_1', '/workspace', console.log, {});
   * ```
   */
  static async start(
    transport: Transport,
    sandboxId: string,
    root: string,
    callback: (event: FileEvent) => unknown,
    options: WatchOptions = {},
  ): Promise<FileWatch> {
    const excludes = new URLSearchParams((options.excludes ?? []).map((pattern): [string, string] => ['exclude', pattern]));
    const path = socketPath(sandboxId, 'files', 'watch') + (excludes.toString() ? `?${excludes.toString()}` : '');
    const query = {
      path: root,
      recursive: options.recursive === false ? 'false' : 'true',
      timeout: options.timeout === undefined ? undefined : String(options.timeout),
    };
    const open = () => openSocket(transport, path, query);
    return new FileWatch(open, await open(), root, callback, options);
  }

  private attach(socket: StreamSocket): void {
    let ended = false;
    socket.on('message', (data: unknown) => {
      if (this.settled || socket !== this.socket) return;
      const raw = parseFrame(data);
      if (!raw) return;
      if (raw.type === 'error') {
        this.fail(fromPayload(400, { error: raw.error }));
        return;
      }
      const event = raw as unknown as FileEvent;
      if (event.type === 'end') {
        ended = true;
        if (event.reason === 'timeout' && this.options.timeout === undefined && !this.stopped) {
          void this.reopen(); // the server's own limit for one watch: go on with a new one
          return;
        }
        this.deliver(event);
        this.end(event.reason ?? 'error');
        return;
      }
      this.deliver(event);
    });
    socket.on('error', () => undefined);
    socket.on('close', (code: number, reason: Buffer | string) => {
      if (this.settled || ended || socket !== this.socket) return;
      if (this.stopped) return this.end('stopped');
      if (code >= 4000 && code < 5000) {
        return this.fail(closeError(code, String(reason ?? '')));
      }
      void this.reopen(); // a connection that dropped
    });
  }

  private deliver(event: FileEvent): void {
    guarded(
      () => this.callback(event),
      (error: CallbackError) => {
        this.fail(error);
        this.socket.close(1000);
      },
    );
  }

  private async reopen(): Promise<void> {
    for (let attempt = 0; attempt < RECONNECT_ATTEMPTS; attempt++) {
      if (this.stopped || this.settled) return;
      try {
        const socket = await this.open();
        if (this.stopped || this.settled) {
          socket.close(1000);
          return this.end('stopped');
        }
        const old = this.socket;
        this.socket = socket;
        old.close(1000);
        this.attach(socket);
        this.deliver({ type: 'overflow', path: this.root, isDir: true, time: '', reason: 'reconnect' });
        return;
      } catch (error) {
        if (!(error instanceof ConnectionError) || error.status) return this.fail(error);
        await sleep(Math.min(5000, 500 * 2 ** attempt));
      }
    }
    this.fail(new ConnectionError("the file watch's connection dropped and could not be opened again"));
  }

  private end(reason: string): void {
    if (this.settled) return;
    this.settled = true;
    this.socket.close(1000);
    this.finish(reason);
  }

  private fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.socket.close(1000);
    if (error instanceof VibeBoxError) this.options.onError?.(error);
    this.failWith(error);
  }

  /**
   * Ends the watch (the server frees it in the sandbox at once); `done` then resolves with `stopped`.
   * @example
   * ```ts
   * watch.stop();
   * ```
   */
  stop(): void {
    this.stopped = true;
    this.end('stopped');
  }
}
