/**
 * `sandbox.terminal()`: an interactive shell on a real PTY, shareable between clients.
 * @module
 */

import { VibeBoxError, fromPayload, guarded, isRecord, warnLate } from './errors.js';
import type { StreamSocket } from './command.js';
import { closeError, parseFrame } from './socket.js';

/**
 * Options of `sandbox.terminal()`.
 * @example
 * ```ts
 * const term = await sandbox.terminal({ cols: 120, rows: 40, shell: 'bash', cwd: '/workspace' });
 * ```
 */
export interface TerminalOptions {
  cols?: number;
  rows?: number;
  /** `bash` (default), `sh`, `zsh`, `fish`, `dash`; a login shell. */
  shell?: string;
  cwd?: string;
  /** Join this open session (`term_…`) instead of starting a shell. */
  session?: string;
}

/**
 * An interactive terminal. Output comes as raw bytes (feed them to a terminal emulator, or
 * decode them incrementally); `write` types keystrokes (`\r` is Enter, `\x03` Ctrl-C).
 *
 * @example
 * ```ts
 * const term = await sandbox.terminal({ cols: 100, rows: 30 });
 * term.onData((bytes) => process.stdout.write(bytes));
 * term.write('ls -la; exit 3\r');
 * console.log(await term.exited); // 3
 * ```
 */
export class Terminal {
  /** The session id (`term_…`): other clients join with `sandbox.terminal({ session })`. */
  sessionId = '';
  /** The terminal's size and shell when this client attached. */
  cols = 0;
  rows = 0;
  shell = '';
  /** Resolves once the server has opened the session (then `sessionId` is set). */
  readonly ready: Promise<this>;
  /** The shell's exit code once it exits (`null` if killed, idle or the sandbox stopped). */
  readonly exited: Promise<number | null>;
  private readonly chunks: Buffer[] = [];
  private readonly dataCallbacks: Array<(data: Buffer) => void> = [];
  private readonly errorCallbacks: Array<(error: VibeBoxError) => void> = [];
  private failure: VibeBoxError | undefined;
  private dropped = 0;

  /** @internal */
  constructor(private readonly socket: StreamSocket) {
    let exitCode: number | null = null;
    let opened: (terminal: this) => void = () => undefined;
    this.ready = new Promise<this>((resolve) => (opened = resolve));
    this.exited = new Promise<number | null>((resolve, reject) => {
      socket.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary) return this.received(data);
        const message = parseFrame(data);
        if (message?.type === 'session') {
          this.sessionId = String(message.sessionId ?? '');
          this.cols = Number(message.cols ?? 0);
          this.rows = Number(message.rows ?? 0);
          this.shell = String(message.shell ?? '');
          opened(this);
        } else if (message?.type === 'exit') exitCode = typeof message.exitCode === 'number' ? message.exitCode : null;
        else if (message?.type === 'truncated') this.dropped += Number(message.droppedBytes ?? 0) || 0;
        else if (message?.type === 'error') {
          const error = fromPayload(400, { error: isRecord(message.error) ? message.error : {} });
          for (const callback of this.errorCallbacks) guarded(() => callback(error), warnLate);
        }
      });
      socket.on('error', () => undefined);
      socket.on('close', (code: number, reason: Buffer) => {
        if (this.failure) reject(this.failure);
        else if (code === 1000 || code === 4408 || code === 1005) resolve(exitCode);
        else reject(closeError(code, reason.toString()));
      });
    });
    this.exited.catch(() => undefined);
    this.ready = Promise.race([this.ready, this.exited.then(() => this)]);
  }

  private received(data: Buffer): void {
    this.chunks.push(data);
    for (const callback of this.dataCallbacks) {
      guarded(
        () => callback(data),
        (error) => {
          this.failure = error; // `exited` rejects with it
          this.socket.close(1000);
        },
      );
    }
  }

  /**
   * Calls `callback` with the terminal's output (first with what already arrived).
   * @example
   * ```ts
   * term.onData((bytes) => process.stdout.write(bytes));
   * ```
   */
  onData(callback: (data: Buffer) => void): this {
    for (const chunk of this.chunks) callback(chunk);
    this.dataCallbacks.push(callback);
    return this;
  }

  /**
   * Calls `callback` when the server refuses a keystroke or resize (the terminal stays open).
   * @example
   * ```ts
   * term.onError((error) => console.error(error.message));
   * ```
   */
  onError(callback: (error: VibeBoxError) => void): this {
    this.errorCallbacks.push(callback);
    return this;
  }

  /**
   * Bytes of output this client missed: it fell behind and the server no longer kept them (a gap
   * in what `onData` got; the screen repairs itself on the next redraw).
   */
  get droppedBytes(): number {
    return this.dropped;
  }

  /** Everything the terminal printed to this client so far, decoded as UTF-8. */
  get output(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /**
   * Types keystrokes (sent as binary, so text starting with `{` is typed as it is).
   * @example
   * ```ts
   * term.write('ls -la\r');
   * ```
   */
  write(data: string | Uint8Array): this {
    this.socket.send(typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data));
    return this;
  }

  /**
   * Resizes the terminal (its programs get SIGWINCH).
   * @example
   * ```ts
   * term.resize(132, 43);
   * ```
   */
  resize(cols: number, rows: number): this {
    this.socket.send(JSON.stringify({ type: 'resize', cols, rows }));
    return this;
  }

  /**
   * Ends the shell and everything started in it, for every client (they get its exit).
   * @example
   * ```ts
   * term.kill();
   * ```
   */
  kill(): void {
    this.socket.send(JSON.stringify({ type: 'kill' }));
  }

  /**
   * Leaves the session; the shell runs on (until it exits, idles out or is killed) and others
   * may join it by `sessionId`.
   * @example
   * ```ts
   * term.close();
   * ```
   */
  close(): void {
    this.socket.close(1000);
  }
}
