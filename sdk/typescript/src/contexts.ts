/**
 * Stateful code contexts: a long-lived interpreter (a kernel) in the sandbox that keeps variables,
 * imports and state between runs and answers rich results (tables, images) as a notebook does
 * (docs/api.md, "Code contexts").
 * @module
 */

import type { Duration } from './durations.js';
import { ConnectionError, ValidationError, fromPayload, isRecord, type VibeBoxError } from './errors.js';
import { LONG, body, execTimeout, sandboxPath, segment, socketPath } from './paths.js';
import { closeError, openSocket, parseFrame } from './socket.js';
import type { Transport } from './transport.js';

const FEATURE = 'code contexts';

/**
 * A code context as the server describes it.
 * @example
 * ```ts
 * const ctx = await sandbox.contexts.create({ language: 'python' });
 * console.log(ctx.info.status, ctx.info.executionCount);
 * ```
 */
export interface ContextInfo {
  /** `ctx_…`. */
  id: string;
  language: 'python' | 'javascript' | string;
  cwd: string | null;
  /** `idle`, `busy` or `dead`. */
  status: string;
  executionCount: number;
  createdAt: string;
  lastUsedAt: string | null;
}

/**
 * One rich output: `data` maps MIME types (`text/plain`, `text/html`, `image/png` (base64),
 * `image/svg+xml`, `application/json`, `text/markdown`) to values.
 * @example
 * ```ts
 * const [table] = (await ctx.run('df')).results;
 * console.log(table?.html);
 * ```
 */
export class Result {
  readonly data: Record<string, unknown>;
  /** True for the value of the code's last expression. */
  readonly isMainResult: boolean;

  /** @internal */
  constructor(raw: { data?: Record<string, unknown>; isMainResult?: boolean }) {
    this.data = raw.data ?? {};
    this.isMainResult = Boolean(raw.isMainResult);
  }

  private get(type: string): string | undefined {
    const value = this.data[type];
    return typeof value === 'string' ? value : undefined;
  }

  /** `text/plain`. @example `result.text` */
  get text(): string | undefined {
    return this.get('text/plain');
  }

  /** `text/html` (e.g. a DataFrame's table; render it sandboxed: it is the sandbox's HTML). @example `result.html` */
  get html(): string | undefined {
    return this.get('text/html');
  }

  /** `image/png`, base64. @example `Buffer.from(result.png!, 'base64')` */
  get png(): string | undefined {
    return this.get('image/png');
  }

  /** `image/jpeg`, base64. @example `result.jpeg` */
  get jpeg(): string | undefined {
    return this.get('image/jpeg');
  }

  /** `image/svg+xml`. @example `result.svg` */
  get svg(): string | undefined {
    return this.get('image/svg+xml');
  }

  /** `application/json`, parsed. @example `result.json` */
  get json(): unknown {
    return this.data['application/json'];
  }

  /** `text/markdown`. @example `result.markdown` */
  get markdown(): string | undefined {
    return this.get('text/markdown');
  }

  /** The MIME types present. @example `result.formats.includes('image/png')` */
  get formats(): string[] {
    return Object.keys(this.data);
  }
}

/**
 * An exception the code raised (not thrown by the SDK: `execution.error`).
 * @example
 * ```ts
 * const { error } = await ctx.run('1 / 0');
 * console.log(error?.name, error?.value); // ZeroDivisionError division by zero
 * ```
 */
export interface ExecutionError {
  name: string;
  value: string;
  traceback: string;
}

/**
 * What one `ctx.run(code)` did.
 * @example
 * ```ts
 * const execution = await ctx.run('x + 1');
 * console.log(execution.text, execution.stdout, execution.error);
 * ```
 */
export class CodeExecution {
  readonly results: Result[];
  readonly stdout: string;
  readonly stderr: string;
  readonly error: ExecutionError | null;
  readonly truncated: boolean;
  readonly executionCount: number | null;
  readonly durationMs: number | null;
  /** Its record in the sandbox's history (`sandbox.execution(id)`). */
  readonly executionId: string | null;

  /** @internal */
  constructor(raw: Record<string, unknown>) {
    this.results = Array.isArray(raw.results) ? raw.results.map((item) => new Result(item as Record<string, never>)) : [];
    this.stdout = typeof raw.stdout === 'string' ? raw.stdout : '';
    this.stderr = typeof raw.stderr === 'string' ? raw.stderr : '';
    this.error = isRecord(raw.error)
      ? { name: String(raw.error.name ?? ''), value: String(raw.error.value ?? ''), traceback: String(raw.error.traceback ?? '') }
      : null;
    this.truncated = Boolean(raw.truncated);
    this.executionCount = typeof raw.executionCount === 'number' ? raw.executionCount : null;
    this.durationMs = typeof raw.durationMs === 'number' ? raw.durationMs : null;
    this.executionId = typeof raw.executionId === 'string' ? raw.executionId : null;
  }

  /** The value of the last expression, if it had one. @example `execution.mainResult?.png` */
  get mainResult(): Result | undefined {
    return this.results.find((result) => result.isMainResult);
  }

  /** The main result's `text/plain`. @example `(await ctx.run('6 * 7')).text // "42"` */
  get text(): string | undefined {
    return this.mainResult?.text;
  }
}

/**
 * Options of `ctx.run()`: callbacks make it stream over the sandbox's exec WebSocket.
 * @example
 * ```ts
 * await ctx.run('for i in range(3): print(i)', { onStdout: (data) => process.stdout.write(data) });
 * ```
 */
export interface RunCodeOptions {
  timeout?: Duration;
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  onResult?: (result: Result) => void;
  onError?: (error: ExecutionError) => void;
}

/**
 * Options of `sandbox.contexts.create()`.
 * @example
 * ```ts
 * await sandbox.contexts.create({ language: 'javascript', cwd: '/workspace/app' });
 * ```
 */
export interface CreateContextOptions {
  /** `python` (default) or `javascript`. */
  language?: 'python' | 'javascript';
  cwd?: string;
}

/**
 * A code context: run code in it, interrupt, restart, delete.
 * @example
 * ```ts
 * const ctx = await sandbox.contexts.create({ language: 'python' });
 * await ctx.run('x = 41');
 * console.log((await ctx.run('x + 1')).text); // 42
 * await ctx.delete();
 * ```
 */
export class Context {
  /** What the server last said. */
  info: ContextInfo;

  /** @internal */
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
    info: ContextInfo,
  ) {
    this.info = info;
  }

  /** `ctx_…`. @example `ctx.id` */
  get id(): string {
    return this.info.id;
  }

  /** @example `ctx.language` */
  get language(): string {
    return this.info.language;
  }

  private path(...parts: string[]): string {
    return sandboxPath(this.sandboxId(), 'contexts', segment(this.id), ...parts);
  }

  /**
   * Runs code in the context. An exception in the code is `execution.error`, not a throw.
   * With `onStdout`, `onStderr`, `onResult` or `onError`, output streams as it is produced.
   * @example
   * ```ts
   * const execution = await ctx.run('import pandas as pd; pd.DataFrame({"a": [1, 2]})');
   * console.log(execution.results[0]?.html);
   * ```
   */
  async run(code: string, options: RunCodeOptions = {}): Promise<CodeExecution> {
    const { timeout, onStdout, onStderr, onResult, onError } = options;
    if (onStdout || onStderr || onResult || onError) {
      const streamed = await this.stream(code, options);
      if (streamed) return streamed;
    }
    const json = body({ code, timeout });
    const raw = await this.transport.json<Record<string, unknown>>({
      method: 'POST',
      path: this.path('execute'),
      json,
      timeout: execTimeout(timeout),
    });
    const execution = new CodeExecution(raw);
    // A server without streaming: the callbacks get the answer at once.
    if (onStdout && execution.stdout) onStdout(execution.stdout);
    if (onStderr && execution.stderr) onStderr(execution.stderr);
    if (onResult) for (const result of execution.results) onResult(result);
    if (onError && execution.error) onError(execution.error);
    return execution;
  }

  /** The `context.execute` stream; `undefined` when the server refused it before anything ran. */
  private async stream(code: string, options: RunCodeOptions): Promise<CodeExecution | undefined> {
    const socket = await openSocket(this.transport, socketPath(this.sandboxId(), 'exec'));
    socket.send(JSON.stringify(body({ type: 'context.execute', context: this.id, code, timeout: options.timeout })));
    return new Promise<CodeExecution | undefined>((resolve, reject) => {
      const stdout: string[] = [];
      const stderr: string[] = [];
      const results: Result[] = [];
      let error: ExecutionError | null = null;
      let settled = false;
      const finish = (outcome: CodeExecution | undefined, failure?: VibeBoxError) => {
        if (settled) return;
        settled = true;
        socket.close(1000);
        if (failure) reject(failure);
        else resolve(outcome);
      };
      const guard = (run: () => void) => {
        try {
          run();
        } catch (thrown) {
          settled = true;
          socket.close(1000);
          reject(thrown);
        }
      };
      socket.on('message', (data: unknown) => {
        const message = parseFrame(data);
        if (!message || settled) return;
        const kind = message.type;
        if (kind === 'stdout' || kind === 'stderr') {
          const text = typeof message.data === 'string' ? message.data : '';
          (kind === 'stdout' ? stdout : stderr).push(text);
          const callback = kind === 'stdout' ? options.onStdout : options.onStderr;
          if (callback) guard(() => callback(text));
        } else if (kind === 'result') {
          const result = new Result(message as Record<string, never>);
          results.push(result);
          if (options.onResult) guard(() => options.onResult!(result));
        } else if (kind === 'error' && isRecord(message.error)) {
          const refused = fromPayload(400, { error: message.error });
          const nothingYet = !stdout.length && !stderr.length && !results.length && !error;
          finish(undefined, refused instanceof ValidationError && nothingYet ? undefined : refused);
        } else if (kind === 'error') {
          error = { name: String(message.name ?? ''), value: String(message.value ?? ''), traceback: String(message.traceback ?? '') };
          if (options.onError) guard(() => options.onError!(error!));
        } else if (kind === 'context.done') {
          const raw = {
            results: [],
            stdout: stdout.join(''),
            stderr: stderr.join(''),
            error,
            truncated: message.truncated,
            executionCount: message.executionCount,
            durationMs: message.durationMs,
            executionId: message.executionId,
          };
          const execution = new CodeExecution(raw);
          execution.results.push(...results);
          finish(execution);
        }
      });
      socket.on('close', (closeCode: number, reason: Buffer) => {
        if (settled) return;
        finish(
          undefined,
          closeCode >= 4000
            ? closeError(closeCode, reason.toString())
            : new ConnectionError(`the context's stream closed (code ${closeCode}) before the code finished`),
        );
      });
      socket.on('error', () => undefined); // a 'close' follows every error
    });
  }

  /**
   * Reads the context's state again.
   * @example
   * ```ts
   * console.log((await ctx.refresh()).info.status);
   * ```
   */
  async refresh(): Promise<Context> {
    this.info = await this.transport.json<ContextInfo>({ method: 'GET', path: this.path() });
    return this;
  }

  /**
   * Interrupts the running code (KeyboardInterrupt in Python); the state is kept.
   * @example
   * ```ts
   * await ctx.interrupt();
   * ```
   */
  async interrupt(): Promise<Context> {
    this.info = await this.transport.json<ContextInfo>({ method: 'POST', path: this.path('interrupt'), timeout: LONG });
    return this;
  }

  /**
   * A fresh interpreter in the same context: variables and imports are gone.
   * @example
   * ```ts
   * await ctx.restart();
   * ```
   */
  async restart(): Promise<Context> {
    this.info = await this.transport.json<ContextInfo>({ method: 'POST', path: this.path('restart'), timeout: LONG });
    return this;
  }

  /**
   * Ends the interpreter and forgets the context.
   * @example
   * ```ts
   * await ctx.delete();
   * ```
   */
  async delete(): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path() });
    this.info = { ...this.info, status: 'dead' };
  }
}

/**
 * `sandbox.contexts`: create, list and get code contexts.
 * @example
 * ```ts
 * const ctx = await sandbox.contexts.create({ language: 'python' });
 * const all = await sandbox.contexts.list();
 * ```
 */
export class Contexts {
  /** @internal */
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
  ) {}

  /**
   * A new context (default `python`).
   * @example
   * ```ts
   * const ctx = await sandbox.contexts.create({ language: 'javascript' });
   * ```
   */
  async create(options: CreateContextOptions = {}): Promise<Context> {
    const json = body({ language: options.language ?? 'python', cwd: options.cwd });
    const path = sandboxPath(this.sandboxId(), 'contexts');
    const info = await this.transport.json<ContextInfo>({ method: 'POST', path, json, timeout: LONG, feature: FEATURE });
    return new Context(this.transport, this.sandboxId, info);
  }

  /**
   * The sandbox's contexts.
   * @example
   * ```ts
   * for (const ctx of await sandbox.contexts.list()) console.log(ctx.id, ctx.info.status);
   * ```
   */
  async list(): Promise<Context[]> {
    const path = sandboxPath(this.sandboxId(), 'contexts');
    const { contexts } = await this.transport.json<{ contexts: ContextInfo[] }>({ method: 'GET', path, feature: FEATURE });
    return contexts.map((info) => new Context(this.transport, this.sandboxId, info));
  }

  /**
   * One context by id.
   * @example
   * ```ts
   * const ctx = await sandbox.contexts.get('ctx_…');
   * ```
   */
  async get(contextId: string): Promise<Context> {
    const path = sandboxPath(this.sandboxId(), 'contexts', segment(contextId));
    return new Context(this.transport, this.sandboxId, await this.transport.json<ContextInfo>({ method: 'GET', path }));
  }
}
