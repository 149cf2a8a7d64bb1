/**
 * `sandbox.git`: git in the sandbox, as structured JSON (no shell strings, credentials never stored
 * unless asked for).
 * @module
 */

import { LONG, body, sandboxPath } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { GitAuth, Schemas } from './types.js';

/**
 * Where the repository is (default `/repo`; relative paths start at `/workspace`).
 * @example
 * ```ts
 * await sandbox.git.status({ path: '/workspace/app' });
 * ```
 */
export interface GitPathOption {
  path?: string;
}
/**
 * Options of `git.clone()`.
 * @example
 * ```ts
 * await sandbox.git.clone(url, { branch: 'develop', path: '/repo', depth: 1 });
 * ```
 */
export interface CloneOptions extends GitPathOption {
  branch?: string;
  depth?: number;
  auth?: GitAuth;
}
/**
 * Options of `git.pull()`.
 * @example
 * ```ts
 * await sandbox.git.pull({ remote: 'origin', branch: 'main' });
 * ```
 */
export interface PullOptions extends GitPathOption {
  remote?: string;
  branch?: string;
  auth?: GitAuth;
}
/**
 * Options of `git.push()`.
 * @example
 * ```ts
 * await sandbox.git.push({ setUpstream: true });
 * ```
 */
export interface PushOptions extends PullOptions {
  setUpstream?: boolean;
  /** `--force-with-lease`. */
  force?: boolean;
}
/**
 * Options of `git.commit()`.
 * @example
 * ```ts
 * await sandbox.git.commit('fix: typo', { all: true, author: { name: 'Bot', email: 'bot@example.com' } });
 * ```
 */
export interface CommitOptions extends GitPathOption {
  /** Stage everything first (`git add -A`). */
  all?: boolean;
  author?: { name: string; email: string };
  allowEmpty?: boolean;
}
/**
 * Options of `git.diff()`.
 * @example
 * ```ts
 * const { diff, files } = await sandbox.git.diff({ staged: true });
 * ```
 */
export interface DiffOptions extends GitPathOption {
  staged?: boolean;
  file?: string;
}

/**
 * `clone`'s answer: `{ path, url, branch, commit }`.
 * @example
 * ```ts
 * const { path, branch, commit } = await sandbox.git.clone(url);
 * ```
 */
export type CloneResult = Schemas['GitCloneResult'];
/**
 * `pull`'s answer: `updated` when new commits arrived.
 * @example
 * ```ts
 * if ((await sandbox.git.pull()).updated) console.log('new commits');
 * ```
 */
export type PullResult = Schemas['GitPullResult'];
/**
 * `push`'s answer.
 * @example
 * ```ts
 * const { remote, branch } = await sandbox.git.push();
 * ```
 */
export type PushResult = Schemas['GitPushResult'];
/**
 * `commit`'s answer.
 * @example
 * ```ts
 * const { commit } = await sandbox.git.commit('feat: x', { all: true });
 * ```
 */
export type CommitResult = Schemas['GitCommitResult'];
/**
 * `checkout`'s answer.
 * @example
 * ```ts
 * const { branch } = await sandbox.git.checkout('feature', { create: true });
 * ```
 */
export type CheckoutResult = Schemas['GitCheckoutResult'];
/**
 * A changed file in `status`.
 * @example
 * ```ts
 * for (const file of (await sandbox.git.status()).staged) console.log(file.status, file.path);
 * ```
 */
export type GitFileStatus = Schemas['GitFileStatus'];
/**
 * `status`'s answer.
 * @example
 * ```ts
 * const { branch, clean, untracked } = await sandbox.git.status();
 * ```
 */
export type GitStatus = Schemas['GitStatus'];
/**
 * `diff`'s answer.
 * @example
 * ```ts
 * console.log((await sandbox.git.diff()).diff);
 * ```
 */
export type GitDiff = Schemas['GitDiff'];
/**
 * A commit in `log`.
 * @example
 * ```ts
 * const [latest] = await sandbox.git.log({ limit: 1 });
 * ```
 */
export type GitCommit = Schemas['GitLogCommit'];
/**
 * A branch in `branches`.
 * @example
 * ```ts
 * const { branches } = await sandbox.git.branches();
 * ```
 */
export type GitBranch = Schemas['GitBranch'];

/**
 * Git operations in a running sandbox.
 *
 * @example
 * ```ts
 * await sandbox.git.clone('https://github.com/user/project.git', { branch: 'develop', path: '/repo', depth: 1 });
 * await sandbox.git.checkout('feature-branch', { create: true });
 * await sandbox.git.commit('feat: add new feature', { all: true });
 * await sandbox.git.push();
 * ```
 */
export class Git {
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
  ) {}

  private post<T>(operation: string, fields: Record<string, unknown>): Promise<T> {
    const path = sandboxPath(this.sandboxId(), 'git', operation);
    return this.transport.json({ method: 'POST', path, json: body(fields), timeout: LONG });
  }

  private get<T>(operation: string, query: Query): Promise<T> {
    const path = sandboxPath(this.sandboxId(), 'git', operation);
    return this.transport.json({ method: 'GET', path, query, timeout: LONG });
  }

  /**
   * Clones `url` (default into `/repo`).
   * @example
   * ```ts
   * await sandbox.git.clone('https://github.com/user/project.git', { branch: 'develop', depth: 1 });
   * ```
   */
  clone(url: string, options: CloneOptions = {}): Promise<CloneResult> {
    return this.post('clone', { url, ...options });
  }

  /**
   * Pulls from the remote (default `origin`, the current branch).
   * @example
   * ```ts
   * const { updated } = await sandbox.git.pull();
   * ```
   */
  pull(options: PullOptions = {}): Promise<PullResult> {
    return this.post('pull', { ...options });
  }

  /**
   * Pushes the current branch (or `branch`).
   * @example
   * ```ts
   * await sandbox.git.push({ setUpstream: true });
   * ```
   */
  push(options: PushOptions = {}): Promise<PushResult> {
    return this.post('push', { ...options });
  }

  /**
   * Commits what is staged (`all: true` stages everything first).
   * @example
   * ```ts
   * await sandbox.git.commit('feat: add new feature', { all: true });
   * ```
   */
  commit(message: string, options: CommitOptions = {}): Promise<CommitResult> {
    return this.post('commit', { message, ...options });
  }

  /**
   * Switches to `branch` (`create: true` makes it).
   * @example
   * ```ts
   * await sandbox.git.checkout('feature-branch', { create: true });
   * ```
   */
  checkout(branch: string, options: GitPathOption & { create?: boolean } = {}): Promise<CheckoutResult> {
    return this.post('checkout', { branch, ...options });
  }

  /**
   * Branch, upstream, ahead/behind, staged, unstaged, untracked and conflicted files.
   * @example
   * ```ts
   * const { branch, clean } = await sandbox.git.status();
   * ```
   */
  status(options: GitPathOption = {}): Promise<GitStatus> {
    return this.get('status', { path: options.path });
  }

  /**
   * The unified diff of the working tree (or of what is staged), with per-file counts.
   * @example
   * ```ts
   * console.log((await sandbox.git.diff({ staged: true })).diff);
   * ```
   */
  diff(options: DiffOptions = {}): Promise<GitDiff> {
    return this.get('diff', { path: options.path, staged: options.staged, file: options.file });
  }

  /**
   * The latest commits (default 20).
   * @example
   * ```ts
   * const [latest] = await sandbox.git.log({ limit: 1 });
   * ```
   */
  async log(options: GitPathOption & { limit?: number } = {}): Promise<GitCommit[]> {
    const answer = await this.get<Schemas['GitLog']>('log', { path: options.path, limit: options.limit });
    return answer.commits;
  }

  /**
   * Local and remote branches.
   * @example
   * ```ts
   * const { current, branches } = await sandbox.git.branches();
   * ```
   */
  branches(options: GitPathOption = {}): Promise<Schemas['GitBranches']> {
    return this.get('branches', { path: options.path });
  }
}
