/**
 * `sandbox.files`: upload, download, read, write, list, delete, mkdir and move sandbox files.
 *
 * Relative sandbox paths start at `/workspace`. Uploads of a file stream it from disk as the
 * request body; directories and glob patterns travel as one tar archive, streamed too, that the
 * server checks and extracts. A downloaded directory comes as a tar and is unpacked as it
 * arrives, confined to the local directory.
 * @module
 */

import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { FileNotFoundError, ValidationError } from './errors.js';
import { select, type Selection } from './glob.js';
import { LONG, filePath, sandboxPath } from './paths.js';
import { extractTar, fileChunks, tarChunks, tarSize } from './tar.js';
import { FileWatch, type FileEvent, type WatchOptions } from './watch.js';
import type { Call, RequestBody, Transport } from './transport.js';
import type { Schemas } from './types.js';

/**
 * Called as bytes go by: `done` so far of `total` (0 when the server did not say).
 * @example
 * ```ts
 * const onProgress: Progress = (done, total) => console.log(`${done}/${total}`);
 * ```
 */
export type Progress = (done: number, total: number) => void;

/**
 * Options of {@link Files.upload}.
 * @example
 * ```ts
 * const options: UploadOptions = { exclude: ['node_modules', 'dist'], onProgress: (d, t) => console.log(d, t) };
 * ```
 */
export interface UploadOptions {
  /** Names or patterns left out: they match the relative path or any of its segments. */
  exclude?: string[];
  /** A single file's mode (`0o755`); default: the local file's permission bits. */
  mode?: number;
  onProgress?: Progress;
}

/**
 * Options of downloads.
 * @example
 * ```ts
 * await sandbox.files.download('big.bin', { onProgress: (done) => console.log(done) });
 * ```
 */
export interface DownloadOptions {
  onProgress?: Progress;
}

/**
 * What the server answers to an upload: a file's `path`, `size` and `mode` (`"0644"`), or an
 * archive's extraction `path` and its number of `entries`.
 * @example
 * ```ts
 * const { path, size } = await sandbox.files.write('a.txt', 'hi'); // "/workspace/a.txt", 2
 * ```
 */
export interface UploadResult {
  path: string;
  size?: number;
  mode?: string;
  entries?: number;
}

/**
 * One entry of {@link Files.list}, as the server sends it.
 * @example
 * ```ts
 * const entry: FileEntry = (await sandbox.files.list())[0]!;
 * console.log(entry.path, entry.isDir ? 'dir' : `${entry.size} bytes`);
 * ```
 */
export type FileEntry = Schemas['FileEntry'];

const ARCHIVE_TYPES = ['application/x-tar', 'application/gzip'];

/** A stream over chunks that reports progress and remembers a failure of its source. */
function progressStream(
  chunks: AsyncIterable<Uint8Array>,
  total: number,
  onProgress: Progress | undefined,
  failed: (error: unknown) => void,
): ReadableStream<Uint8Array> {
  const iterator = chunks[Symbol.asyncIterator]();
  let done = 0;
  return new ReadableStream<Uint8Array>({
    start: () => onProgress?.(0, total),
    async pull(controller) {
      try {
        const next = await iterator.next();
        if (next.done) return controller.close();
        done += next.value.length;
        controller.enqueue(next.value);
        onProgress?.(done, total);
      } catch (error) {
        failed(error);
        controller.error(error);
      }
    },
    async cancel() {
      await iterator.return?.();
    },
  });
}

/** The response body's chunks with progress (the transport already turns a broken or stalled read into a VibeBoxError). */
async function* responseChunks(response: Response, onProgress?: Progress): AsyncGenerator<Uint8Array> {
  const total = Number(response.headers.get('content-length') ?? 0) || 0;
  let done = 0;
  onProgress?.(0, total);
  for await (const chunk of response.body ?? []) {
    done += chunk.length;
    onProgress?.(done, total);
    yield chunk;
  }
}

/** True when the answer is a directory's archive (a file, even `x.tar`, comes with its length). */
function isDirectoryArchive(response: Response): boolean {
  const type = (response.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? '';
  return ARCHIVE_TYPES.includes(type) && !response.headers.has('content-length');
}

function gunzipped(response: Response, chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const gzip = response.headers.get('content-type')?.startsWith('application/gzip');
  return gzip ? (Readable.from(chunks).pipe(createGunzip()) as AsyncIterable<Uint8Array>) : chunks;
}

/** `dist/` → `dist`; `/` stays. */
function trimSlash(remote: string): string {
  return remote.replace(/(.)\/+$/, '$1');
}

async function isDirectory(local: string): Promise<boolean> {
  return (await fs.stat(local).catch(() => undefined))?.isDirectory() ?? false;
}

/** Where a downloaded file goes: into `local` when it is a directory or ends with a separator. */
async function fileTarget(remote: string, local: string): Promise<string> {
  const intoDirectory = local.endsWith('/') || local.endsWith(path.sep) || (await isDirectory(local));
  return intoDirectory ? path.join(local, path.posix.basename(trimSlash(remote))) : local;
}

/** Writes chunks to a temporary file next to `target`, renamed into place once complete. */
async function saveFile(target: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(target)), { recursive: true });
  const partial = `${target}.${process.pid}-${Math.random().toString(36).slice(2, 8)}.part`;
  try {
    const handle = await fs.open(partial, 'wx');
    try {
      for await (const chunk of chunks) await handle.write(chunk);
    } finally {
      await handle.close();
    }
    await fs.rename(partial, target);
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw error;
  }
}

/**
 * The files of one sandbox: `sandbox.files`.
 *
 * @example
 * ```ts
 * await sandbox.files.upload('./local.txt', '/workspace/remote.txt');
 * await sandbox.files.uploadDir('./src', '/workspace/src');
 * const content = await sandbox.files.download('/workspace/output.txt'); // Buffer
 * const files = await sandbox.files.list('/workspace');
 * await sandbox.files.delete('/workspace/temp.txt');
 * ```
 */
export class Files {
  /**
   * @param transport the client's connection to the server
   * @param sandboxId the sandbox's id, read at each call
   * @example
   * ```ts
   * const files = new Files(transport, () => 'sbx_123');
   * ```
   */
  constructor(
    private readonly transport: Transport,
    private readonly sandboxId: () => string,
  ) {}

  /**
   * Uploads a local file, a directory (as one archive) or the files matching a glob pattern.
   *
   * - a file lands at `remote` (ending in `/`: into that directory), default `/workspace/<name>`,
   *   with its local mode unless `mode` says otherwise;
   * - a directory's contents land in `remote`, default `/workspace/<name>`, modes kept;
   * - a pattern's files keep their paths relative to the pattern's fixed part, under `remote`
   *   (default `/workspace`).
   *
   * `exclude` drops paths with a matching segment or path (`node_modules`, `*.log`). Symlinks
   * inside the tree are sent as symlinks; absolute ones and ones leading out are left out.
   * Throws {@link FileNotFoundError} (`local_file_not_found`) when nothing local matches.
   * @example
   * ```ts
   * await sandbox.files.upload('./package.json');                 // /workspace/package.json
   * await sandbox.files.upload('./src');                          // /workspace/src/…
   * await sandbox.files.upload('./local.json', '/app/config.json');
   * await sandbox.files.upload('./src/*.ts', { exclude: ['node_modules', 'dist'] });
   * ```
   */
  async upload(local: string, remote?: string | UploadOptions, options: UploadOptions = {}): Promise<UploadResult> {
    const [destination, settings] = typeof remote === 'object' ? [undefined, remote] : [remote, options];
    const selection = await select(local, destination, settings.exclude);
    return selection.singleFile ? this.sendFile(selection, settings) : this.sendArchive(selection, settings);
  }

  /**
   * Uploads a directory's contents to `remote` (default `/workspace/<name>`) as one archive;
   * throws {@link ValidationError} (`not_a_directory`) for anything else.
   * @example
   * ```ts
   * await sandbox.files.uploadDir('./src', '/workspace/src', { exclude: ['*.test.ts'] });
   * ```
   */
  async uploadDir(local: string, remote?: string | UploadOptions, options: UploadOptions = {}): Promise<UploadResult> {
    const stat = await fs.stat(local).catch(() => undefined);
    if (!stat) {
      throw new FileNotFoundError(`no local directory ${JSON.stringify(local)}`, {
        code: 'local_file_not_found',
        details: { path: local },
      });
    }
    if (!stat.isDirectory()) {
      throw new ValidationError(`not a directory: ${JSON.stringify(local)}`, {
        code: 'not_a_directory',
        details: { path: local },
      });
    }
    return this.upload(local, remote, options);
  }

  /**
   * Writes `data` (text as UTF-8) to the file at `remote`; missing parents are created.
   * @example
   * ```ts
   * await sandbox.files.write('run.sh', '#!/bin/sh\necho hi\n', { mode: 0o755 });
   * ```
   */
  async write(remote: string, data: string | Uint8Array, options: { mode?: number } = {}): Promise<UploadResult> {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return this.post(remote, 'application/octet-stream', bytes.length, () => bytes, options.mode);
  }

  /**
   * A sandbox file's bytes (a directory comes as its tar archive).
   * Throws {@link FileNotFoundError} when it is missing.
   * @example
   * ```ts
   * const bundle = await sandbox.files.download('dist/bundle.js');
   * ```
   */
  async download(remote: string, options: DownloadOptions = {}): Promise<Buffer> {
    const response = await this.get(remote);
    const parts: Uint8Array[] = [];
    for await (const chunk of responseChunks(response, options.onProgress)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /**
   * Same as {@link Files.download}.
   * @example
   * ```ts
   * const data = await sandbox.files.read('/workspace/out.bin');
   * ```
   */
  async read(remote: string, options: DownloadOptions = {}): Promise<Buffer> {
    return this.download(remote, options);
  }

  /**
   * A sandbox file's text.
   * @example
   * ```ts
   * const config = JSON.parse(await sandbox.files.readText('package.json'));
   * ```
   */
  async readText(remote: string, encoding: BufferEncoding = 'utf8'): Promise<string> {
    return (await this.download(remote)).toString(encoding);
  }

  /**
   * Saves a sandbox file to `local` (a file path, or into `local` when it is a directory or ends
   * with a separator), or unpacks a sandbox directory's contents into the directory `local`, as
   * they arrive. Nothing lands outside `local`: an archive entry that would (absolute, `..`, a
   * link leading out) throws {@link ValidationError} (`invalid_archive`). Answers where it went.
   * @example
   * ```ts
   * await sandbox.files.downloadTo('dist/bundle.js', './out/');   // ./out/bundle.js
   * await sandbox.files.downloadTo('dist/', './local-dist/');      // dist's contents in ./local-dist
   * ```
   */
  async downloadTo(remote: string, local: string, options: DownloadOptions = {}): Promise<string> {
    const response = await this.get(remote);
    const chunks = responseChunks(response, options.onProgress);
    try {
      if (isDirectoryArchive(response)) {
        await extractTar(gunzipped(response, chunks), local, { stripTop: true });
        return local;
      }
      const target = await fileTarget(remote, local);
      await saveFile(target, chunks);
      return target;
    } finally {
      await chunks.return(undefined);
    }
  }

  /**
   * The entries of a directory (everything below it with `recursive`; a file lists itself).
   * @example
   * ```ts
   * const files = await sandbox.files.list('/workspace', { recursive: true });
   * console.log(files.filter((f) => !f.isDir).map((f) => f.path));
   * ```
   */
  async list(remote = '/workspace', options: { recursive?: boolean } = {}): Promise<FileEntry[]> {
    const query = { path: remote, recursive: options.recursive ? 'true' : 'false' };
    const answer = await this.transport.json<{ path: string; entries: FileEntry[] }>({
      method: 'GET',
      path: sandboxPath(this.sandboxId(), 'files'),
      query,
    });
    return answer.entries;
  }

  /**
   * True when something (file, directory, symlink) is at `remote`.
   * @example
   * ```ts
   * if (!(await sandbox.files.exists('node_modules'))) await sandbox.run('npm ci');
   * ```
   */
  async exists(remote: string): Promise<boolean> {
    try {
      await this.list(remote);
      return true;
    } catch (error) {
      if (error instanceof FileNotFoundError) return false;
      throw error;
    }
  }

  /**
   * Deletes a file, or a directory with `recursive: true` (without it: `ConflictError`,
   * code `file_conflict`).
   * @example
   * ```ts
   * await sandbox.files.delete('build', { recursive: true });
   * ```
   */
  async delete(remote: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.transport.json<undefined>({
      method: 'DELETE',
      path: filePath(this.sandboxId(), remote),
      query: { recursive: options.recursive ? 'true' : undefined },
    });
  }

  /**
   * Creates a directory and its parents (an existing one is fine).
   * @example
   * ```ts
   * await sandbox.files.mkdir('out/reports');
   * ```
   */
  async mkdir(remote: string): Promise<{ path: string }> {
    return this.transport.json<{ path: string }>({
      method: 'POST',
      path: sandboxPath(this.sandboxId(), 'files', 'mkdir'),
      json: { path: remote },
    });
  }

  /**
   * Renames `source` to `destination` (the new path itself), creating its parents; an existing
   * destination is a `ConflictError` (`file_conflict`) unless `overwrite`.
   * @example
   * ```ts
   * await sandbox.files.move('out.txt', 'archive/out-1.txt', { overwrite: true });
   * ```
   */
  async move(source: string, destination: string, options: { overwrite?: boolean } = {}): Promise<{ path: string }> {
    return this.transport.json<{ path: string }>({
      method: 'POST',
      path: sandboxPath(this.sandboxId(), 'files', 'move'),
      json: { source, destination, overwrite: options.overwrite ?? false },
    });
  }

  /**
   * Watches a directory (relative paths start at /workspace) for changes: `callback` gets each
   * {@link FileEvent} (absolute paths). Resolves once the watch is in place; `stop()` ends it.
   * The watch outlives a pause and resume of the sandbox, and opens itself again when its
   * connection drops (then an `overflow` event with reason `reconnect`: rescan).
   * @example
   * ```ts
   * const watch = await sandbox.files.watch('/workspace', (event) => console.log(event.type, event.path), {
   *   recursive: true,
   *   excludes: ['node_modules'],
   * });
   * await sandbox.exec('touch /workspace/a.txt');
   * watch.stop();
   * ```
   */
  async watch(remote: string, callback: (event: FileEvent) => unknown, options: WatchOptions = {}): Promise<FileWatch> {
    const root = path.posix.resolve('/workspace', remote || '/workspace');
    return FileWatch.start(this.transport, this.sandboxId(), root, callback, options);
  }

  private async sendFile(selection: Selection, options: UploadOptions): Promise<UploadResult> {
    const [entry] = selection.entries;
    const size = entry?.size ?? 0;
    const source = entry?.source ?? '';
    const mode = options.mode ?? (process.platform === 'win32' ? undefined : entry?.mode);
    const chunks = () => fileChunks(source, size);
    return this.post(selection.remote, 'application/octet-stream', size, chunks, mode, options.onProgress);
  }

  private async sendArchive(selection: Selection, options: UploadOptions): Promise<UploadResult> {
    const size = tarSize(selection.entries);
    const chunks = () => tarChunks(selection.entries);
    return this.post(selection.remote, 'application/x-tar', size, chunks, undefined, options.onProgress);
  }

  /** POSTs a body (bytes, or chunks streamed afresh for each attempt) to `files?path=`. */
  private async post(
    remote: string,
    type: string,
    size: number,
    content: () => Uint8Array | AsyncIterable<Uint8Array>,
    mode?: number,
    onProgress?: Progress,
  ): Promise<UploadResult> {
    let failure: unknown;
    const body = (): RequestBody => {
      const made = content();
      if (made instanceof Uint8Array) return made;
      return progressStream(made, size, onProgress, (error) => (failure = error));
    };
    const call: Call = {
      method: 'POST',
      path: sandboxPath(this.sandboxId(), 'files'),
      query: { path: remote, mode: mode === undefined ? undefined : (mode & 0o7777).toString(8) },
      headers: { 'Content-Type': type, 'Content-Length': String(size) },
      body,
      timeout: LONG,
    };
    try {
      return await this.transport.json<UploadResult>(call);
    } catch (error) {
      throw failure ?? error;
    }
  }

  private get(remote: string): Promise<Response> {
    return this.transport.send({ method: 'GET', path: filePath(this.sandboxId(), trimSlash(remote)), timeout: LONG });
  }
}
