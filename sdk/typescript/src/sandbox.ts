/**
 * A sandbox: lifecycle, commands and code, files, environment, git, logs, snapshots, Claude.
 * @module
 */

import type { SandboxCost } from './billing.js';
import { SandboxChain } from './chain.js';
import { Claude } from './claude.js';
import { CommandStream } from './command.js';
import { Contexts } from './contexts.js';
import type { Duration } from './durations.js';
import { Env } from './env.js';
import { Files, type UploadOptions, type UploadResult } from './files.js';
import { Git } from './git.js';
import { Packages } from './packages.js';
import { PreviewCalls, withoutQuery, type Port, type PreviewUrl, type PreviewUrlOptions } from './preview.js';
import { LogSubscription, logMatches, toLogEntry, type LogEntry, type LogOptions } from './logs.js';
import { LONG, body, execTimeout, sandboxPath, segment, socketPath } from './paths.js';
import { ExecResult } from './results.js';
import { openSocket } from './socket.js';
import { Terminal, type TerminalOptions } from './terminal.js';
import { sleep, type Transport } from './transport.js';
import type {
  ExecutionDetail,
  ExecutionRecord,
  Grant,
  GrantAccess,
  NetworkChanges,
  NetworkPolicy,
  SandboxInfo,
  SandboxMetrics,
  Schemas,
  Snapshot,
} from './types.js';

const SHARING = 'sandbox sharing';

/**
 * Who to share a sandbox with, and how far: one of `user` (a member's username or email) and
 * `team` (a team's name), and `access`.
 * @example
 * ```ts
 * const options: ShareOptions = { user: 'bob', access: 'use' };
 * ```
 */
export interface ShareOptions {
  user?: string;
  team?: string;
  /** `read`, `use` (also commands, files, git, terminals) or `manage` (also lifecycle, environment, snapshots, grants). */
  access: GrantAccess;
}

/**
 * Options of `sandbox.exec()`.
 * @example
 * ```ts
 * await sandbox.exec('npm test', { cwd: '/repo', env: { CI: '1' }, timeout: '5m' });
 * ```
 */
export interface ExecOptions {
  /** Working directory (default the template's, `/workspace`; relative paths start there). */
  cwd?: string;
  /** Extra variables for this command only. */
  env?: Record<string, string>;
  /** Run as this user of the container (default the template's, e.g. `sandbox`). */
  user?: string;
  /** Written to the command's stdin, then closed. */
  stdin?: string;
  /** Kill the command (and everything it started) after this long (default `60s`; `0` = the server's maximum). */
  timeout?: Duration;
  /** Resume a paused sandbox first. */
  autoResume?: boolean;
  /** Stream output as it is printed: answers a {@link CommandStream}. */
  stream?: boolean;
  /** Run on without waiting: answers a {@link BackgroundProcess}. */
  background?: boolean;
}

/**
 * Options of `sandbox.run()`.
 * @example
 * ```ts
 * await sandbox.run('npm test', { cwd: '/repo', retries: 2, retryDelay: 500, timeout: '5m' });
 * ```
 */
export interface RunOptions {
  /** `javascript`, `typescript`, `python`, `shell`… (default: detected; a command runs as shell). */
  language?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Kill it after this long (default `60s`). */
  timeout?: Duration;
  /** More attempts after a failure (non-zero exit or timeout). */
  retries?: number;
  /** Milliseconds between attempts (default 1000). */
  retryDelay?: number;
  /** `false`: answer a failed result instead of throwing. */
  check?: boolean;
  autoResume?: boolean;
}

/**
 * A command started with `exec(…, { background: true })`: it runs on without any client.
 *
 * @example
 * ```ts
 * const server = await sandbox.exec('node server.js', { background: true });
 * const stream = await server.attach();
 * stream.onData((data) => console.log(data));
 * await server.kill();
 * ```
 */
export class BackgroundProcess {
  readonly processId: string;
  readonly executionId: string;

  /** @internal */
  constructor(
    private readonly sandbox: Sandbox,
    data: { processId: string; executionId: string },
  ) {
    this.processId = data.processId;
    this.executionId = data.executionId;
  }

  /**
   * Its output from the start (up to the server's buffer), then live, then its exit.
   * @example
   * ```ts
   * const stream = await server.attach();
   * stream.onData((data) => console.log(data));
   * ```
   */
  async attach(): Promise<CommandStream> {
    const socket = await openSocket(this.sandbox.transport, socketPath(this.sandbox.id, 'processes', this.processId));
    return new CommandStream(socket);
  }

  /**
   * Waits for it to exit.
   * @example
   * ```ts
   * const result = await server.wait();
   * ```
   */
  async wait(): Promise<ExecResult> {
    return (await this.attach()).wait();
  }

  /**
   * Kills it and everything it started.
   * @example
   * ```ts
   * await server.kill();
   * ```
   */
  async kill(): Promise<void> {
    const path = sandboxPath(this.sandbox.id, 'processes', segment(this.processId), 'kill');
    await this.sandbox.transport.json({ method: 'POST', path });
  }
}

/**
 * A VibeBox sandbox. Get one from `vb.sandbox()`, `vb.create()`, `vb.get()` or `vb.list()`.
 *
 * Lifecycle, `run`, `upload` and `download` return a {@link SandboxChain}: await it, or chain the
 * next step. `info` is what the server last said about the sandbox.
 *
 * @example
 * ```ts
 * const sandbox = await vb.sandbox('node-20');
 * const result = await sandbox.run('npm --version');
 * await sandbox.upload('./src').run('npm install').run('npm test').destroy();
 * ```
 */
export class Sandbox {
  /** What the server last said about this sandbox. */
  info: SandboxInfo;
  /** Files: upload, download, list, delete, mkdir, move. */
  readonly files: Files;
  /** Environment variables. */
  readonly env: Env;
  /** Git in the sandbox. */
  readonly git: Git;
  /** Package installs with the template's package managers. */
  readonly packages: Packages;
  /** Claude Code in the sandbox (templates with Claude Code). */
  readonly claude: Claude;
  /** Code contexts: stateful interpreters with rich results. */
  readonly contexts: Contexts;
  private readonly preview: PreviewCalls;

  /** @internal */
  constructor(
    readonly transport: Transport,
    info: SandboxInfo,
  ) {
    this.info = info;
    const id = () => this.id;
    this.files = new Files(transport, id);
    this.env = new Env(transport, id);
    this.git = new Git(transport, id);
    this.packages = new Packages(transport, id, (data) => new BackgroundProcess(this, data));
    this.claude = new Claude(transport, id);
    this.contexts = new Contexts(transport, id);
    this.preview = new PreviewCalls(transport, id);
  }

  /** `sbx_…`. */
  get id(): string {
    return this.info.id;
  }

  get name(): string {
    return this.info.name;
  }

  /** `creating`, `running`, `paused`, `stopped`, `destroyed`, `error`… as last seen. */
  get status(): string {
    return this.info.status;
  }

  get template(): string {
    return this.info.template;
  }

  /**
   * This sandbox through a client with another timeout (ms) or retry count.
   * @example
   * ```ts
   * await sandbox.withOptions({ timeout: 5_000 }).files.list();
   * ```
   */
  withOptions(options: { timeout?: number; maxRetries?: number }): Sandbox {
    return new Sandbox(this.transport.with(options), this.info);
  }

  private chain<T>(promise: Promise<T>): SandboxChain<T> {
    return new SandboxChain(this, promise);
  }

  private async action(action: string): Promise<Sandbox> {
    const path = sandboxPath(this.id, action);
    this.info = await this.transport.json<SandboxInfo>({ method: 'POST', path, timeout: LONG });
    return this;
  }

  // Lifecycle

  /**
   * Reads the sandbox's state again.
   * @example
   * ```ts
   * console.log((await sandbox.refresh()).status);
   * ```
   */
  refresh(): SandboxChain<Sandbox> {
    return this.chain(
      this.transport.json<SandboxInfo>({ method: 'GET', path: sandboxPath(this.id) }).then((info) => {
        this.info = info;
        return this;
      }),
    );
  }

  /**
   * Starts a stopped sandbox.
   * @example
   * ```ts
   * await sandbox.start();
   * ```
   */
  start(): SandboxChain<Sandbox> {
    return this.chain(this.action('start'));
  }

  /**
   * Stops it (processes end; files are kept).
   * @example
   * ```ts
   * await sandbox.stop();
   * ```
   */
  stop(): SandboxChain<Sandbox> {
    return this.chain(this.action('stop'));
  }

  /**
   * Restarts it (a full restart: processes end).
   * @example
   * ```ts
   * await sandbox.restart();
   * ```
   */
  restart(): SandboxChain<Sandbox> {
    return this.chain(this.action('restart'));
  }

  /**
   * Freezes every process; memory and files are kept.
   * @example
   * ```ts
   * await sandbox.pause(); // memory and processes kept
   * ```
   */
  pause(): SandboxChain<Sandbox> {
    return this.chain(this.action('pause'));
  }

  /**
   * Continues a paused sandbox where it was.
   * @example
   * ```ts
   * await sandbox.resume();
   * ```
   */
  resume(): SandboxChain<Sandbox> {
    return this.chain(this.action('resume'));
  }

  /**
   * Makes a sandbox in `error` usable again: its container as found, or made again `stopped` with
   * its workspace where a restore put it (`statusReason` says which); then `start()`.
   * @example
   * ```ts
   * if (sandbox.status === 'error') await (await sandbox.recover()).start();
   * ```
   */
  recover(): SandboxChain<Sandbox> {
    return this.chain(this.action('recover'));
  }

  /**
   * Removes the container and its workspace. Idempotent.
   * @example
   * ```ts
   * await sandbox.destroy();
   * ```
   */
  destroy(): SandboxChain<void> {
    const done = this.transport.json<void>({ method: 'DELETE', path: sandboxPath(this.id), timeout: LONG }).then(() => {
      this.info = { ...this.info, status: 'destroyed' };
    });
    return this.chain(done);
  }

  /**
   * Renames, replaces metadata, sets a new time to live from now (`timeout: null` removes it), or pause settings.
   * @example
   * ```ts
   * await sandbox.update({ name: 'renamed', metadata: { team: 'ml' }, timeout: '4h' });
   * ```
   */
  async update(fields: {
    name?: string;
    metadata?: Record<string, string>;
    timeout?: Duration | null;
    autoPause?: Duration | null;
    autoResume?: boolean;
    pauseStopsTimeout?: boolean;
  }): Promise<Sandbox> {
    const json = body(fields) satisfies Partial<Record<keyof Schemas['PatchedSandboxUpdateRequest'], unknown>>;
    this.info = await this.transport.json<SandboxInfo>({ method: 'PATCH', path: sandboxPath(this.id), json });
    return this;
  }

  /**
   * A new time to live from now (`null`: never expires, for non-ephemeral sandboxes).
   * @example
   * ```ts
   * await sandbox.setTimeout('1h'); // expires an hour from now
   * ```
   */
  setTimeout(timeout: Duration | null): Promise<Sandbox> {
    return this.update({ timeout });
  }

  // Egress policy

  /**
   * The egress policy in force (docs/api.md, "Network policy").
   * @example
   * ```ts
   * const { internet, allow } = await sandbox.getNetwork();
   * ```
   */
  async getNetwork(): Promise<NetworkPolicy> {
    const policy = await this.transport.json<NetworkPolicy>({ method: 'GET', path: sandboxPath(this.id, 'network') });
    this.info = { ...this.info, network: policy };
    return policy;
  }

  /**
   * Replaces the keys given; in force for new connections when it resolves.
   * @example
   * ```ts
   * await sandbox.setNetwork({ internet: false, allow: ['pypi.org', '*.npmjs.org'] });
   * ```
   */
  async setNetwork(changes: NetworkChanges): Promise<NetworkPolicy> {
    const json = body({ ...changes }) satisfies Partial<Record<keyof Schemas['PatchedNetworkInputRequest'], unknown>>;
    const policy = await this.transport.json<NetworkPolicy>({ method: 'PATCH', path: sandboxPath(this.id, 'network'), json });
    this.info = { ...this.info, network: policy };
    return policy;
  }

  // Commands and code

  /**
   * Runs a command: a shell string (`bash -lc`), or an argv list run without a shell. Answers the
   * result whatever the exit code (`run()` throws instead).
   * @example
   * ```ts
   * const { stdout, exitCode } = await sandbox.exec('npm test', { cwd: '/repo', timeout: '5m' });
   * const cmd = await sandbox.exec('npm install', { stream: true });
   * ```
   */
  exec(command: string | string[], options: ExecOptions & { stream: true }): Promise<CommandStream>;
  exec(command: string | string[], options: ExecOptions & { background: true }): Promise<BackgroundProcess>;
  exec(command: string | string[], options?: ExecOptions): Promise<ExecResult>;
  async exec(command: string | string[], options: ExecOptions = {}): Promise<ExecResult | CommandStream | BackgroundProcess> {
    const { stream, background, stdin, autoResume, ...rest } = options;
    if (stream) {
      if (autoResume && (await this.refresh()).status === 'paused') await this.resume();
      const socket = await openSocket(this.transport, socketPath(this.id, 'exec'));
      socket.send(JSON.stringify(body({ command, ...rest })));
      const handle = new CommandStream(socket);
      if (stdin !== undefined) handle.write(stdin).closeStdin();
      return handle;
    }
    const json = body({ command, ...rest, stdin, autoResume, background: background || undefined }) satisfies Partial<
      Record<keyof Schemas['ExecRequest'], unknown>
    >;
    const call = { method: 'POST' as const, path: sandboxPath(this.id, 'exec'), json, timeout: execTimeout(rest.timeout) };
    if (background) return new BackgroundProcess(this, await this.transport.json<Schemas['BackgroundProcess']>(call));
    return new ExecResult(await this.transport.json<Schemas['ExecResult']>(call));
  }

  /**
   * Runs code in the template's language (or `language`) once; `returnValue` is its value.
   * @example
   * ```ts
   * const { returnValue } = await sandbox.execute('1 + 1', { language: 'python' });
   * ```
   */
  async execute(code: string, options: Omit<RunOptions, 'retries' | 'retryDelay' | 'check'> = {}): Promise<ExecResult> {
    const json = body({ code, ...options }) satisfies Partial<Record<keyof Schemas['ExecuteRequest'], unknown>>;
    const path = sandboxPath(this.id, 'execute');
    return new ExecResult(
      await this.transport.json<Schemas['ExecuteResult']>({ method: 'POST', path, json, timeout: execTimeout(options.timeout) }),
    );
  }

  /**
   * Runs a command or a code snippet and checks that it worked.
   *
   * `"npm install"` runs as a shell command; JavaScript or Python code runs in the template's
   * language (its `return` or last expression becomes `returnValue`). A non-zero exit throws
   * `CommandExitError`, a timeout `CommandTimeoutError`, after `retries` more attempts
   * `retryDelay` ms apart; both carry `.logs` with every attempt's output.
   * @example
   * ```ts
   * await sandbox.run('npm install', { cwd: '/repo' });
   * const files = (await sandbox.run("return require('fs').readdirSync('.')")).returnValue;
   * ```
   */
  run(code: string, options: RunOptions = {}): SandboxChain<ExecResult> {
    return this.chain(this.runWithRetries(code, options));
  }

  private async runWithRetries(code: string, options: RunOptions): Promise<ExecResult> {
    const { retries = 0, retryDelay = 1000, check = true, ...fields } = options;
    const attempts: ExecResult[] = [];
    for (;;) {
      const result = await this.execute(code, fields);
      attempts.push(result);
      if (!check || result.ok) return result;
      if (attempts.length > retries) return result.check(attempts);
      await sleep(retryDelay);
    }
  }

  /**
   * The sandbox's command history, newest first.
   * @example
   * ```ts
   * for (const run of await sandbox.executions({ limit: 5 })) console.log(run.command, run.exitCode);
   * ```
   */
  async executions(options: { limit?: number; offset?: number } = {}): Promise<ExecutionRecord[]> {
    const path = sandboxPath(this.id, 'executions');
    const query = { limit: options.limit ?? 20, offset: options.offset ?? 0 };
    return (await this.transport.json<Schemas['PaginatedExecutionList']>({ method: 'GET', path, query })).results;
  }

  /**
   * One execution with its output.
   * @example
   * ```ts
   * const { stdout } = await sandbox.execution('exec_…');
   * ```
   */
  execution(executionId: string): Promise<ExecutionDetail> {
    const path = sandboxPath(this.id, 'executions', segment(executionId));
    return this.transport.json({ method: 'GET', path });
  }

  /**
   * The background commands still running.
   * @example
   * ```ts
   * for (const process of await sandbox.processes()) console.log(process.processId, process.command);
   * ```
   */
  async processes(): Promise<Schemas['Process'][]> {
    const path = sandboxPath(this.id, 'processes');
    return (await this.transport.json<Schemas['ProcessList']>({ method: 'GET', path })).processes;
  }

  /**
   * The open terminal sessions (they outlive their clients).
   * @example
   * ```ts
   * for (const t of await sandbox.terminals()) console.log(t.sessionId, t.shell, t.attached);
   * ```
   */
  async terminals(): Promise<Schemas['Terminal'][]> {
    const path = sandboxPath(this.id, 'terminals');
    return (await this.transport.json<Schemas['TerminalList']>({ method: 'GET', path })).terminals;
  }

  /**
   * Ends a terminal session and everything started in it; TerminalNotFoundError when there is none.
   * @example
   * ```ts
   * await sandbox.killTerminal('term_…');
   * ```
   */
  async killTerminal(sessionId: string): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: sandboxPath(this.id, 'terminals', segment(sessionId)) });
  }

  /**
   * What the sandbox has cost since it was created and its rate per hour now (decimal strings in
   * `currency`); needs billing.read (a key: `billing:read`).
   * @example
   * ```ts
   * const { total, ratePerHour, currency } = await sandbox.cost();
   * ```
   */
  cost(): Promise<SandboxCost> {
    return this.transport.json({ method: 'GET', path: sandboxPath(this.id, 'cost'), feature: 'billing' });
  }

  /**
   * CPU, memory, disk and process counts now (running or paused sandboxes).
   * @example
   * ```ts
   * const { cpu, memory } = await sandbox.metrics();
   * ```
   */
  metrics(): Promise<SandboxMetrics> {
    return this.transport.json({ method: 'GET', path: sandboxPath(this.id, 'metrics'), feature: 'metrics' });
  }

  // Files

  /**
   * Uploads a file, a directory or a glob pattern. Default destination: `/workspace/<name>`.
   * @example
   * ```ts
   * await sandbox.upload('./package.json');                        // /workspace/package.json
   * await sandbox.upload('./local.json', '/app/config.json');
   * await sandbox.upload('./src/*.ts', { exclude: ['node_modules', 'dist'] });
   * ```
   */
  upload(local: string, remote?: string | UploadOptions, options?: UploadOptions): SandboxChain<UploadResult> {
    const [target, settings] = typeof remote === 'object' ? [undefined, remote] : [remote, options];
    return this.chain(this.files.upload(local, target, settings));
  }

  /**
   * Without `local`: the file's bytes. With it: writes the file, or a directory's contents, there.
   * @example
   * ```ts
   * const content = await sandbox.download('dist/bundle.js'); // Buffer
   * await sandbox.download('dist/', './local-dist/');          // directory sync
   * ```
   */
  download(remote: string): SandboxChain<Buffer>;
  download(remote: string, local: string): SandboxChain<string>;
  download(remote: string, local?: string): SandboxChain<Buffer | string> {
    return this.chain<Buffer | string>(
      local === undefined ? this.files.download(remote) : this.files.downloadTo(remote, local),
    );
  }

  // Logs

  /**
   * Calls `callback` with each new log entry (container output, VibeBox's events) until `close()`.
   * @example
   * ```ts
   * sandbox.onLog((log) => console.log(log.text));
   * sandbox.onLog({ filter: 'stdout', level: 'info' }, (log) => console.log(log.text));
   * ```
   */
  onLog(callback: (entry: LogEntry) => void): LogSubscription;
  onLog(options: LogOptions, callback: (entry: LogEntry) => void): LogSubscription;
  onLog(
    optionsOrCallback: LogOptions | ((entry: LogEntry) => void),
    maybeCallback?: (entry: LogEntry) => void,
  ): LogSubscription {
    const [options, callback] =
      typeof optionsOrCallback === 'function' ? [{}, optionsOrCallback] : [optionsOrCallback, maybeCallback];
    if (!callback) throw new TypeError('onLog needs a callback');
    return new LogSubscription(this.transport, socketPath(this.id, 'logs'), options, callback);
  }

  /**
   * Recent log entries, oldest first (default the last 100).
   * @example
   * ```ts
   * for (const log of await sandbox.logs({ tail: 50, filter: 'stderr' })) console.log(log.text);
   * ```
   */
  async logs(options: Omit<LogOptions, 'onError'> = {}): Promise<LogEntry[]> {
    const filter = options.filter ?? 'all';
    const streamOnly = filter === 'stdout' || filter === 'stderr';
    const query = { since: options.since, tail: options.tail ?? 100, stream: streamOnly ? filter : 'all', events: streamOnly ? 0 : 1 };
    const path = sandboxPath(this.id, 'logs');
    const answer = await this.transport.json<{ logs: Array<Record<string, unknown>> }>({ method: 'GET', path, query });
    return answer.logs.map(toLogEntry).filter((entry) => logMatches(entry, options));
  }

  /**
   * Opens an interactive terminal (a PTY); `session` joins an open one.
   * @example
   * ```ts
   * const term = await sandbox.terminal({ cols: 120, rows: 40 });
   * term.onData((bytes) => process.stdout.write(bytes));
   * term.write('top\r');
   * ```
   */
  async terminal(options: TerminalOptions = {}): Promise<Terminal> {
    const socket = await openSocket(this.transport, socketPath(this.id, 'terminal'), { ...options });
    return new Terminal(socket).ready;
  }

  // Snapshots

  /**
   * Takes a snapshot of the filesystem and workspace (not memory or processes).
   * @example
   * ```ts
   * const snapshot = await sandbox.snapshot('before-deploy');
   * ```
   */
  snapshot(name?: string): Promise<Snapshot> {
    const path = sandboxPath(this.id, 'snapshots');
    return this.transport.json({ method: 'POST', path, json: body({ name }), timeout: LONG, feature: 'snapshots' });
  }

  /**
   * This sandbox's snapshots.
   * @example
   * ```ts
   * const snapshots = await sandbox.snapshots();
   * ```
   */
  async snapshots(): Promise<Snapshot[]> {
    const path = sandboxPath(this.id, 'snapshots');
    return (await this.transport.json<Schemas['SnapshotList']>({ method: 'GET', path, feature: 'snapshots' })).results;
  }

  /**
   * Rolls the sandbox back to a snapshot, in place (same id, name and settings).
   * @example
   * ```ts
   * await sandbox.restore(snapshot);
   * ```
   */
  restore(snapshot: Snapshot | string): SandboxChain<Sandbox> {
    const id = typeof snapshot === 'string' ? snapshot : snapshot.id;
    const path = sandboxPath(this.id, 'restore');
    const done = this.transport
      .json<SandboxInfo>({ method: 'POST', path, json: { snapshot: id }, timeout: LONG, feature: 'snapshots' })
      .then((info) => {
        this.info = info;
        return this;
      });
    return this.chain(done);
  }

  /**
   * Who the sandbox is shared with, oldest first: each grant names a member (`user`) or a team
   * (`team`) and its `access`. Whoever may read the sandbox may list them.
   * @example
   * ```ts
   * for (const grant of await sandbox.grants()) console.log(grant.user ?? grant.team, grant.access);
   * ```
   */
  grants(): Promise<Grant[]> {
    return this.transport.json({ method: 'GET', path: sandboxPath(this.id, 'grants'), feature: SHARING });
  }

  /**
   * Shares the sandbox with a member (`user`: username or email) or a team (`team`: its name) of
   * its organization at `access`; one that holds a grant already gets this level instead. Needs
   * what managing the sandbox needs; someone outside the organization is `MemberNotFoundError`,
   * an unknown team `TeamNotFoundError`.
   * @example
   * ```ts
   * await sandbox.share({ user: 'bob', access: 'use' });
   * await sandbox.share({ team: 'platform', access: 'read' });
   * ```
   */
  share(options: ShareOptions): Promise<Grant> {
    const json = body({ user: options.user, team: options.team, access: options.access });
    return this.transport.json({ method: 'POST', path: sandboxPath(this.id, 'grants'), json, feature: SHARING });
  }

  /**
   * Revokes a grant (a grant or its id, `grt_…`; `GrantNotFoundError` when it is not this
   * sandbox's). Managers may revoke any; a member may give up their own.
   * @example
   * ```ts
   * await sandbox.unshare(grant);
   * ```
   */
  async unshare(grant: Grant | string): Promise<void> {
    const id = typeof grant === 'string' ? grant : grant.id;
    await this.transport.json({ method: 'DELETE', path: sandboxPath(this.id, 'grants', segment(id)), feature: SHARING });
  }


  // Preview URLs

  /**
   * The ports a server listens on in the sandbox and those its template declares, with their
   * preview URLs (without a token) and `public` flag.
   * @example
   * ```ts
   * for (const port of await sandbox.ports()) console.log(port.port, port.listening, port.url);
   * ```
   */
  ports(): Promise<Port[]> {
    return this.preview.ports();
  }

  /**
   * A signed link to `port` that works in any browser until it expires: `url` carries
   * `?vibebox_token=…`, which the preview host swaps for a cookie.
   * @example
   * ```ts
   * const { url } = await sandbox.previewUrl(3000, { expiresIn: '2h' });
   * ```
   */
  previewUrl(port: number, options: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    return this.preview.url(port, options);
  }

  /**
   * The host-form preview URL of `port` (`http://3000-sbx_….preview.localhost:8000/`), without a
   * token: it answers a preview cookie (from a signed link), or anyone once the port is public (the
   * owner's dashboard session opens the path form only).
   * @example
   * ```ts
   * console.log(await sandbox.getHost(3000));
   * ```
   */
  async getHost(port: number): Promise<string> {
    return withoutQuery((await this.preview.url(port, { form: 'host' })).url);
  }

  /**
   * Opens `port`'s preview to anyone with the URL (`false`: private again).
   * @example
   * ```ts
   * await sandbox.setPortPublic(3000, true);
   * ```
   */
  setPortPublic(port: number, isPublic = true): Promise<Port> {
    return this.preview.setPublic(port, isPublic);
  }

  /** `{ id, name, template, status }` for logs and `console.log`. */
  toJSON(): SandboxInfo {
    return this.info;
  }
}
