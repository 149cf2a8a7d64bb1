/**
 * `@vibebox/sdk/claude-agent`: the orchestrator of the product spec's section 2.3 (`VibeBoxAgent`):
 * Claude tasks in sandboxes, map/reduce over many sandboxes, worker pools, orchestration and
 * streamed updates. The TypeScript twin of the Python SDK's `vibebox_sdk.agent` (docs/agents.md).
 *
 * Sandboxes the agent makes are ephemeral with a TTL (`sandboxTtl`, default 30 minutes): if the
 * process dies, the server removes them when the TTL runs out; otherwise they are destroyed as
 * soon as the work that made them ends. Every map, task, pool, orchestration and stream is
 * recorded on the server (`/api/v1/agent-runs`) for the dashboard, best effort.
 *
 * @example
 * ```ts
 * import { VibeBoxAgent } from '@vibebox/sdk/claude-agent';
 *
 * const agent = new VibeBoxAgent({ maxParallelSandboxes: 10 });
 * const outputs = await agent.map(['a', 'b'], async (item, sandbox) => (await sandbox.exec(`echo ${item}`)).stdout);
 * ```
 * @module
 */
import { VibeBox } from './client.js';
import { type Duration } from './durations.js';
import { CommandExitError, VibeBoxError } from './errors.js';
import { type ExecResult } from './results.js';
import { type Sandbox } from './sandbox.js';
import { type CreateOptions } from './types.js';

const API = '/api/v1';
/** The model a Claude task uses without `model` (or `ANTHROPIC_MODEL`): the Python SDK's default. */
const DEFAULT_MODEL = 'claude-sonnet-5-5';
const RESULT_LIMIT = 60 * 1024;
const OUTPUT_LIMIT = 30_000;
const STRATEGIES = ['cleanup-and-retry', 'retry', 'fail'] as const;

/**
 * What to do when an item or task fails: `cleanup-and-retry` (default: a fresh sandbox for the
 * next attempt), `retry` (the same sandbox), `fail` (no retries).
 * @example
 * ```ts
 * await agent.task('Build and test', { retries: 3, fallbackStrategy: 'cleanup-and-retry' });
 * ```
 */
export type FallbackStrategy = (typeof STRATEGIES)[number];

/**
 * Options of `new VibeBoxAgent()`.
 * @example
 * ```ts
 * const agent = new VibeBoxAgent({
 *   apiKey: process.env.VIBEBOX_API_KEY,
 *   claudeApiKey: process.env.ANTHROPIC_API_KEY,
 *   maxParallelSandboxes: 10,
 * });
 * ```
 */
export interface AgentOptions {
  /** Default: `VIBEBOX_API_KEY`. */
  apiKey?: string;
  /** Default: `VIBEBOX_API_URL`. */
  baseUrl?: string;
  /** The key Claude tasks use (default `ANTHROPIC_API_KEY`; none: each sandbox's VibeBox model gateway token). */
  claudeApiKey?: string;
  /** Default `ANTHROPIC_BASE_URL`, else Anthropic's API (with `claudeApiKey`) or the gateway's URL. */
  claudeBaseUrl?: string;
  /** Sandboxes alive at once across everything this agent runs (default 10). */
  maxParallelSandboxes?: number;
  /** Each sandbox's time to live, in case this process dies (default `30m`). */
  sandboxTtl?: Duration;
  /** Record runs on the server for the dashboard (default true). */
  record?: boolean;
  /** A client of your own (then `apiKey` and `baseUrl` are not used). */
  client?: VibeBox;
}

/**
 * Shared data for the functions a map runs (`agent.createContext`): the third argument of the
 * function, or a variable it closes over.
 * @example
 * ```ts
 * const context = agent.createContext({ sharedData: { apiKey: 'secret' } });
 * await agent.map(repos, async (repo, sandbox) => {
 *   await sandbox.env.set('API_KEY', String(await context.get('apiKey')));
 * }, { context });
 * ```
 */
export class AgentContext {
  private readonly data: Map<string, unknown>;

  constructor(sharedData: Record<string, unknown> = {}) {
    this.data = new Map(Object.entries(sharedData));
  }

  /**
   * A value (`undefined` if unset).
   * @example
   * ```ts
   * const apiKey = await context.get('apiKey');
   * ```
   */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    return this.data.get(key) as T | undefined;
  }

  /**
   * Sets a value every later call sees.
   * @example
   * ```ts
   * await context.set('found', 3);
   * ```
   */
  async set(key: string, value: unknown): Promise<void> {
    this.data.set(key, value);
  }

  /**
   * A copy of everything.
   * @example
   * ```ts
   * console.log(context.snapshot());
   * ```
   */
  snapshot(): Record<string, unknown> {
    return Object.fromEntries(this.data);
  }
}

/**
 * Options of the sandboxes an agent makes (what `vb.create` takes, less what the agent sets:
 * it makes them ephemeral with its TTL and tags them with the metadata `vibebox-agent: 1`).
 * @example
 * ```ts
 * await agent.map(items, fn, { template: 'python-3', metadata: { team: 'ml' } });
 * ```
 */
export type SandboxOptions = Omit<CreateOptions, 'template' | 'ephemeral' | 'timeout'>;

/**
 * Options of `agent.map()`.
 * @example
 * ```ts
 * await agent.map(repos, fn, { parallelism: 3, retries: 2, template: 'node-20', context });
 * ```
 */
export interface MapOptions<T = unknown> extends SandboxOptions {
  /** Sandboxes at once (default: the agent's `maxParallelSandboxes`). */
  parallelism?: number;
  /** Default `node-20`. */
  template?: string;
  /** Passed to the function as its third argument. */
  context?: AgentContext;
  /** More attempts for a failing item (default 0). */
  retries?: number;
  fallbackStrategy?: FallbackStrategy;
  /** Called after each failed attempt, while its sandbox is still alive. */
  onError?: (error: unknown, sandbox: Sandbox | undefined, attempt: number, item: T) => unknown;
  /** Put a failed item's `TaskFailedError` in its place instead of throwing (default false). */
  returnExceptions?: boolean;
  /** The run's name on the server. */
  name?: string;
  /** Called with every step of every item. */
  onUpdate?: (update: Update) => void;
}

/**
 * An item (or task) that failed after its retries.
 * @example
 * ```ts
 * try { await agent.map(items, fn); } catch (error) { if (error instanceof TaskFailedError) console.log(error.index, error.cause); }
 * ```
 */
export class TaskFailedError extends Error {
  override readonly name = 'TaskFailedError';

  constructor(
    /** The item's position. */
    readonly index: number,
    readonly item: unknown,
    readonly attempts: number,
    /** The last attempt's error. */
    override readonly cause: unknown,
  ) {
    super(`item ${index} failed after ${attempts} attempt(s): ${cause instanceof Error ? cause.message : String(cause)}`);
  }
}

/**
 * One step of `streamResults` (and of `map`'s `onUpdate`): a task `started`, printed `output`
 * (in `logs`), `completed` (with `result`) or `failed` (with `error`).
 * @example
 * ```ts
 * for await (const update of agent.streamResults({ tasks: ['npm test'] })) console.log(update.sandboxId, update.status, update.logs);
 * ```
 */
export interface Update {
  index: number;
  status: 'started' | 'output' | 'completed' | 'failed';
  sandboxId: string | undefined;
  logs: string;
  result?: unknown;
  error?: unknown;
}

/**
 * One tool call Claude made in a task's sandbox.
 * @example
 * ```ts
 * for (const call of result.toolCalls) console.log(call.name, call.isError);
 * ```
 */
export interface ToolCall {
  name: string;
  input: Record<string, unknown>;
  output: string;
  isError: boolean;
}

/**
 * A Claude task's outcome: `success`, the final message's content blocks (`result`) and its
 * `text`, the tool calls made in the sandbox, the whole `transcript`, token `usage`, `turns`.
 * @example
 * ```ts
 * const result = await (await agent.task('Analyze this repository', { git: url })).waitForCompletion();
 * console.log(result.success, result.text);
 * ```
 */
export interface TaskResult {
  success: boolean;
  result: ContentBlock[];
  text: string;
  toolCalls: ToolCall[];
  transcript: Message[];
  usage: { inputTokens: number; outputTokens: number };
  turns: number;
  stopReason: string | null;
  sandboxId: string;
}

/**
 * A content block of a Messages API answer (`text`, `tool_use`...).
 * @example
 * ```ts
 * const texts = result.result.filter((block) => block.type === 'text');
 * ```
 */
export interface ContentBlock {
  type: string;
  text?: string;
  id?: string;
  name?: string;
  input?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * A message of a Claude task's conversation.
 * @example
 * ```ts
 * console.log(result.transcript.map((message) => message.role));
 * ```
 */
export interface Message {
  role: 'user' | 'assistant';
  content: string | ContentBlock[];
}

/**
 * Options of `agent.task()`.
 * @example
 * ```ts
 * await agent.task('Build and test', {
 *   git: 'https://github.com/user/project.git',
 *   retries: 3,
 *   fallbackStrategy: 'cleanup-and-retry',
 *   onError: async (error, sandbox) => { await sandbox?.exec('cat /repo/build.log'); },
 * });
 * ```
 */
export interface TaskOptions extends SandboxOptions {
  /** Default `node-20-claude-code`. */
  template?: string;
  /** Default `ANTHROPIC_MODEL`, else the SDK's default model. */
  model?: string;
  /** Model turns at most (default 20). */
  maxTurns?: number;
  /** Per answer (default 4096). */
  maxTokens?: number;
  retries?: number;
  fallbackStrategy?: FallbackStrategy;
  onError?: (error: unknown, sandbox: Sandbox | undefined, attempt: number) => unknown;
  /** `false`: keep the sandbox after the task (default: destroyed). */
  ephemeral?: boolean;
}

/**
 * Options of `agent.orchestrate()`.
 * @example
 * ```ts
 * const orchestrator = agent.orchestrate({ maxWorkers: 5, template: 'node-20-claude-code' });
 * ```
 */
export interface OrchestrateOptions extends SandboxOptions {
  /** Default 5. */
  maxWorkers?: number;
  /** Default `node-20`. */
  template?: string;
  retries?: number;
  /** Claude tasks' model. */
  model?: string;
}

/**
 * One task of `orchestrator.executeAll()`: a shell command, a function of a sandbox, or, as in
 * the spec, `{ repo, task }`: the repository cloned into /repo and Claude given `task` there
 * (`{ repo, command }` runs a command in /repo instead).
 * @example
 * ```ts
 * const tasks: OrchestratedTask[] = [{ repo: 'https://github.com/user/repo1.git', task: 'Run tests' }, 'echo hi'];
 * ```
 */
export type OrchestratedTask =
  | string
  | ((sandbox: Sandbox) => unknown)
  | { repo?: string; task?: string; command?: string; branch?: string };

/**
 * Options of `agent.createPool()`.
 * @example
 * ```ts
 * const pool = await agent.createPool({ workers: 5, template: 'node-20', persistent: true });
 * ```
 */
export interface PoolOptions extends SandboxOptions {
  /** Default 5. */
  workers?: number;
  /** Default `node-20`. */
  template?: string;
  /** Each worker keeps its sandbox across jobs, made at start (default true); false: a fresh one per job. */
  persistent?: boolean;
}

/**
 * Options of `agent.streamResults()`.
 * @example
 * ```ts
 * agent.streamResults({ tasks: ['npm test', (sandbox) => sandbox.id], parallelism: 3 });
 * ```
 */
export interface StreamOptions extends SandboxOptions {
  /** Shell commands (their output is streamed) or functions of a sandbox. */
  tasks: Array<string | ((sandbox: Sandbox) => unknown)>;
  /** Default 3. */
  parallelism?: number;
  /** Default `node-20`. */
  template?: string;
}

// ---- the server's record of a run (best effort) ----

function summarize(value: unknown): unknown {
  let text: string;
  try {
    text = JSON.stringify(value, (_key, item: unknown) => (typeof item === 'bigint' ? String(item) : item)) ?? 'null';
  } catch {
    text = JSON.stringify(String(value));
  }
  return text.length <= RESULT_LIMIT ? JSON.parse(text) : { truncated: true, preview: text.slice(0, 2000) };
}

/** A URL's user and password, never written to a run's record. */
const CREDENTIALS = /:\/\/[^/@\s]*@/g;

function label(item: unknown): string {
  return rawLabel(item).replace(CREDENTIALS, '://').slice(0, 500);
}

function rawLabel(item: unknown): string {
  if (typeof item === 'function') return item.name || 'task';
  if (typeof item === 'string') return item;
  if (item && typeof item === 'object' && ('repo' in item || 'task' in item || 'command' in item)) {
    const task = item as { repo?: string; task?: string; command?: string };
    return [task.repo, task.task ?? task.command].filter(Boolean).join(': ');
  }
  try {
    return JSON.stringify(item) ?? String(item);
  } catch {
    return String(item);
  }
}

class Recorder {
  runId: string | undefined;
  private taskIds: string[] = [];
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly vb: VibeBox,
    private enabled: boolean,
  ) {}

  private async call<T>(method: 'POST' | 'PATCH', path: string, json: unknown): Promise<T | undefined> {
    if (!this.enabled) return undefined;
    try {
      return await this.vb.transport.json<T>({ method, path: `${API}/agent-runs${path}`, json, feature: 'agent runs' });
    } catch (error) {
      if (!(error instanceof VibeBoxError)) throw error;
      this.enabled = false; // a server without the endpoint, or a failed call, never stops the work
      return undefined;
    }
  }

  /** Calls in the order they were made: a task's `completed` never overtakes its `running`. */
  private queue(work: () => Promise<unknown>): Promise<void> {
    this.chain = this.chain.then(work, work);
    return this.chain.then(() => undefined);
  }

  async start(name: string, kind: string, parallelism: number | null, template: string | null, tasks: string[]): Promise<void> {
    const run = await this.call<{ id: string; tasks: Array<{ id: string }> }>('POST', '', {
      name: name.slice(0, 200) || kind,
      kind,
      parallelism,
      template,
      tasks: tasks.map((task) => ({ name: task.slice(0, 500) })),
    });
    if (run) {
      this.runId = run.id;
      this.taskIds = run.tasks.map((task) => task.id);
    }
  }

  add(names: string[]): Promise<void> {
    return this.queue(async () => {
      if (!this.runId) return;
      const answer = await this.call<{ tasks: Array<{ id: string }> }>('POST', `/${this.runId}/tasks`, {
        tasks: names.map((name) => ({ name: name.slice(0, 500) })),
      });
      if (answer) this.taskIds.push(...answer.tasks.map((task) => task.id));
    });
  }

  task(index: number, fields: { status: string; sandboxId?: string; attempts?: number; result?: unknown; error?: unknown }): Promise<void> {
    return this.queue(async () => {
      const taskId = this.taskIds[index];
      if (!this.runId || !taskId) return;
      const body: Record<string, unknown> = { status: fields.status };
      if (fields.sandboxId !== undefined) body.sandboxId = fields.sandboxId;
      if (fields.attempts !== undefined) body.attempts = fields.attempts;
      if ('result' in fields) body.result = summarize(fields.result);
      if (fields.error !== undefined) body.error = describe(fields.error).slice(0, 10_000);
      await this.call('PATCH', `/${this.runId}/tasks/${taskId}`, body);
    });
  }

  finish(status: 'completed' | 'failed' | 'cancelled'): Promise<void> {
    return this.queue(async () => {
      if (this.runId) await this.call('PATCH', `/${this.runId}`, { status });
    });
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

// ---- a counting semaphore: the agent's bound on live sandboxes ----

class Semaphore {
  private waiting: Array<() => void> = [];

  constructor(private free: number) {}

  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free -= 1;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.free += 1;
  }
}

/** One worker's sandbox: made when first needed, replaced after a failure, destroyed at the end. */
class Slot {
  sandbox: Sandbox | undefined;

  constructor(
    private readonly agent: VibeBoxAgent,
    private readonly template: string,
    private readonly options: SandboxOptions,
  ) {}

  async get(): Promise<Sandbox> {
    this.sandbox ??= await this.agent.makeSandbox(this.template, this.options);
    return this.sandbox;
  }

  async close(): Promise<void> {
    const sandbox = this.sandbox;
    this.sandbox = undefined;
    if (sandbox) await this.agent.dropSandbox(sandbox);
  }
}

class Failed {
  constructor(readonly error: TaskFailedError) {}
}

/**
 * Runs work across many sandboxes: Claude tasks, map/reduce, pools, orchestration, streams.
 *
 * @example
 * ```ts
 * import { VibeBoxAgent } from '@vibebox/sdk/claude-agent';
 *
 * const agent = new VibeBoxAgent({ apiKey: process.env.VIBEBOX_API_KEY, maxParallelSandboxes: 10 });
 * const task = await agent.task('Analyze this repository', { git: 'https://github.com/user/project.git' });
 * await task.waitForCompletion();
 * console.log(task.result?.text);
 * ```
 */
export class VibeBoxAgent {
  /** The VibeBox client the agent works through. */
  readonly vb: VibeBox;
  readonly maxParallelSandboxes: number;
  /** The server's record of the latest map, task, pool or orchestration this agent started. */
  lastRunId: string | undefined;
  private readonly claudeApiKey: string | undefined;
  private readonly claudeBaseUrl: string | undefined;
  private readonly sandboxTtl: Duration;
  /** Whether runs are recorded on the server. */
  readonly record: boolean;
  private readonly slots: Semaphore;
  private readonly activeSandboxes = new Map<string, Sandbox>();

  constructor(options: AgentOptions = {}) {
    this.vb = options.client ?? new VibeBox({ ...(options.apiKey ? { apiKey: options.apiKey } : {}), ...(options.baseUrl ? { baseUrl: options.baseUrl } : {}) });
    this.claudeApiKey = options.claudeApiKey;
    this.claudeBaseUrl = options.claudeBaseUrl;
    this.maxParallelSandboxes = options.maxParallelSandboxes || 10;
    this.sandboxTtl = options.sandboxTtl ?? '30m';
    this.record = options.record ?? true;
    this.slots = new Semaphore(this.maxParallelSandboxes);
  }

  // ---- sandboxes ----

  /**
   * A sandbox of the agent (ephemeral with the agent's TTL, counted against `maxParallelSandboxes`);
   * `dropSandbox` destroys it. The agent's own methods use these two.
   * @example
   * ```ts
   * const sandbox = await agent.makeSandbox('node-20');
   * try { await sandbox.exec('node -v'); } finally { await agent.dropSandbox(sandbox); }
   * ```
   */
  async makeSandbox(template: string, options: SandboxOptions = {}): Promise<Sandbox> {
    await this.slots.acquire();
    try {
      const metadata = { 'vibebox-agent': '1', ...(options.metadata ?? {}) };
      const sandbox = await this.vb.create({ ...options, template, ephemeral: true, timeout: this.sandboxTtl, metadata });
      this.activeSandboxes.set(sandbox.id, sandbox);
      return sandbox;
    } catch (error) {
      this.slots.release();
      throw error;
    }
  }

  /**
   * Destroys a sandbox `makeSandbox` made (a sandbox already gone is fine).
   * @example
   * ```ts
   * await agent.dropSandbox(sandbox);
   * ```
   */
  async dropSandbox(sandbox: Sandbox): Promise<void> {
    if (!this.activeSandboxes.delete(sandbox.id)) return;
    try {
      await sandbox.destroy();
    } catch (error) {
      if (!(error instanceof VibeBoxError)) throw error; // its TTL removes it
    } finally {
      this.slots.release();
    }
  }

  /**
   * Hands a sandbox of the agent over to you: the agent no longer destroys it (its TTL still
   * applies; `sandbox.setTimeout(null)` lifts it) and it no longer counts against the bound.
   * @example
   * ```ts
   * agent.keep(sandbox);
   * ```
   */
  keep(sandbox: Sandbox): void {
    if (this.activeSandboxes.delete(sandbox.id)) this.slots.release();
  }

  /**
   * Ids of the sandboxes this agent has alive now.
   * @example
   * ```ts
   * console.log(agent.alive().length);
   * ```
   */
  alive(): string[] {
    return [...this.activeSandboxes.keys()];
  }

  /**
   * Destroys every sandbox this agent still has.
   * @example
   * ```ts
   * process.on('SIGINT', () => void agent.cleanup().then(() => process.exit(130)));
   * ```
   */
  async cleanup(): Promise<void> {
    await Promise.all([...this.activeSandboxes.values()].map((sandbox) => this.dropSandbox(sandbox)));
  }

  // ---- run records ----

  /**
   * One recorded run with its tasks (default: the last one this agent started).
   * @example
   * ```ts
   * const run = await agent.run();
   * console.log(run.status, run.counts);
   * ```
   */
  run(runId?: string): Promise<Record<string, any>> {
    return this.vb.transport.json({ method: 'GET', path: `${API}/agent-runs/${runId ?? this.lastRunId ?? ''}`, feature: 'agent runs' });
  }

  // ---- map / reduce ----

  /**
   * Shared data for the functions of a map.
   * @example
   * ```ts
   * const context = agent.createContext({ sharedData: { apiKey: 'secret', baseUrl: 'https://api.example.com' } });
   * ```
   */
  createContext(options: { sharedData?: Record<string, unknown> } = {}): AgentContext {
    return new AgentContext(options.sharedData);
  }

  /**
   * `fn(item, sandbox, context)` for every item, at most `parallelism` sandboxes at once, each
   * reused for the next item; results in input order. A failing item is retried `retries` times
   * (in a fresh sandbox under `cleanup-and-retry`, the default; its sandbox is never reused).
   * After the retries a `TaskFailedError` is thrown once all items are done, unless
   * `returnExceptions` puts it in the item's place.
   * @example
   * ```ts
   * const analyses = await agent.map(repos, async (repo, sandbox) => {
   *   await sandbox.git.clone(repo);
   *   const result = await sandbox.run('npm test', { cwd: '/repo', check: false });
   *   return { repo, passed: result.exitCode === 0 };
   * }, { parallelism: 3 });
   * ```
   */
  async map<T, R>(
    items: T[],
    fn: (item: T, sandbox: Sandbox, context: AgentContext | undefined) => Promise<R> | R,
    options: MapOptions<T> & { kind?: string } = {},
  ): Promise<R[]> {
    const {
      parallelism = this.maxParallelSandboxes,
      template = 'node-20',
      context,
      retries = 0,
      fallbackStrategy = 'cleanup-and-retry',
      onError,
      returnExceptions = false,
      name,
      onUpdate,
      kind = 'map',
      ...sandboxOptions
    } = options;
    if (!STRATEGIES.includes(fallbackStrategy)) throw new RangeError(`fallbackStrategy is one of ${STRATEGIES.join(', ')}`);
    if (items.length === 0) return [];
    const workers = Math.max(1, Math.min(parallelism, items.length, this.maxParallelSandboxes));
    const recorder = new Recorder(this.vb, this.record);
    await recorder.start(name ?? `${kind} of ${items.length}`, kind, workers, template, items.map(label));
    this.lastRunId = recorder.runId ?? this.lastRunId;
    const attempts = fallbackStrategy === 'fail' ? 1 : retries + 1;
    const notify = onUpdate ?? (() => undefined);
    const results: Array<R | Failed> = new Array(items.length);
    let next = 0;
    let crashed: unknown;

    const runItem = async (slot: Slot, index: number): Promise<R | Failed> => {
      const item = items[index] as T;
      let error: unknown;
      let lastSandbox: string | undefined;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        let sandbox: Sandbox;
        try {
          sandbox = await slot.get();
        } catch (failure) {
          error = failure;
          continue;
        }
        lastSandbox = sandbox.id;
        await recorder.task(index, { status: 'running', sandboxId: sandbox.id, attempts: attempt });
        notify({ index, status: 'started', sandboxId: sandbox.id, logs: '' });
        try {
          const value = await fn(item, sandbox, context);
          void recorder.task(index, { status: 'completed', result: value });
          notify({ index, status: 'completed', sandboxId: sandbox.id, logs: '', result: value });
          return value;
        } catch (failure) {
          error = failure;
          if (onError) await onError(failure, sandbox, attempt, item); // before its sandbox goes
          if (fallbackStrategy !== 'retry') await slot.close(); // a failed item's sandbox is never reused
          if (attempt < attempts) void recorder.task(index, { status: 'pending', error: failure });
        }
      }
      const failed = new TaskFailedError(index, item, attempts, error);
      void recorder.task(index, { status: 'failed', error });
      notify({ index, status: 'failed', sandboxId: lastSandbox, logs: '', error: failed });
      if (fallbackStrategy === 'retry') await slot.close();
      return new Failed(failed);
    };

    const worker = async (): Promise<void> => {
      const slot = new Slot(this, template, sandboxOptions);
      try {
        while (crashed === undefined && next < items.length) {
          const index = next++;
          results[index] = await runItem(slot, index);
        }
      } catch (error) {
        crashed ??= error; // onError or onUpdate threw: the map fails with it
      } finally {
        await slot.close();
      }
    };

    await Promise.all(Array.from({ length: workers }, worker));
    const failures = results.filter((result): result is Failed => result instanceof Failed).map((f) => f.error);
    await recorder.finish(crashed !== undefined ? 'cancelled' : failures.length ? 'failed' : 'completed');
    if (crashed !== undefined) throw crashed;
    if (failures.length && !returnExceptions) throw failures[0];
    return results.map((result) => (result instanceof Failed ? (result.error as unknown as R) : result));
  }

  /**
   * `fn(accumulated, result)` over the results, starting from `initial`.
   * @example
   * ```ts
   * const summary = agent.reduce(analyses, (acc, result) => {
   *   acc.total++;
   *   if (result.passed) acc.passed++;
   *   return acc;
   * }, { total: 0, passed: 0 });
   * ```
   */
  reduce<R, A>(results: R[], fn: (accumulated: A, result: R, index: number) => A, initial: A): A {
    return results.reduce(fn, initial);
  }

  // ---- streams, orchestration, pools ----

  /**
   * Runs tasks like `map` and yields `Update`s as they happen: started, output (a command's
   * printed text, in `logs`), completed, failed. A failed task does not end the stream.
   * @example
   * ```ts
   * for await (const update of agent.streamResults({ tasks: ['npm test', 'npm run lint'], parallelism: 2 })) {
   *   console.log(`Sandbox ${update.sandboxId}: ${update.status}`);
   *   console.log(update.logs);
   * }
   * ```
   */
  async *streamResults(options: StreamOptions): AsyncGenerator<Update, void, undefined> {
    const { tasks, parallelism = 3, template = 'node-20', ...sandboxOptions } = options;
    const queue: Update[] = [];
    let wake: (() => void) | undefined;
    let finished = false;
    const push = (update: Update): void => {
      queue.push(update);
      wake?.();
    };
    const numbered = tasks.map((task, index) => ({ index, task }));
    const job = async ({ index, task }: (typeof numbered)[number], sandbox: Sandbox): Promise<unknown> => {
      if (typeof task !== 'string') return task(sandbox);
      const stream = await sandbox.exec(task, { stream: true });
      stream.onData((data) => push({ index, status: 'output', sandboxId: sandbox.id, logs: data }));
      const result = await stream.wait();
      if (result.exitCode !== 0) throw new CommandExitError(result);
      return result;
    };
    const work = this.map(numbered, job, {
      ...sandboxOptions,
      parallelism,
      template,
      returnExceptions: true,
      onUpdate: push,
      kind: 'stream',
    })
      .catch((error: unknown) => push({ index: -1, status: 'failed', sandboxId: undefined, logs: '', error }))
      .finally(() => {
        finished = true;
        wake?.();
      });
    for (;;) {
      const update = queue.shift();
      if (update) {
        yield update;
        continue;
      }
      if (finished) break;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
    await work;
  }

  /**
   * An orchestrator: `executeAll(tasks)` spreads tasks over up to `maxWorkers` sandboxes.
   * @example
   * ```ts
   * const orchestrator = agent.orchestrate({ maxWorkers: 5, template: 'node-20-claude-code' });
   * const results = await orchestrator.executeAll([{ repo: 'https://github.com/user/repo1.git', task: 'Run tests' }]);
   * ```
   */
  orchestrate(options: OrchestrateOptions = {}): Orchestrator {
    return new Orchestrator(this, options);
  }

  /**
   * A worker pool for long-running work (started: with `persistent`, its sandboxes exist).
   * @example
   * ```ts
   * const pool = await agent.createPool({ workers: 5, template: 'node-20', persistent: true });
   * for (const repo of repositories) pool.submit(async (sandbox) => { await sandbox.git.clone(repo); });
   * await pool.waitForCompletion();
   * await pool.shutdown();
   * ```
   */
  async createPool(options: PoolOptions = {}): Promise<WorkerPool> {
    const pool = new WorkerPool(this, options);
    await pool.initialize();
    return pool;
  }

  /**
   * Alias of `createPool`.
   * @example
   * ```ts
   * const pool = await agent.pool({ workers: 2 });
   * const version = await pool.execute((sandbox) => sandbox.exec('node -v'));
   * ```
   */
  pool(options: PoolOptions = {}): Promise<WorkerPool> {
    return this.createPool(options);
  }

  // ---- Claude tasks ----

  /**
   * Starts Claude on `prompt` in a fresh sandbox (with `git` cloned into /repo) and answers at
   * once: `await task.waitForCompletion()` answers the `TaskResult` (also in `task.result`).
   * Claude works through tools run in the sandbox (run_command, execute_code, read_file,
   * write_file, list_files), with the Messages API: `claudeApiKey`, else `ANTHROPIC_API_KEY`,
   * else the sandbox's own VibeBox model gateway token (VibeBox holds the real key).
   * @example
   * ```ts
   * const task = await agent.task('Analyze this repository', {
   *   git: 'https://github.com/user/project.git',
   *   template: 'node-20-claude-code',
   * });
   * await task.waitForCompletion();
   * console.log(task.result);
   * ```
   */
  async task(prompt: string, options: TaskOptions = {}): Promise<AgentTask> {
    return new AgentTask(this, prompt, options);
  }

  /** @internal The tool-use loop of a task in `sandbox`. */
  async claudeRun(sandbox: Sandbox, prompt: string, options: { model?: string; maxTurns?: number; maxTokens?: number; repo?: boolean }): Promise<TaskResult> {
    const client = await this.claudeClient(sandbox);
    const model = options.model ?? process.env.ANTHROPIC_MODEL ?? DEFAULT_MODEL;
    const system = `You work in an isolated Linux sandbox through the tools given. Files live under /workspace${
      options.repo ? ' (the repository is cloned at /repo)' : ''
    }. Run commands to check your work. Answer with a short summary when done.`;
    const messages: Message[] = [{ role: 'user', content: prompt }];
    const toolCalls: ToolCall[] = [];
    const usage = { inputTokens: 0, outputTokens: 0 };
    let turns = 0;
    let stopReason: string | null = null;
    let last: ContentBlock[] = [];
    for (; turns < (options.maxTurns ?? 20); ) {
      const answer = await client({ model, max_tokens: options.maxTokens ?? 4096, system, tools: TOOLS, messages });
      turns += 1;
      stopReason = answer.stop_reason ?? null;
      usage.inputTokens += answer.usage?.input_tokens ?? 0;
      usage.outputTokens += answer.usage?.output_tokens ?? 0;
      last = answer.content;
      messages.push({ role: 'assistant', content: answer.content });
      const uses = answer.content.filter((block) => block.type === 'tool_use');
      if (stopReason !== 'tool_use' || uses.length === 0) break;
      const results: ContentBlock[] = [];
      for (const use of uses) {
        const input = use.input ?? {};
        let output: string;
        let isError = false;
        try {
          output = await runTool(sandbox, use.name ?? '', input);
        } catch (error) {
          output = `error: ${describe(error)}`; // the model sees the failure and can react
          isError = true;
        }
        toolCalls.push({ name: use.name ?? '', input, output, isError });
        results.push({ type: 'tool_result', tool_use_id: use.id, content: output, is_error: isError });
      }
      messages.push({ role: 'user', content: results });
    }
    const text = last.filter((block) => block.type === 'text').map((block) => block.text ?? '').join('');
    return { success: true, result: last, text, toolCalls, transcript: messages, usage, turns, stopReason, sandboxId: sandbox.id };
  }

  private async claudeClient(sandbox: Sandbox): Promise<(body: Record<string, unknown>) => Promise<MessagesAnswer>> {
    let key = this.claudeApiKey ?? process.env.ANTHROPIC_API_KEY;
    let baseUrl = this.claudeBaseUrl ?? process.env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com';
    if (!key) {
      // The sandbox's own gateway token: the model gateway holds the real key and meters the calls.
      await sandbox.claude.enable();
      const printed = (await sandbox.exec('printenv ANTHROPIC_API_KEY ANTHROPIC_BASE_URL')).stdout.split(/\s+/).filter(Boolean);
      [key = '', baseUrl = baseUrl] = printed;
    }
    const url = `${baseUrl.replace(/\/+$/, '')}/v1/messages`;
    return async (body) => {
      for (let attempt = 0; ; attempt++) {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-api-key': key, 'anthropic-version': '2023-06-01' },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(600_000),
        });
        if ((response.status === 429 || response.status >= 500) && attempt < 2) {
          await new Promise((resolve) => setTimeout(resolve, 1000 * 2 ** attempt));
          continue;
        }
        const answer = (await response.json().catch(() => ({}))) as MessagesAnswer & { error?: { message?: string } };
        if (!response.ok) throw new Error(`Messages API ${response.status}: ${answer.error?.message ?? response.statusText}`);
        return answer;
      }
    };
  }
}

interface MessagesAnswer {
  content: ContentBlock[];
  stop_reason?: string;
  usage?: { input_tokens?: number; output_tokens?: number };
}

const TOOLS = [
  {
    name: 'run_command',
    description: 'Run a shell command (bash) in the sandbox; returns stdout, stderr and the exit code.',
    input_schema: {
      type: 'object',
      properties: {
        command: { type: 'string', description: 'The command line.' },
        cwd: { type: 'string', description: 'Working directory (default /workspace).' },
        timeout: { type: 'number', description: 'Seconds before it is killed (default 60).' },
      },
      required: ['command'],
    },
  },
  {
    name: 'execute_code',
    description: 'Run a code snippet (javascript, typescript, python or shell); returns output and the value of a final `return`.',
    input_schema: { type: 'object', properties: { code: { type: 'string' }, language: { type: 'string' } }, required: ['code'] },
  },
  {
    name: 'read_file',
    description: 'Read a text file from the sandbox (relative paths start at /workspace).',
    input_schema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'write_file',
    description: 'Write a text file in the sandbox (parents are created).',
    input_schema: { type: 'object', properties: { path: { type: 'string' }, content: { type: 'string' } }, required: ['path', 'content'] },
  },
  {
    name: 'list_files',
    description: 'List a directory of the sandbox.',
    input_schema: { type: 'object', properties: { path: { type: 'string' } } },
  },
];

function clip(text: string): string {
  return text.length <= OUTPUT_LIMIT ? text : `${text.slice(0, OUTPUT_LIMIT)}\n[... ${text.length - OUTPUT_LIMIT} more]`;
}

function absolute(path: string): string {
  return path.startsWith('/') ? path : `/workspace/${path}`;
}

function renderExec(result: ExecResult): string {
  const answer: Record<string, unknown> = { exit_code: result.exitCode, stdout: clip(result.stdout), stderr: clip(result.stderr) };
  if (result.returnValue !== undefined && result.returnValue !== null) answer.return_value = result.returnValue;
  return JSON.stringify(answer);
}

async function runTool(sandbox: Sandbox, name: string, input: Record<string, unknown>): Promise<string> {
  const text = (key: string): string | undefined => (typeof input[key] === 'string' ? (input[key] as string) : undefined);
  switch (name) {
    case 'run_command': {
      const timeout = typeof input.timeout === 'number' ? input.timeout : undefined;
      const cwd = text('cwd');
      return renderExec(await sandbox.exec(text('command') ?? '', { ...(cwd ? { cwd } : {}), ...(timeout ? { timeout } : {}) }));
    }
    case 'execute_code': {
      const language = text('language');
      return renderExec(await sandbox.execute(text('code') ?? '', language ? { language } : {}));
    }
    case 'read_file':
      return clip(await sandbox.files.readText(absolute(text('path') ?? '')));
    case 'write_file': {
      const path = absolute(text('path') ?? '');
      await sandbox.files.write(path, text('content') ?? '');
      return `wrote ${path}`;
    }
    case 'list_files': {
      const entries = await sandbox.files.list(absolute(text('path') ?? '/workspace'));
      return entries.map((entry) => entry.name + (entry.isDir ? '/' : '')).join('\n');
    }
    default:
      throw new Error(`unknown tool ${name}`);
  }
}

/**
 * A Claude task running in the background (`agent.task`): `waitForCompletion()`, `status`,
 * `result`, `error`, `sandboxId`.
 * @example
 * ```ts
 * const task = await agent.task('Add tests', { git: url });
 * const result = await task.waitForCompletion();
 * console.log(task.status, result.text);
 * ```
 */
export class AgentTask {
  status: 'running' | 'completed' | 'failed' = 'running';
  result: TaskResult | undefined;
  error: unknown;
  /** The sandbox of the latest attempt. */
  sandboxId: string | undefined;
  private readonly done: Promise<void>;

  constructor(agent: VibeBoxAgent, readonly prompt: string, options: TaskOptions) {
    const {
      template = 'node-20-claude-code',
      model,
      maxTurns,
      maxTokens,
      retries = 0,
      fallbackStrategy = 'cleanup-and-retry',
      onError,
      ephemeral,
      ...sandboxOptions
    } = options;
    const repo = sandboxOptions.git !== undefined;
    const run = async (_prompt: string, sandbox: Sandbox): Promise<TaskResult> => {
      this.sandboxId = sandbox.id;
      const result = await agent.claudeRun(sandbox, prompt, { ...(model ? { model } : {}), ...(maxTurns ? { maxTurns } : {}), ...(maxTokens ? { maxTokens } : {}), repo });
      if (ephemeral === false) agent.keep(sandbox);
      return result;
    };
    this.done = agent
      .map([prompt], run, {
        ...sandboxOptions,
        parallelism: 1,
        template,
        retries,
        fallbackStrategy,
        ...(onError ? { onError: (error: unknown, sandbox: Sandbox | undefined, attempt: number) => onError(error, sandbox, attempt) } : {}),
        kind: 'task',
        name: prompt.slice(0, 200),
      })
      .then(
        ([result]) => {
          this.result = result;
          this.status = 'completed';
        },
        (error: unknown) => {
          this.error = error;
          this.status = 'failed';
        },
      );
  }

  /**
   * The result, once the task is done; throws the task's error (`TaskFailedError`) if it failed.
   * @example
   * ```ts
   * const result = await task.waitForCompletion();
   * ```
   */
  async waitForCompletion(): Promise<TaskResult> {
    await this.done;
    if (this.status === 'failed') throw this.error;
    return this.result as TaskResult;
  }
}

/**
 * `agent.orchestrate()`: runs shell commands, functions of a sandbox, or `{ repo, task }` Claude
 * tasks across up to `maxWorkers` sandboxes; results in task order.
 * @example
 * ```ts
 * const results = await agent.orchestrate({ maxWorkers: 5 }).executeAll([
 *   { repo: 'https://github.com/user/repo1.git', task: 'Run tests' },
 *   { repo: 'https://github.com/user/repo2.git', command: 'npm test' },
 * ]);
 * ```
 */
export class Orchestrator {
  constructor(
    private readonly agent: VibeBoxAgent,
    private readonly options: OrchestrateOptions,
  ) {}

  /**
   * Runs every task (each in a sandbox of its own, up to `maxWorkers` at once): a string is a
   * shell command (its `ExecResult`), a function gets the sandbox (its value), `{ repo, task }`
   * clones `repo` into /repo and gives Claude `task` there (its `TaskResult`), `{ repo, command }`
   * runs `command` in /repo (its `ExecResult`; a non-zero exit fails the task).
   * @example
   * ```ts
   * const results = await orchestrator.executeAll(tasks);
   * ```
   */
  async executeAll(tasks: OrchestratedTask[], options: MapOptions<OrchestratedTask> = {}): Promise<unknown[]> {
    const { maxWorkers = 5, template = 'node-20', model, ...rest } = this.options;
    const job = async (task: OrchestratedTask, sandbox: Sandbox): Promise<unknown> => {
      if (typeof task === 'string') return sandbox.exec(task);
      if (typeof task === 'function') return task(sandbox);
      if (task.repo) await sandbox.git.clone(task.repo, { path: '/repo', ...(task.branch ? { branch: task.branch } : {}) });
      if (task.task) return this.agent.claudeRun(sandbox, task.task, { ...(model ? { model } : {}), repo: Boolean(task.repo) });
      if (task.command) return sandbox.run(task.command, { cwd: task.repo ? '/repo' : '/workspace', language: 'shell' });
      throw new TypeError('an orchestrated task is a command, a function, or { repo, task } / { repo, command }');
    };
    return this.agent.map(tasks, job, { ...rest, ...options, parallelism: maxWorkers, template, kind: 'orchestrate' });
  }
}

interface Job {
  index: number;
  fn: (sandbox: Sandbox) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * `agent.createPool()`: `submit(fn)` runs `fn(sandbox)` on a free worker and answers a promise of
 * its value; `execute(fn)` is the same; `waitForCompletion()` answers every result so far, in
 * submit order; `acquire()` / `release()` lend a worker's sandbox out and take it back;
 * `shutdown()` destroys the workers' sandboxes. A failed job's sandbox is replaced.
 * @example
 * ```ts
 * const pool = await agent.createPool({ workers: 5, template: 'node-20', persistent: true });
 * pool.submit(async (sandbox) => sandbox.run('npm test', { cwd: '/repo' }));
 * await pool.waitForCompletion();
 * await pool.shutdown();
 * ```
 */
export class WorkerPool {
  private readonly slots: Slot[];
  private readonly idle: Slot[] = [];
  private readonly jobs: Job[] = [];
  private readonly results: Array<Promise<unknown>> = [];
  private readonly lent = new Map<string, Slot>();
  private readonly waiters: Array<(slot: Slot) => void> = [];
  private readonly recorder: Recorder;
  private readonly persistent: boolean;
  private readonly template: string;
  private closed = false;
  private failed = false;

  constructor(
    private readonly agent: VibeBoxAgent,
    options: PoolOptions = {},
  ) {
    const { workers = 5, template = 'node-20', persistent = true, ...sandboxOptions } = options;
    this.persistent = persistent;
    this.template = template;
    this.slots = Array.from({ length: Math.max(1, Math.min(workers, agent.maxParallelSandboxes)) }, () => new Slot(agent, template, sandboxOptions));
    this.recorder = new Recorder(agent.vb, agent.record);
  }

  /**
   * Records the pool and, when persistent, makes its workers' sandboxes (`createPool` calls it).
   * @example
   * ```ts
   * const pool = new WorkerPool(agent, { workers: 2 });
   * await pool.initialize();
   * ```
   */
  async initialize(): Promise<void> {
    await this.recorder.start(`pool of ${this.slots.length}`, 'pool', this.slots.length, this.template, []);
    this.agent.lastRunId = this.recorder.runId ?? this.agent.lastRunId;
    if (this.persistent) await Promise.all(this.slots.map((slot) => slot.get()));
    this.idle.push(...this.slots);
  }

  /**
   * The ids of the workers' sandboxes now.
   * @example
   * ```ts
   * console.log(pool.sandboxIds);
   * ```
   */
  get sandboxIds(): string[] {
    return this.slots.flatMap((slot) => (slot.sandbox ? [slot.sandbox.id] : []));
  }

  /**
   * Queues `fn(sandbox)` for the next free worker; answers a promise of its value.
   * @example
   * ```ts
   * const output = pool.submit(async (sandbox) => (await sandbox.exec('echo hi')).stdout);
   * ```
   */
  submit<R>(fn: (sandbox: Sandbox) => Promise<R> | R): Promise<R> {
    if (this.closed) throw new Error('the pool is shut down');
    const index = this.results.length;
    void this.recorder.add([label(fn)]);
    const result = new Promise<R>((resolve, reject) => {
      this.jobs.push({ index, fn, resolve: resolve as (value: unknown) => void, reject });
    });
    result.catch(() => undefined); // waitForCompletion reports it
    this.results.push(result);
    this.dispatch();
    return result;
  }

  /**
   * Runs `fn(sandbox)` on the next free worker and answers its value (`submit`, awaited).
   * @example
   * ```ts
   * const node = await pool.execute((sandbox) => sandbox.exec('node -v'));
   * ```
   */
  execute<R>(fn: (sandbox: Sandbox) => Promise<R> | R): Promise<R> {
    return this.submit(fn);
  }

  /**
   * Lends out a free worker's sandbox (waiting for one); give it back with `release`.
   * @example
   * ```ts
   * const sandbox = await pool.acquire();
   * try { await sandbox.exec('make'); } finally { await pool.release(sandbox); }
   * ```
   */
  async acquire(): Promise<Sandbox> {
    if (this.closed) throw new Error('the pool is shut down');
    const slot = this.idle.shift() ?? (await new Promise<Slot>((resolve) => this.waiters.push(resolve)));
    try {
      const sandbox = await slot.get();
      this.lent.set(sandbox.id, slot);
      return sandbox;
    } catch (error) {
      this.giveBack(slot);
      throw error;
    }
  }

  /**
   * Takes back a sandbox from `acquire` (`{ broken: true }`: destroy it, the worker gets a new one).
   * @example
   * ```ts
   * await pool.release(sandbox);
   * ```
   */
  async release(sandbox: Sandbox, options: { broken?: boolean } = {}): Promise<void> {
    const slot = this.lent.get(sandbox.id);
    if (!slot) return;
    this.lent.delete(sandbox.id);
    if (options.broken || !this.persistent) await slot.close();
    this.giveBack(slot);
  }

  private giveBack(slot: Slot): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter(slot);
    else {
      this.idle.push(slot);
      this.dispatch();
    }
  }

  private dispatch(): void {
    while (this.jobs.length && this.idle.length) {
      const slot = this.idle.shift() as Slot;
      const job = this.jobs.shift() as Job;
      void this.runJob(slot, job);
    }
  }

  private async runJob(slot: Slot, job: Job): Promise<void> {
    try {
      const sandbox = await slot.get();
      await this.recorder.task(job.index, { status: 'running', sandboxId: sandbox.id, attempts: 1 });
      const value = await job.fn(sandbox);
      void this.recorder.task(job.index, { status: 'completed', result: value });
      job.resolve(value);
    } catch (error) {
      this.failed = true;
      await slot.close();
      void this.recorder.task(job.index, { status: 'failed', error });
      job.reject(error);
    }
    if (!this.persistent) await slot.close();
    if (this.closed) await slot.close();
    this.giveBack(slot);
  }

  /**
   * Every result so far, in submit order, once all are done; throws the first failure unless
   * `returnExceptions`.
   * @example
   * ```ts
   * const results = await pool.waitForCompletion();
   * ```
   */
  async waitForCompletion(options: { returnExceptions?: boolean } = {}): Promise<unknown[]> {
    const settled = await Promise.allSettled(this.results);
    const failure = settled.find((outcome) => outcome.status === 'rejected');
    if (failure && !options.returnExceptions) throw failure.reason;
    return settled.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : outcome.reason));
  }

  /**
   * Waits for the submitted jobs, then destroys the workers' sandboxes; the pool takes no more.
   * @example
   * ```ts
   * await pool.shutdown();
   * ```
   */
  async shutdown(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled(this.results);
    await Promise.all(this.slots.map((slot) => slot.close()));
    await this.recorder.finish(this.failed ? 'failed' : 'completed');
  }
}
