/**
 * `sandbox.git`: git in the sandbox, as structured JSON (no shell strings, credentials never stored
 * unless asked for).
 * @module
 */

import { LONG, body, sandboxPath } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { GitAuth } from './types.js';

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

/** `clone`'s answer. */
export interface CloneResult {
  path: string;
  url: string;
  branch: string;
  commit: string;
}
/** `pull`'s answer: `updated` when new commits arrived. */
export interface PullResult {
  path: string;
  before: string;
  commit: string;
  updated: boolean;
}
/** `push`'s answer. */
export interface PushResult {
  path: string;
  remote: string;
  branch: string;
  commit: string;
}
/** `commit`'s answer. */
export interface CommitResult {
  path: string;
  commit: string;
  message: string;
}
/** `checkout`'s answer. */
export interface CheckoutResult {
  path: string;
  branch: string;
  commit: string;
}
/** A changed file in `status`. */
export interface GitFileStatus {
  path: string;
  status: string;
}
/** `status`'s answer. */
export interface GitStatus {
  branch: string | null;
  commit: string | null;
  upstream: string | null;
  ahead: number;
  behind: number;
  staged: GitFileStatus[];
  unstaged: GitFileStatus[];
  untracked: string[];
  conflicted: string[];
  clean: boolean;
}
/** `diff`'s answer. */
export interface GitDiff {
  diff: string;
  truncated: boolean;
  files: Array<{ path: string; additions: number; deletions: number; binary: boolean }>;
}
/** A commit in `log`. */
export interface GitCommit {
  sha: string;
  author: { name: string; email: string };
  date: string;
  message: string;
}
/** A branch in `branches`. */
export interface GitBranch {
  name: string;
  commit: string;
  current: boolean;
  remote: boolean;
  upstream: string | null;
}

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
    const answer = await this.get<{ commits: GitCommit[] }>('log', { path: options.path, limit: options.limit });
    return answer.commits;
  }

  /** Local and remote branches. */
  branches(options: GitPathOption = {}): Promise<{ current: string | null; branches: GitBranch[] }> {
    return this.get('branches', { path: options.path });
  }
}
