/**
 * The fluent chain: every step a sandbox method returns can be awaited, or continued with the
 * next step, which starts once the previous one has succeeded.
 * @module
 */

import type { UploadOptions, UploadResult } from './files.js';
import type { ExecResult } from './results.js';
import type { RunOptions, Sandbox } from './sandbox.js';

/**
 * A sandbox step in progress. `await` it for the step's value, or chain more steps; a failing
 * step skips the rest and rejects the chain with its error.
 *
 * @example
 * ```ts
 * await sandbox
 *   .upload('./src')
 *   .run('npm install')
 *   .run('npm run build')
 *   .download('dist/', './local-dist/')
 *   .destroy();
 * ```
 */
export class SandboxChain<T> implements PromiseLike<T> {
  /** @internal */
  constructor(
    private readonly sandbox: Sandbox,
    private readonly promise: Promise<T>,
  ) {}

  then<A = T, B = never>(
    onFulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as Promise's: errors are untyped
    onRejected?: ((reason: any) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.promise.then(onFulfilled, onRejected);
  }

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- as Promise's: errors are untyped
  catch<B = never>(onRejected?: ((reason: any) => B | PromiseLike<B>) | null): Promise<T | B> {
    return this.promise.catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<T> {
    return this.promise.finally(onFinally);
  }

  get [Symbol.toStringTag](): string {
    return 'SandboxChain';
  }

  private next<U>(step: () => PromiseLike<U>): SandboxChain<U> {
    return new SandboxChain(
      this.sandbox,
      this.promise.then(() => step()),
    );
  }

  /** Then uploads (see `sandbox.upload`). */
  upload(local: string, remote?: string | UploadOptions, options?: UploadOptions): SandboxChain<UploadResult> {
    return this.next(() => this.sandbox.upload(local, remote, options));
  }

  /** Then runs a command or code (see `sandbox.run`); a failure stops the chain. */
  run(code: string, options?: RunOptions): SandboxChain<ExecResult> {
    return this.next(() => this.sandbox.run(code, options));
  }

  /** Then downloads: the bytes, or into a local path. */
  download(remote: string): SandboxChain<Buffer>;
  download(remote: string, local: string): SandboxChain<string>;
  download(remote: string, local?: string): SandboxChain<Buffer | string> {
    return this.next<Buffer | string>(() =>
      local === undefined ? this.sandbox.download(remote) : this.sandbox.download(remote, local),
    );
  }

  /** Then sets environment variables. */
  setEnv(values: Record<string, string>): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.env.set(values).then(() => this.sandbox));
  }

  /** Then pauses. */
  pause(): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.pause());
  }

  /** Then resumes. */
  resume(): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.resume());
  }

  /** Then restarts. */
  restart(): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.restart());
  }

  /** Then stops. */
  stop(): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.stop());
  }

  /** Then starts. */
  start(): SandboxChain<Sandbox> {
    return this.next(() => this.sandbox.start());
  }

  /** Then destroys the sandbox. */
  destroy(): SandboxChain<void> {
    return this.next(() => this.sandbox.destroy());
  }
}
