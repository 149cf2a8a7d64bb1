/**
 * `sandbox.packages`: installing registry packages with the template's package managers.
 * @module
 */

import type { CommandStream, OutputStream } from './command.js';
import type { Duration } from './durations.js';
import { CommandExitError, CommandTimeoutError } from './errors.js';
import { body, sandboxPath } from './paths.js';
import type { ExecResult } from './results.js';
import type { Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * A package manager VibeBox drives (a template has some of them: `details.supported` of
 * `UnsupportedPackageManagerError` names them).
 * @example
 * ```ts
 * const manager: PackageManager = 'npm';
 * ```
 */
export type PackageManager = 'pip' | 'uv' | 'npm' | 'cargo' | 'gem' | 'bundler' | 'go' | 'maven';

/**
 * An installed package, as its manager lists it.
 * @example
 * ```ts
 * const [first]: Package[] = await sandbox.packages.list({ manager: 'npm' });
 * ```
 */
export type Package = Schemas['Package'];

/**
 * Options of `packages.install()`.
 * @example
 * ```ts
 * await sandbox.packages.install(['left-pad@1.3.0'], { manager: 'npm', dev: true, cwd: 'app' });
 * ```
 */
export interface InstallOptions {
  manager: PackageManager;
  /** A development dependency (npm, cargo, bundler). */
  dev?: boolean;
  /** The project directory (default /workspace). */
  cwd?: string;
  timeout?: Duration;
  /** `false`: answer a failed install's result instead of throwing `CommandExitError`. */
  check?: boolean;
  /** Called with every chunk of the install's output as it is printed. */
  onData?: (data: string, stream: OutputStream) => void;
}

/** What the sandbox gives `Packages`: how to follow a background command. */
type Follow = (data: { processId: string; executionId: string }) => { attach(): Promise<CommandStream> };

/**
 * Package installs into the sandbox's project (pip: the template's virtualenv; npm, cargo,
 * bundler, go: `cwd`), run as the sandbox's user; the install streams like a background command.
 *
 * @example
 * ```ts
 * await sandbox.packages.install(['requests==2.32.3'], { manager: 'pip' });
 * const installed = await sandbox.packages.list({ manager: 'pip' }); // [{ name, version }, …]
 * ```
 */
export class Packages {
  /** @internal */
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
    private readonly follow: Follow,
  ) {}

  /**
   * Installs package specs (`'requests==2.32.3'`, `'left-pad@1.3.0'`) and waits for the install;
   * throws `CommandExitError` when it fails (unless `check: false`).
   * @example
   * ```ts
   * const result = await sandbox.packages.install(['is-odd@3.0.1'], { manager: 'npm', onData: (d) => process.stdout.write(d) });
   * ```
   */
  async install(packages: string | string[], options: InstallOptions): Promise<ExecResult> {
    const { manager, dev, cwd, timeout, check = true, onData } = options;
    const json = body({
      manager,
      packages: typeof packages === 'string' ? [packages] : packages,
      dev: dev || undefined,
      cwd,
      timeout,
    }) satisfies Partial<Record<keyof Schemas['PackageInstallRequest'], unknown>>;
    const path = sandboxPath(this.sandboxId(), 'packages');
    const answer = await this.transport.json<Schemas['PackageInstallResult']>({ method: 'POST', path, json });
    const stream = await this.follow(answer).attach();
    if (onData) stream.onData(onData);
    const result = await stream.wait();
    if (check && result.status === 'timeout') throw new CommandTimeoutError(result);
    if (check && result.exitCode !== 0) throw new CommandExitError(result);
    return result;
  }

  /**
   * What the manager says is installed: `[{ name, version }, …]`.
   * @example
   * ```ts
   * const installed = await sandbox.packages.list({ manager: 'pip' });
   * ```
   */
  async list(options: { manager: PackageManager; cwd?: string }): Promise<Package[]> {
    const query = { manager: options.manager, cwd: options.cwd };
    const path = sandboxPath(this.sandboxId(), 'packages');
    const answer = await this.transport.json<Schemas['PackageList']>({ method: 'GET', path, query, timeout: 150_000 });
    return answer.packages;
  }
}
