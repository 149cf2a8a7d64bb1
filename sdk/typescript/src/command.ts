/**
 * Streamed commands: `sandbox.exec(cmd, { stream: true })` and background processes.
 * @module
 */

import { ConnectionError, VibeBoxError, fromPayload, guarded, isRecord, warnLate } from './errors.js';
import { ExecResult } from './results.js';
import { closeError, parseFrame } from './socket.js';

/**
 * Which stream a chunk of output came from.
 * @example
 * ```ts
 * cmd.onData((data, stream: OutputStream) => (stream === 'stderr' ? console.error : console.log)(data));
 * ```
 */
export type OutputStream = 'stdout' | 'stderr';
/**
 * Signals a running command can be sent.
 * @example
 * ```ts
 * cmd.signal('INT');
 * ```
 */
export type Signal = 'INT' | 'TERM' | 'KILL' | 'HUP' | 'QUIT' | 'USR1' | 'USR2' | 'STOP' | 'CONT';

type DataCallback = (data: string, stream: OutputStream) => void;

const noop = () => undefined;
const OPEN = 1;

/**
 * The part of a WebSocket a stream uses (so the package's types do not depend on `ws`'s).
 * @example
 * ```ts
 * // implemented by the `ws` WebSocket the SDK opens; not needed by callers
 * ```
 */
export interface StreamSocket {
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code?: number): void;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the socket's listeners vary per event
  on(event: string, listener: (...args: any[]) => void): unknown;
}

/**
 * A command whose output arrives as it is printed.
 *
 * Callbacks added late are first given what already arrived, so nothing printed between
 * `exec()` and `onData()` is lost. It is not a promise itself: `await cmd.wait()` for the result.
 *
 * @example
 * ```ts
 * const cmd = await sandbox.exec('npm install', { stream: true, cwd: '/workspace' });
 * cmd.onData((data) => process.stdout.write(data));
 * cmd.onComplete((result) => console.log('Done!', result.exitCode));
 * const result = await cmd.wait();
 * ```
 */
export class CommandStream {
  private readonly chunks: Array<[string, OutputStream]> = [];
  private readonly dataCallbacks: DataCallback[] = [];
  private readonly completeCallbacks: Array<(result: ExecResult) => void> = [];
  private readonly errorCallbacks: Array<(error: VibeBoxError) => void> = [];
  private readonly done: Promise<ExecResult>;
  private outcome: { result?: ExecResult; error?: VibeBoxError } | undefined;
  private truncatedBytes = 0;
  private fail: (error: VibeBoxError) => void = () => undefined;

  /** @internal */
  constructor(private readonly socket: StreamSocket) {
    this.done = new Promise<ExecResult>((resolve, reject) => {
      this.fail = (error: VibeBoxError) => this.finish({ error }, resolve, reject);
      socket.on('message', (data: unknown) => {
        const message = parseFrame(data);
        if (message) this.handle(message, resolve, reject);
      });
      socket.on('close', (code: number, reason: Buffer) => {
        if (this.outcome) return;
        const error =
          code >= 4000 ? closeError(code, reason.toString()) : new ConnectionError(`the command's stream closed (code ${code}) before it exited`);
        this.finish({ error }, resolve, reject);
      });
      socket.on('error', noop); // a 'close' follows every error
    });
    this.done.catch(noop); // awaited through wait(); never an unhandled rejection by itself
  }

  private handle(
    message: Record<string, unknown>,
    resolve: (result: ExecResult) => void,
    reject: (error: VibeBoxError) => void,
  ): void {
    const kind = message.type;
    if (kind === 'stdout' || kind === 'stderr') {
      const data = typeof message.data === 'string' ? message.data : '';
      this.chunks.push([data, kind]);
      for (const callback of this.dataCallbacks) this.invoke(() => callback(data, kind));
    } else if (kind === 'truncated') {
      this.truncatedBytes = Number(message.droppedBytes ?? 0);
    } else if (kind === 'exit') {
      const result = new ExecResult({
        ...(message as Record<string, never>),
        executionId: String(message.executionId ?? ''),
        stdout: this.text('stdout'),
        stderr: this.text('stderr'),
      });
      this.finish({ result }, resolve, reject);
      this.socket.close(1000);
    } else if (kind === 'error') {
      const body = isRecord(message.error) ? message.error : {};
      this.finish({ error: fromPayload(400, { error: body }) }, resolve, reject);
      this.socket.close(1000);
    }
  }

  private finish(
    outcome: { result?: ExecResult; error?: VibeBoxError },
    resolve: (result: ExecResult) => void,
    reject: (error: VibeBoxError) => void,
  ): void {
    if (this.outcome) return;
    this.outcome = outcome;
    if (outcome.result) {
      resolve(outcome.result);
      for (const callback of this.completeCallbacks) this.invoke(() => callback(outcome.result!));
    } else if (outcome.error) {
      reject(outcome.error);
      for (const callback of this.errorCallbacks) this.invoke(() => callback(outcome.error!));
    }
  }

  /** Runs a callback of the user's: a throw fails the stream (or, once it is over, is a warning). */
  private invoke(run: () => unknown): void {
    guarded(run, (error) => {
      if (this.outcome) return warnLate(error);
      this.fail(error);
      this.socket.close(1000);
    });
  }

  private text(stream: OutputStream): string {
    return this.chunks
      .filter(([, from]) => from === stream)
      .map(([data]) => data)
      .join('');
  }

  /**
   * Calls `callback` with every chunk of stdout and stderr (first with what already arrived).
   * @example
   * ```ts
   * cmd.onData((data, stream) => process.stdout.write(data));
   * ```
   */
  onData(callback: DataCallback): this {
    for (const [data, stream] of this.chunks) callback(data, stream);
    this.dataCallbacks.push(callback);
    return this;
  }

  /**
   * Calls `callback` with stdout chunks only.
   * @example
   * ```ts
   * cmd.onStdout((data) => process.stdout.write(data));
   * ```
   */
  onStdout(callback: (data: string) => void): this {
    return this.onData((data, stream) => stream === 'stdout' && callback(data));
  }

  /**
   * Calls `callback` with stderr chunks only.
   * @example
   * ```ts
   * cmd.onStderr((data) => process.stderr.write(data));
   * ```
   */
  onStderr(callback: (data: string) => void): this {
    return this.onData((data, stream) => stream === 'stderr' && callback(data));
  }

  /**
   * Calls `callback` with the result when the command exits (at once if it has).
   * @example
   * ```ts
   * cmd.onComplete((result) => console.log('Done!', result.exitCode));
   * ```
   */
  onComplete(callback: (result: ExecResult) => void): this {
    if (this.outcome?.result) queueMicrotask(() => this.invoke(() => callback(this.outcome!.result!)));
    else this.completeCallbacks.push(callback);
    return this;
  }

  /**
   * Calls `callback` if the stream fails (refused, dropped, an engine error).
   * @example
   * ```ts
   * cmd.onError((error) => console.error(error.code));
   * ```
   */
  onError(callback: (error: VibeBoxError) => void): this {
    if (this.outcome?.error) queueMicrotask(() => this.invoke(() => callback(this.outcome!.error!)));
    else this.errorCallbacks.push(callback);
    return this;
  }

  /**
   * The result once the command exits (whatever its exit code).
   * @example
   * ```ts
   * const result = await cmd.wait();
   * ```
   */
  wait(): Promise<ExecResult> {
    return this.done;
  }

  /** Bytes of early output the server no longer had when this stream attached (background processes). */
  get droppedBytes(): number {
    return this.truncatedBytes;
  }

  /**
   * Writes to the command's stdin.
   * @example
   * ```ts
   * cmd.write('yes\n').closeStdin();
   * ```
   */
  write(data: string): this {
    this.send({ type: 'stdin', data });
    return this;
  }

  /**
   * Closes the command's stdin (it sees end of file).
   * @example
   * ```ts
   * cmd.closeStdin();
   * ```
   */
  closeStdin(): this {
    this.send({ type: 'close_stdin' });
    return this;
  }

  /**
   * Sends a signal to every process of the command.
   * @example
   * ```ts
   * cmd.signal('INT');
   * ```
   */
  signal(signal: Signal): this {
    this.send({ type: 'signal', signal });
    return this;
  }

  /**
   * Kills the command and everything it started.
   * @example
   * ```ts
   * cmd.kill();
   * ```
   */
  kill(): this {
    return this.signal('KILL');
  }

  /**
   * Leaves the stream (a streamed exec's command is killed; a background process runs on).
   * @example
   * ```ts
   * cmd.close();
   * ```
   */
  close(): void {
    this.socket.close(1000);
  }

  private send(message: Record<string, unknown>): void {
    if (this.socket.readyState === OPEN) this.socket.send(JSON.stringify(message));
  }
}
