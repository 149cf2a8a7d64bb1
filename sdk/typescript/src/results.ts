/**
 * What commands and code answer.
 * @module
 */

import { CommandExitError, CommandTimeoutError } from './errors.js';
import type { Schemas } from './types.js';

/**
 * `completed` (exit 0), `failed` (another exit code), `timeout`, or `error` (the engine failed).
 * @example
 * ```ts
 * if (result.status === 'timeout') console.log('killed at its timeout');
 * ```
 */
export type ExecStatus = Schemas['ExecResult']['status'] | 'error';

/**
 * The result of a command or a code snippet.
 *
 * @example
 * ```ts
 * const result = await sandbox.run('return 6 * 7');
 * console.log(result.output, result.returnValue, result.exitCode, result.duration); // "" 42 0 85
 * ```
 */
export class ExecResult {
  /** The execution's id in the sandbox's history (`exec_…`). */
  readonly executionId: string;
  readonly stdout: string;
  readonly stderr: string;
  /** `null` when the command was killed at its timeout. */
  readonly exitCode: number | null;
  /** Milliseconds. */
  readonly duration: number;
  readonly status: ExecStatus;
  /** Output beyond the server's cap was dropped. */
  readonly truncated: boolean;
  /** The command was killed for lack of memory. */
  readonly oomKilled: boolean;
  /** The language the code ran as (`run`, `execute`), e.g. `javascript`, `python`, `shell`. */
  readonly language: string | undefined;
  /** The value of a JavaScript `return` or of Python's last expression (`null` when none). */
  readonly returnValue: unknown;
  /**
   * Code only (`run`, `execute`): `compile` when a compiled language's build (Go, Rust, Java,
   * TypeScript's type stripping) failed or timed out, its messages on `stderr`; else `run`.
   * `undefined` for commands.
   */
  readonly phase: Schemas['ExecuteResult']['phase'] | undefined;

  constructor(data: Partial<Schemas['ExecuteResult']> & { executionId: string }) {
    this.executionId = data.executionId;
    this.stdout = data.stdout ?? '';
    this.stderr = data.stderr ?? '';
    this.exitCode = data.exitCode ?? null;
    this.duration = data.duration ?? 0;
    this.status = (data.status ?? 'completed') as ExecStatus;
    this.truncated = data.truncated ?? false;
    this.oomKilled = data.oomKilled ?? false;
    this.language = data.language;
    this.returnValue = data.returnValue ?? null;
    this.phase = data.phase;
  }

  /** stdout followed by stderr. */
  get output(): string {
    return this.stdout + this.stderr;
  }

  /** It exited with 0. */
  get ok(): boolean {
    return this.exitCode === 0 && this.status === 'completed';
  }

  /** Throws {@link CommandTimeoutError} or {@link CommandExitError} unless it worked. */
  check(attempts: ExecResult[] = [this]): this {
    if (this.status === 'timeout') throw new CommandTimeoutError(this, attempts);
    if (!this.ok) throw new CommandExitError(this, attempts);
    return this;
  }

  /** The API's JSON shape. */
  toJSON(): Record<string, unknown> {
    return { ...(this as Record<keyof ExecResult, unknown>), output: this.output };
  }
}
