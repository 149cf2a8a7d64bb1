/**
 * `sandbox.claude`: Claude Code in the sandbox, under review (templates with Claude Code:
 * `node-22-claude-code`; `node-20-claude-code` has it enabled at create).
 * @module
 */

import { CallbackError, TimeoutError, guarded } from './errors.js';
import { LONG, body, sandboxPath, segment, socketPath } from './paths.js';
import { openSocket, parseFrame } from './socket.js';
import { sleep, type Query, type Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * Options of `claude.enable()`.
 * @example
 * ```ts
 * await sandbox.claude.enable({ mcp: true });
 * ```
 */
export interface EnableOptions {
  /** Your own Anthropic key for this sandbox (stored encrypted; never enters the sandbox). */
  anthropicApiKey?: string;
  /** Give Claude VibeBox's MCP server, scoped to this sandbox. */
  mcp?: boolean;
}

/**
 * Options of `claude.ask()` and `claude.start()`.
 * @example
 * ```ts
 * await sandbox.claude.ask('Fix the failing test', { maxTurns: 10, review: true });
 * ```
 */
export interface AskOptions {
  /** Continue this session (default: a new one). */
  sessionId?: string;
  model?: string;
  /** `acceptEdits` (the default), `default`, `plan`, `bypassPermissions`. */
  permissionMode?: string;
  allowedTools?: string[];
  disallowedTools?: string[];
  maxTurns?: number;
  appendSystemPrompt?: string;
  /** Claude works on its own branch and its changes wait for approval (default `true` for a new session). */
  review?: boolean;
}

/**
 * One of Claude's events, as the server streams it (`claude.init`, `claude.assistant`,
 * `claude.tool_use`, `claude.tool_result`, `claude.result`, `claude.ask.started`,
 * `claude.ask.finished`, `claude.changes`…); `data.event` is Claude's own stream-json line.
 * @example
 * ```ts
 * await sandbox.claude.ask('Add a README', { onEvent: (event: ClaudeEvent) => console.log(event.type, event.text) });
 * ```
 */
export interface ClaudeEvent {
  type: string;
  sandboxId: string;
  text: string;
  /** Unix seconds. */
  timestamp: number;
  data: { askId?: string; sessionId?: string; seq?: number; kind?: string; [field: string]: unknown };
}

/**
 * Options of `claude.ask()` and `claude.wait()`.
 * @example
 * ```ts
 * await sandbox.claude.ask('Refactor src/', { timeout: 300_000, onEvent: (event) => console.log(event.text) });
 * ```
 */
export interface WaitOptions {
  /** Called with each of the ask's events as it happens (the ones so far first). */
  onEvent?: (event: ClaudeEvent) => void;
  /** Milliseconds to wait for the ask to finish (default 10 minutes); then `TimeoutError`. */
  timeout?: number;
  /** Milliseconds between status checks (default 500). */
  pollInterval?: number;
}

/**
 * A change set's file.
 * @example
 * ```ts
 * for (const file of change.files) console.log(file.path, file.additions, file.deletions);
 * ```
 */
export type ChangedFile = Schemas['ChangeFile'];
/**
 * Claude's changes from one ask, waiting for review (or reviewed); `diff` with `pendingChanges()`.
 * @example
 * ```ts
 * const [change] = await sandbox.claude.pendingChanges();
 * console.log(change?.stats, change?.diff);
 * ```
 */
export type ChangeSet = Schemas['ChangeSet'];
/**
 * An ask: one prompt to Claude and what came of it (`status`, `result`, `costUsd`, `changeSetId`…).
 * @example
 * ```ts
 * const ask: Ask = await sandbox.claude.ask('Add tests');
 * console.log(ask.status, ask.result, ask.costUsd);
 * ```
 */
export type Ask = Schemas['ClaudeAsk'];
/**
 * A Claude session (a conversation, continued by later asks).
 * @example
 * ```ts
 * for (const session of await sandbox.claude.sessions()) console.log(session.sessionId, session.title);
 * ```
 */
export type ClaudeSession = Schemas['ClaudeSession'];
/**
 * What `approve()` and `reject()` answer.
 * @example
 * ```ts
 * const { status, changeSets } = await sandbox.claude.approve();
 * ```
 */
export type ReviewResult = Schemas['ReviewResult'];

const FEATURE = 'Claude Code';

/**
 * Claude Code in a sandbox: enable it, ask, review its changes.
 *
 * @example
 * ```ts
 * await sandbox.claude.enable();
 * await sandbox.claude.ask('Add error handling to src/index.ts');
 * const changes = await sandbox.claude.pendingChanges();
 * await sandbox.claude.approve(); // or .reject()
 * ```
 */
export class Claude {
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
  ) {}

  private call<T>(method: 'GET' | 'POST' | 'PATCH', operation: string, fields?: Record<string, unknown>, query?: Query): Promise<T> {
    const path = sandboxPath(this.sandboxId(), 'claude', ...operation.split('/').map((part) => segment(part)));
    const call = { method, path, timeout: LONG, feature: FEATURE, ...(query ? { query } : {}) };
    return this.transport.json(fields ? { ...call, json: body(fields) } : call);
  }

  private static unwrap<T>(answer: { data: T }): T {
    return answer.data;
  }

  /**
   * Checks Claude Code is installed and gives the sandbox its model gateway token.
   * @example
   * ```ts
   * await sandbox.claude.enable();
   * ```
   */
  enable(options: EnableOptions = {}): Promise<Schemas['ClaudeEnabled']> {
    return this.call('POST', 'enable', { ...options });
  }

  /**
   * Enabled or not, version, running asks, usage.
   * @example
   * ```ts
   * const { enabled, version } = await sandbox.claude.status();
   * ```
   */
  status(): Promise<Schemas['ClaudeStatus']> {
    return this.call('GET', 'status');
  }

  /**
   * Changes the sandbox's Claude setup (`PATCH …/claude/status`): the collaboration mode
   * (`human`: asks refused with `ClaudeDisabledByModeError`; `assist`: changes wait for review;
   * `autonomous`: change sets applied when their ask ends) and the asks' defaults. Fields left out
   * stay as they are; `""` goes back to the template's default (for the key: the operator's).
   * @example
   * ```ts
   * const status = await sandbox.claude.configure({ mode: 'autonomous', model: 'claude-sonnet-4-5' });
   * ```
   */
  configure(options: Schemas['PatchedClaudeSetupUpdateRequest']): Promise<Schemas['ClaudeStatus']> {
    return this.call('PATCH', 'status', { ...options });
  }

  /**
   * Starts an ask and answers at once (`status: "running"`).
   * @example
   * ```ts
   * const { askId } = await sandbox.claude.start('Write the README');
   * ```
   */
  start(prompt: string, options: AskOptions = {}): Promise<Schemas['ClaudeAskStarted']> {
    return this.call('POST', 'ask', { prompt, ...options });
  }

  /**
   * Asks Claude and waits until it is done; answers the finished ask (`result`, `changeSetId`…).
   * @example
   * ```ts
   * const ask = await sandbox.claude.ask('Add error handling to src/index.ts', { onEvent: (e) => console.log(e.text) });
   * ```
   */
  async ask(prompt: string, options: AskOptions & WaitOptions = {}): Promise<Ask> {
    const { timeout, pollInterval, onEvent, ...fields } = options;
    const started = await this.start(prompt, fields);
    return this.wait(started.askId, { timeout, pollInterval, onEvent });
  }

  /**
   * Waits for a running ask to finish (following its events with `onEvent`).
   * @example
   * ```ts
   * const done = await sandbox.claude.wait(askId, { timeout: 300_000 });
   * ```
   */
  async wait(askId: string, options: WaitOptions = {}): Promise<Ask> {
    const deadline = Date.now() + (options.timeout ?? 600_000);
    if (options.onEvent) {
      // The stream is a convenience: if it cannot be followed, polling still answers. A callback
      // that throws ends the wait with a CallbackError.
      const thrown = await this.follow(askId, options.onEvent, deadline).catch((error: unknown) =>
        error instanceof CallbackError ? error : undefined,
      );
      if (thrown) throw thrown;
    }
    for (;;) {
      const ask = await this.get(askId);
      if (ask.status !== 'running') return ask;
      if (Date.now() > deadline) throw new TimeoutError(`Claude's ask ${askId} is still running`);
      await sleep(options.pollInterval ?? 500);
    }
  }

  private async follow(askId: string, onEvent: (event: ClaudeEvent) => void, deadline: number): Promise<void> {
    const socket = await openSocket(this.transport, socketPath(this.sandboxId(), 'claude'), { askId });
    let failure: CallbackError | undefined;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.close(1000), Math.max(0, deadline - Date.now()));
      // An ask that ended before the stream was set up sends no `finished` event: check now and then.
      const check = setInterval(() => {
        this.get(askId).then(
          (ask) => ask.status !== 'running' && socket.close(1000),
          () => undefined,
        );
      }, 2000);
      socket.on('message', (data) => {
        const event = parseFrame(data) as ClaudeEvent | undefined;
        if (!event || typeof event.type !== 'string' || failure) return;
        guarded(
          () => onEvent(event),
          (error) => {
            failure = error;
            socket.close(1000);
          },
        );
        if (event.type === 'claude.ask.finished' && event.data?.askId === askId) socket.close(1000);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearTimeout(timer);
        clearInterval(check);
        resolve();
      });
    });
    if (failure) throw failure;
  }

  /**
   * One ask.
   * @example
   * ```ts
   * const ask = await sandbox.claude.get(askId);
   * ```
   */
  get(askId: string): Promise<Ask> {
    return this.call('GET', `asks/${askId}`);
  }

  /**
   * The sandbox's asks, newest first.
   * @example
   * ```ts
   * const asks = await sandbox.claude.asks();
   * ```
   */
  async asks(): Promise<Ask[]> {
    return Claude.unwrap(await this.call<{ data: Ask[] }>('GET', 'asks'));
  }

  /**
   * Kills a running ask (Claude and the tools it started).
   * @example
   * ```ts
   * await sandbox.claude.cancel(askId);
   * ```
   */
  cancel(askId: string): Promise<Ask> {
    return this.call('POST', `asks/${askId}/cancel`);
  }

  /**
   * The sandbox's Claude sessions.
   * @example
   * ```ts
   * const sessions = await sandbox.claude.sessions();
   * ```
   */
  async sessions(): Promise<ClaudeSession[]> {
    return Claude.unwrap(await this.call<{ data: ClaudeSession[] }>('GET', 'sessions'));
  }

  /**
   * A session with its conversation.
   * @example
   * ```ts
   * const { messages } = await sandbox.claude.session(sessionId);
   * ```
   */
  session(sessionId: string): Promise<Schemas['ClaudeSessionDetail']> {
    return this.call('GET', `sessions/${sessionId}`);
  }

  /**
   * Change sets waiting for review, with their diffs (of one session, or all).
   * @example
   * ```ts
   * const changes = await sandbox.claude.pendingChanges();
   * ```
   */
  async pendingChanges(options: { sessionId?: string } = {}): Promise<ChangeSet[]> {
    const query = { sessionId: options.sessionId, status: 'pending', diff: 1 };
    return Claude.unwrap(await this.call<{ data: ChangeSet[] }>('GET', 'changes', undefined, query));
  }

  /**
   * Applies the pending changes to /workspace (`MergeConflictError` if they clash: nothing applied).
   * @example
   * ```ts
   * await sandbox.claude.approve();
   * ```
   */
  approve(options: { sessionId?: string } = {}): Promise<ReviewResult> {
    return this.call('POST', 'approve', { sessionId: options.sessionId });
  }

  /**
   * Drops the pending changes.
   * @example
   * ```ts
   * await sandbox.claude.reject({ sessionId });
   * ```
   */
  reject(options: { sessionId?: string } = {}): Promise<ReviewResult> {
    return this.call('POST', 'reject', { sessionId: options.sessionId });
  }
}
