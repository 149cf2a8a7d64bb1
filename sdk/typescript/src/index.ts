/// <reference types="node" preserve="true" />
/**
 * `@vibebox/sdk`: isolated Docker sandboxes for AI agents, from Node.js.
 *
 * @example
 * ```ts
 * import { VibeBox } from '@vibebox/sdk';
 *
 * const vb = new VibeBox();                       // VIBEBOX_API_KEY, VIBEBOX_API_URL
 * const sandbox = await vb.sandbox('node-20');
 * console.log((await sandbox.run('return 6 * 7')).returnValue); // 42
 * ```
 * @module
 */

export { VibeBox, DEFAULT_URL, type VibeBoxOptions } from './client.js';
export { Sandbox, BackgroundProcess, type ExecOptions, type RunOptions, type ShareOptions } from './sandbox.js';
export { SandboxChain } from './chain.js';
export {
  CodeExecution,
  Context,
  Contexts,
  Result,
  type ContextInfo,
  type CreateContextOptions,
  type ExecutionError,
  type RunCodeOptions,
} from './contexts.js';
export { withoutQuery, type Port, type PreviewUrl, type PreviewUrlOptions } from './preview.js';
export { CommandStream, type OutputStream, type Signal, type StreamSocket } from './command.js';
export { Terminal, type TerminalOptions } from './terminal.js';
export { ExecResult, type ExecStatus } from './results.js';
export { LogSubscription, type LogEntry, type LogFilter, type LogLevel, type LogOptions } from './logs.js';
export { Files, type FileEntry, type UploadOptions, type UploadResult } from './files.js';
export { FileWatch, type FileEvent, type WatchOptions } from './watch.js';
export { Env, type EnvInput, type EnvValue } from './env.js';
export * from './git.js';
export { Packages, type InstallOptions, type Package, type PackageManager } from './packages.js';
export * from './claude.js';
export * from './keys.js';
export * from './orgs.js';
export * from './errors.js';
export * from './webhooks.js';
export * from './webhook-endpoints.js';
export * from './marketplace.js';
export * from './billing.js';
export { seconds, type Duration } from './durations.js';
export { VERSION } from './version.js';
export type {
  AuditEntry,
  CreateOptions,
  NetworkChanges,
  NetworkPolicy,
  ExecutionDetail,
  ExecutionRecord,
  GitAuth,
  GitSource,
  Grant,
  GrantAccess,
  Invitation,
  ListOptions,
  Member,
  Organization,
  Permission,
  Role,
  SandboxInfo,
  SandboxMetrics,
  Schemas,
  Snapshot,
  Team,
  Template,
} from './types.js';
export type { components, paths, operations } from './generated/openapi.js';
