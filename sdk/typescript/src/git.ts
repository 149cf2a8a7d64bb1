/**
 * `sandbox.git`: git in the sandbox, as structured JSON (no shell strings, credentials never stored
 * unless asked for).
 * @module
 */

import { LONG, body, sandboxPath } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { GitAuth, Schemas } from './types.js';

/** Where the repository is (default `/repo`; relative paths start at `/workspace`). */
export interface GitPathOption {
  path?: string;
}
/** Options of `git.clone()`. */
export interface CloneOptions extends GitPathOption {
  branch?: string;
  depth?: number;
  auth?: GitAuth;
}
/** Options of `git.pull()`. */
export interface PullOptions extends GitPathOption {
  remote?: string;
  branch?: string;
  auth?: GitAuth;
}
/** Options of `git.push()`. */
export interface PushOptions extends PullOptions {
  setUpstream?: boolean;
  /** `--force-with-lease`. */
  force?: boolean;
}
/** Options of `git.commit()`. */
export interface CommitOptions extends GitPathOption {
  /** Stage everything first (`git add -A`). */
  all?: boolean;
  author?: { name: string; email: string };
  allowEmpty?: boolean;
}
/** Options of `git.diff()`. */
export interface DiffOptions extends GitPathOption {
  staged?: boolean;
  file?: string;
}

/** `clone`'s answer: `{ path, url, branch, commit }`. */
export type CloneResult = Schemas['GitCloneResult'];
/** `pull`'s answer: `updated` when new commits arrived. */
export type PullResult = Schemas['GitPullResult'];
/** `push`'s answer. */
export type PushResult = Schemas['GitPushResult'];
/** `commit`'s answer. */
export type CommitResult = Schemas['GitCommitResult'];
/** `checkout`'s answer. */
export type CheckoutResult = Schemas['GitCheckoutResult'];
/** A changed file in `status`. */
export type GitFileStatus = Schemas['GitFileStatus'];
/** `status`'s answer. */
export type GitStatus = Schemas['GitStatus'];
/** `diff`'s answer. */
export type GitDiff = Schemas['GitDiff'];
/** A commit in `log`. */
export type GitCommit = Schemas['GitLogCommit'];
/** A branch in `branches`. */
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

  /** Clones `url` (default into `/repo`). */
  clone(url: string, options: CloneOptions = {}): Promise<CloneResult> {
    return this.post('clone', { url, ...options });
  }

  /** Pulls from the remote (default `origin`, the current branch). */
  pull(options: PullOptions = {}): Promise<PullResult> {
    return this.post('pull', { ...options });
  }

  /** Pushes the current branch (or `branch`). */
  push(options: PushOptions = {}): Promise<PushResult> {
    return this.post('push', { ...options });
  }

  /** Commits what is staged (`all: true` stages everything first). */
  commit(message: string, options: CommitOptions = {}): Promise<CommitResult> {
    return this.post('commit', { message, ...options });
  }

  /** Switches to `branch` (`create: true` makes it). */
  checkout(branch: string, options: GitPathOption & { create?: boolean } = {}): Promise<CheckoutResult> {
    return this.post('checkout', { branch, ...options });
  }

  /** Branch, upstream, ahead/behind, staged, unstaged, untracked and conflicted files. */
  status(options: GitPathOption = {}): Promise<GitStatus> {
    return this.get('status', { path: options.path });
  }

  /** The unified diff of the working tree (or of what is staged), with per-file counts. */
  diff(options: DiffOptions = {}): Promise<GitDiff> {
    return this.get('diff', { path: options.path, staged: options.staged, file: options.file });
  }

  /** The latest commits (default 20). */
  async log(options: GitPathOption & { limit?: number } = {}): Promise<GitCommit[]> {
    const answer = await this.get<Schemas['GitLog']>('log', { path: options.path, limit: options.limit });
    return answer.commits;
  }

  /** Local and remote branches. */
  branches(options: GitPathOption = {}): Promise<Schemas['GitBranches']> {
    return this.get('branches', { path: options.path });
  }
}
