/**
 * Tar archives without dependencies: a ustar writer (headers, sizes, a streamed archive of local
 * files), a streaming reader over chunks of bytes, and a confined extractor.
 *
 * The writer makes what the server's Python `tarfile` reads: ustar headers with UTF-8 names, a
 * GNU long-name entry (`././@LongLink`) before a name or link target over 100 bytes, and a
 * base-256 size above 8 GiB. (Not PAX `path` records: the server re-packs uploads under their
 * destination, and tarfile would carry an old PAX path over the new name.) The reader understands
 * ustar, PAX (local and global headers), GNU long names and base-256 numbers.
 * @module
 */

import type { Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { ValidationError } from './errors.js';

/** Bytes in a tar block. @example `archive.length % BLOCK === 0` */
export const BLOCK = 512;
const CHUNK = 256 * 1024;
const MAX_META = 1024 * 1024;
const MAX_OCTAL_SIZE = 0o77777777777;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * What the writer needs of one entry. `name` is relative, with `/` separators.
 * @example
 * ```ts
 * const header: TarHeader = { name: 'bin/run.sh', type: 'file', mode: 0o755, size: 42 };
 * ```
 */
export interface TarHeader {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Permission bits (`0o755`). */
  mode: number;
  /** Bytes of content (files only). */
  size?: number;
  /** Modification time, Unix seconds. */
  mtime?: number;
  /** A symlink's target. */
  linkname?: string;
}

/**
 * An entry read from an archive; `content` yields a file's bytes (read it before the next entry).
 * @example
 * ```ts
 * for await (const entry of readTar(chunks)) if (entry.type === 'file') for await (const c of entry.content) use(c);
 * ```
 */
export interface TarEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link' | 'other';
  mode: number;
  size: number;
  mtime: number;
  /** A symlink's target, or a hard link's archive path. */
  linkname: string;
  /** The type flag as written (`0`, `5`, `2`, `1`, `3`…). */
  flag: string;
  content: AsyncIterable<Uint8Array>;
}

/**
 * A local file to pack: its header, and where its content is read from (files only).
 * @example
 * ```ts
 * const entry: PackEntry = { name: 'a.txt', type: 'file', mode: 0o644, size: 5, source: '/tmp/a.txt' };
 * ```
 */
export interface PackEntry extends TarHeader {
  source?: string;
}

// ---- writing ----

function writeString(block: Uint8Array, offset: number, length: number, value: string): void {
  block.set(encoder.encode(value).subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, offset: number, length: number, value: number): void {
  const digits = Math.max(0, Math.floor(value)).toString(8).padStart(length - 1, '0');
  writeString(block, offset, length - 1, digits.slice(-(length - 1)));
}

function fitsUstar(value: string): boolean {
  return encoder.encode(value).length <= 100;
}

function writeSize(block: Uint8Array, size: number): void {
  if (size <= MAX_OCTAL_SIZE) return writeOctal(block, 124, 12, size);
  block[124] = 0x80; // base-256, as GNU tar and Python's tarfile read it
  for (let i = 135, rest = size; i > 124; i--, rest = Math.floor(rest / 256)) block[i] = rest % 256;
}

function ustarBlock(
  name: string,
  flag: string,
  mode: number,
  size: number,
  mtime: number,
  linkname: string,
): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, mode & 0o7777);
  writeOctal(block, 108, 8, 0);
  writeOctal(block, 116, 8, 0);
  writeSize(block, size);
  writeOctal(block, 136, 12, Math.min(Math.max(mtime, 0), MAX_OCTAL_SIZE));
  writeString(block, 156, 1, flag);
  writeString(block, 157, 100, linkname);
  writeString(block, 257, 8, 'ustar\u000000');
  block.fill(0x20, 148, 156);
  const sum = block.reduce((total, byte) => total + byte, 0);
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\u0000 `);
  return block;
}

/** A GNU long name (`L`) or long link (`K`) entry: the value, NUL-terminated, as its content. */
function longLink(flag: 'L' | 'K', value: string): Uint8Array {
  const data = encoder.encode(`${value}\u0000`);
  const out = new Uint8Array(BLOCK + data.length + padding(data.length));
  out.set(ustarBlock('././@LongLink', flag, 0o644, data.length, 0, ''), 0);
  out.set(data, BLOCK);
  return out;
}

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function entryName(header: TarHeader): string {
  const name = header.name.replace(/\/+$/, '');
  return header.type === 'directory' ? `${name}/` : name;
}

const FLAGS = { file: '0', directory: '5', symlink: '2' } as const;

/**
 * The header block(s) of one entry: GNU long-name entries first when the name or the link target
 * is over 100 bytes.
 * @example
 * ```ts
 * tarHeader({ name: 'src/index.ts', type: 'file', mode: 0o644, size: 12 }).length; // 512
 * ```
 */
export function tarHeader(header: TarHeader): Uint8Array {
  const name = entryName(header);
  const link = header.linkname ?? '';
  const size = header.type === 'file' ? (header.size ?? 0) : 0;
  const mtime = Math.floor(header.mtime ?? Date.now() / 1000);
  const parts: Uint8Array[] = [];
  if (!fitsUstar(link)) parts.push(longLink('K', link));
  if (!fitsUstar(name)) parts.push(longLink('L', name));
  parts.push(ustarBlock(name, FLAGS[header.type], header.mode, size, mtime, link));
  return parts.length === 1 ? (parts[0] as Uint8Array) : Buffer.concat(parts);
}

/**
 * The bytes of a whole archive of these entries (headers, contents, padding, end blocks).
 * @example
 * ```ts
 * tarSize([{ name: 'a.txt', type: 'file', mode: 0o644, size: 5 }]); // 2048
 * ```
 */
export function tarSize(entries: Iterable<TarHeader>): number {
  let total = 2 * BLOCK;
  for (const entry of entries) {
    const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
    total += tarHeader(entry).length + size + padding(size);
  }
  return total;
}

/**
 * The first `size` bytes of a local file, in chunks; throws {@link ValidationError}
 * (`local_file_changed`) when the file is shorter by then.
 * @example
 * ```ts
 * for await (const chunk of fileChunks('./data.bin', 1024)) console.log(chunk.length);
 * ```
 */
export async function* fileChunks(source: string, size: number): AsyncGenerator<Uint8Array> {
  const handle = await fs.open(source, 'r');
  try {
    for (let done = 0; done < size; ) {
      const buffer = new Uint8Array(Math.min(CHUNK, size - done));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, done);
      if (bytesRead === 0) {
        throw new ValidationError(`${source} became shorter while it was being uploaded`, {
          code: 'local_file_changed',
          details: { path: source },
        });
      }
      done += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/**
 * The archive of these entries, chunk by chunk; files are read from `source` as it goes (a file
 * that shrank meanwhile throws; bytes added meanwhile are left out).
 * @example
 * ```ts
 * for await (const chunk of tarChunks([{ name: 'a.txt', type: 'file', mode: 0o644, size: 5, source: './a.txt' }])) {
 *   process.stdout.write(chunk);
 * }
 * ```
 */
export async function* tarChunks(entries: Iterable<PackEntry>): AsyncGenerator<Uint8Array> {
  for (const entry of entries) {
    yield tarHeader(entry);
    if (entry.type !== 'file' || !entry.size) continue;
    yield* fileChunks(entry.source ?? '', entry.size);
    const pad = padding(entry.size);
    if (pad) yield new Uint8Array(pad);
  }
  yield new Uint8Array(2 * BLOCK);
}

/**
 * A whole small archive in memory (for tests and tiny payloads).
 * @example
 * ```ts
 * const bytes = tarBytes([{ name: 'hello.txt', type: 'file', mode: 0o644, data: 'hi\n' }]);
 * ```
 */
export function tarBytes(entries: Array<TarHeader & { data?: string | Uint8Array }>): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const entry of entries) {
    const data = typeof entry.data === 'string' ? encoder.encode(entry.data) : (entry.data ?? new Uint8Array());
    parts.push(tarHeader({ ...entry, size: data.length }));
    if (entry.type === 'file') parts.push(data, new Uint8Array(padding(data.length)));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  return Buffer.concat(parts);
}

// ---- reading ----

function invalid(message: string, entry?: string): ValidationError {
  return new ValidationError(message, { code: 'invalid_archive', details: entry === undefined ? {} : { entry } });
}

/** Bytes from an async iterable of chunks, taken exactly as asked. */
class ByteReader {
  private readonly chunks: AsyncIterator<Uint8Array>;
  private buffer: Uint8Array = new Uint8Array();

  constructor(source: AsyncIterable<Uint8Array>) {
    this.chunks = source[Symbol.asyncIterator]();
  }

  /** Has bytes buffered, reading the next chunk if needed; false at the end. */
  private async fill(): Promise<boolean> {
    while (this.buffer.length === 0) {
      const next = await this.chunks.next();
      if (next.done) return false;
      this.buffer = next.value;
    }
    return true;
  }

  /** Up to `limit` bytes as they come (at least one), or undefined at the end. */
  async some(limit: number): Promise<Uint8Array | undefined> {
    if (!(await this.fill())) return undefined;
    const piece = this.buffer.subarray(0, limit);
    this.buffer = this.buffer.subarray(piece.length);
    return piece;
  }

  /** Exactly `size` bytes; undefined when the source ended before the first; throws when it ended inside. */
  async exactly(size: number): Promise<Uint8Array | undefined> {
    const out = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const piece = await this.some(size - done);
      if (!piece) {
        if (done === 0) return undefined;
        throw invalid('the archive ends in the middle of an entry');
      }
      out.set(piece, done);
      done += piece.length;
    }
    return out;
  }

  /** Skips `size` bytes (fewer when the source ends first). */
  async skip(size: number): Promise<void> {
    for (let left = size; left > 0; ) {
      const piece = await this.some(Math.min(left, CHUNK));
      if (!piece) return;
      left -= piece.length;
    }
  }

  /** Reads to the end of the source. */
  async drain(): Promise<void> {
    while (await this.some(CHUNK));
  }

  /** Stops the source (a response body is cancelled). */
  async close(): Promise<void> {
    await this.chunks.return?.();
  }
}

/** One entry's bytes, read from the archive as the consumer asks; the rest is skipped after. */
class Content implements AsyncIterable<Uint8Array> {
  private left: number;
  private closed = false;

  constructor(
    private readonly reader: ByteReader,
    size: number,
  ) {
    this.left = size;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    while (this.left > 0 && !this.closed) {
      const piece = await this.reader.some(Math.min(this.left, CHUNK));
      if (!piece) throw invalid('the archive ends in the middle of an entry');
      this.left -= piece.length;
      yield piece;
    }
  }

  /** No more reading; answers the bytes left unread. */
  close(): number {
    this.closed = true;
    return this.left;
  }
}

function readString(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return decoder.decode(end < 0 ? field : field.subarray(0, end));
}

function readNumber(block: Uint8Array, offset: number, length: number): number {
  const field = block.subarray(offset, offset + length);
  if ((field[0] ?? 0) & 0x80) {
    let value = (field[0] ?? 0) & 0x7f;
    for (const byte of field.subarray(1)) value = value * 256 + byte;
    return value;
  }
  const text = readString(block, offset, length).trim();
  return text ? parseInt(text, 8) || 0 : 0;
}

function checksumOk(block: Uint8Array): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === readNumber(block, 148, 8);
}

function parsePax(data: Uint8Array): Record<string, string> {
  const records: Record<string, string> = {};
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    const length = parseInt(decoder.decode(data.subarray(offset, space)), 10);
    if (space < 0 || !(length > 0)) break;
    const record = decoder.decode(data.subarray(space + 1, offset + length - 1));
    const equals = record.indexOf('=');
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    offset += length;
  }
  return records;
}

const TYPES: Record<string, TarEntry['type']> = {
  '0': 'file',
  '': 'file',
  '7': 'file',
  '5': 'directory',
  '2': 'symlink',
  '1': 'link',
};

interface Pending {
  pax: Record<string, string>;
  global: Record<string, string>;
  longName?: string;
  longLink?: string;
}

function headerName(block: Uint8Array): string {
  const name = readString(block, 0, 100);
  const posix = readString(block, 257, 6) === 'ustar';
  const prefix = posix ? readString(block, 345, 155) : '';
  return prefix ? `${prefix}/${name}` : name;
}

function entryFrom(block: Uint8Array, pending: Pending): Omit<TarEntry, 'content'> {
  const fields = { ...pending.global, ...pending.pax };
  const flag = readString(block, 156, 1);
  const type = TYPES[flag] ?? 'other';
  const size = fields.size !== undefined ? Number(fields.size) : readNumber(block, 124, 12);
  return {
    name: (fields.path ?? pending.longName ?? headerName(block)).replace(/(.)\/+$/, '$1'),
    type,
    flag: flag || '0',
    mode: readNumber(block, 100, 8),
    size: type === 'directory' || type === 'symlink' || type === 'link' ? 0 : size,
    mtime: fields.mtime !== undefined ? Number(fields.mtime) : readNumber(block, 136, 12),
    linkname: fields.linkpath ?? pending.longLink ?? readString(block, 157, 100),
  };
}

async function metadata(reader: ByteReader, size: number): Promise<Uint8Array> {
  if (size > MAX_META) throw invalid(`an extended header of ${size} bytes is too large`);
  const data = (await reader.exactly(size + padding(size))) ?? new Uint8Array();
  if (data.length < size) throw invalid('the archive ends in an extended header');
  return data.subarray(0, size);
}

/** Applies an extended header block (PAX, GNU long name); false for a real entry. */
async function extended(reader: ByteReader, block: Uint8Array, pending: Pending): Promise<boolean> {
  const flag = readString(block, 156, 1);
  if (!['x', 'g', 'L', 'K'].includes(flag)) return false;
  const data = await metadata(reader, readNumber(block, 124, 12));
  if (flag === 'x') pending.pax = { ...pending.pax, ...parsePax(data) };
  if (flag === 'g') pending.global = { ...pending.global, ...parsePax(data) };
  const text = readString(data, 0, data.length);
  if (flag === 'L') pending.longName = text;
  if (flag === 'K') pending.longLink = text;
  return true;
}

/**
 * The entries of a tar archive read from chunks of bytes, one at a time: nothing but the current
 * header is held in memory. Read each entry's `content` before asking for the next (what is left
 * unread is skipped). Throws {@link ValidationError} (`invalid_archive`) on a damaged archive.
 * @example
 * ```ts
 * for await (const entry of readTar(response.body)) {
 *   console.log(entry.type, entry.name, entry.size);
 * }
 * ```
 */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarEntry> {
  const reader = new ByteReader(source);
  try {
    let pending: Pending = { pax: {}, global: {} };
    for (;;) {
      const block = await reader.exactly(BLOCK);
      if (!block || block.every((byte) => byte === 0)) break;
      if (!checksumOk(block)) throw invalid('not a tar archive (bad header checksum)');
      if (await extended(reader, block, pending)) continue;
      const header = entryFrom(block, pending);
      pending = { pax: {}, global: pending.global };
      const content = new Content(reader, header.size);
      yield { ...header, content };
      await reader.skip(content.close() + padding(header.size));
    }
    await reader.drain();
  } finally {
    await reader.close();
  }
}

// ---- extracting ----

/**
 * How {@link extractTar} treats the archive.
 * @example
 * ```ts
 * await extractTar(chunks, './out', { stripTop: true } satisfies ExtractOptions);
 * ```
 */
export interface ExtractOptions {
  /** Drop each entry's first path segment (a directory download's top entry, its own name). */
  stripTop?: boolean;
}

function unsafe(entry: string, reason: string): ValidationError {
  return new ValidationError(`refused archive entry ${JSON.stringify(entry)}: ${reason}`, {
    code: 'invalid_archive',
    details: { entry, reason },
  });
}

/** The entry's path segments below the destination; throws on absolute paths and `..`. */
function segments(name: string, stripTop: boolean): string[] {
  if (name.startsWith('/') || /^[a-zA-Z]:/.test(name) || name.includes('\\')) {
    throw unsafe(name, 'absolute paths are not allowed');
  }
  const parts = name.split('/').filter((part) => part !== '' && part !== '.');
  if (parts.includes('..')) throw unsafe(name, "'..' is not allowed");
  return stripTop ? parts.slice(1) : parts;
}

function inside(root: string, target: string): boolean {
  const relative = path.relative(root, target);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

async function lstatOrUndefined(target: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * Where `relative` leads from the real directory `from`, following the symlinks that exist on
 * disk (like Python's `os.path.realpath`; missing parts are taken as they are).
 */
async function resolveOnDisk(from: string, relative: string, depth = 0): Promise<string> {
  if (depth > 40) throw new ValidationError('too many levels of symbolic links', { code: 'invalid_archive' });
  let current = path.isAbsolute(relative) ? path.parse(from).root : from;
  for (const part of relative.split(/[\\/]/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current = path.dirname(current);
      continue;
    }
    const next = path.join(current, part);
    const stat = await lstatOrUndefined(next);
    current = stat?.isSymbolicLink() ? await resolveOnDisk(current, await fs.readlink(next), depth + 1) : next;
  }
  return current;
}

/** The entry's real parent directory (created), checked to be inside `root`. */
async function parentInside(root: string, parts: string[], name: string): Promise<string> {
  const parent = await resolveOnDisk(root, parts.slice(0, -1).join('/'));
  if (!inside(root, parent)) throw unsafe(name, 'it would be written outside the destination');
  await fs.mkdir(parent, { recursive: true });
  return parent;
}

/** Removes a file or symlink in the way (never a directory). */
async function clear(target: string): Promise<void> {
  const stat = await lstatOrUndefined(target);
  if (stat && !stat.isDirectory()) await fs.unlink(target);
}

/** Python's `data` filter: no high bits, no group/other write, owner read/write, exec only if the owner has it. */
function fileMode(mode: number): number {
  let safe = mode & 0o755;
  if (!(safe & 0o100)) safe &= ~0o111;
  return safe | 0o600;
}

async function writeFile(target: string, entry: TarEntry): Promise<void> {
  await clear(target);
  const mode = fileMode(entry.mode);
  const handle = await fs.open(target, 'wx', mode);
  try {
    for await (const chunk of entry.content) await handle.write(chunk);
    await handle.chmod(mode);
  } finally {
    await handle.close();
  }
  if (entry.mtime > 0) await fs.utimes(target, entry.mtime, entry.mtime);
}

async function writeSymlink(root: string, parent: string, target: string, entry: TarEntry): Promise<void> {
  if (path.isAbsolute(entry.linkname) || entry.linkname.startsWith('/')) {
    throw unsafe(entry.name, `it links to the absolute path ${JSON.stringify(entry.linkname)}`);
  }
  if (!inside(root, await resolveOnDisk(parent, entry.linkname))) {
    throw unsafe(entry.name, `its link ${JSON.stringify(entry.linkname)} leads outside the destination`);
  }
  await clear(target);
  await fs.symlink(entry.linkname, target);
}

async function writeHardLink(root: string, target: string, entry: TarEntry, stripTop: boolean): Promise<void> {
  const linked = segments(entry.linkname, stripTop);
  const source = await resolveOnDisk(root, linked.join('/'));
  if (!linked.length || !inside(root, source)) throw unsafe(entry.name, 'its hard link leads outside the destination');
  await clear(target);
  await fs.link(source, target).catch(() => fs.copyFile(source, target));
}

/**
 * Unpacks a tar stream into `destination` (created if missing), entry by entry as it arrives,
 * confined to it: an absolute or `..` entry, a symlink or hard link leading out (through links
 * already on disk too) throws {@link ValidationError} (`invalid_archive`, `details.entry`) and is
 * not written; entries before it stay. Modes are kept as Python's `data` filter keeps them (no
 * setuid, no group/other write); owners are not; devices and fifos are skipped. Answers the
 * files written.
 * @example
 * ```ts
 * await extractTar(response.body, './out', { stripTop: true });
 * ```
 */
export async function extractTar(
  source: AsyncIterable<Uint8Array>,
  destination: string,
  options: ExtractOptions = {},
): Promise<string[]> {
  await fs.mkdir(destination, { recursive: true });
  const root = await fs.realpath(destination);
  const written: string[] = [];
  for await (const entry of readTar(source)) {
    const parts = segments(entry.name, options.stripTop ?? false);
    if (!parts.length) continue;
    const parent = await parentInside(root, parts, entry.name);
    const target = path.join(parent, parts.at(-1) ?? '');
    if (entry.type === 'directory') await fs.mkdir(target, { recursive: true });
    else if (entry.type === 'symlink') await writeSymlink(root, parent, target, entry);
    else if (entry.type === 'link') await writeHardLink(root, target, entry, options.stripTop ?? false);
    else if (entry.type === 'file') {
      await writeFile(target, entry);
      written.push(target);
    }
  }
  return written;
}
