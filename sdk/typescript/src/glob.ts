/**
 * Choosing the local files an upload sends: a file, a directory, or a glob pattern, less what
 * `exclude` names; and where they land in the sandbox.
 *
 * Patterns: `*` (any characters but `/`), `**` (any number of directories), `?`, character classes
 * (`[abc]`, `[a-z]`, `[!x]`), alternatives (`{ts,tsx}`). As with Python's `glob`, wildcards do not
 * match names starting with `.` unless the pattern's segment starts with `.`. An `exclude` entry
 * matches the relative path or any segment of it (`node_modules`, `*.log`, `dist/*`).
 * @module
 */

import type { Stats } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { FileNotFoundError, ValidationError } from './errors.js';
import type { PackEntry } from './tar.js';

/** Where uploads go when no destination is given. @example `${WORKSPACE}/package.json` */
export const WORKSPACE = '/workspace';

/**
 * What an upload sends: `entries` (relative names, local sources), extracted at `remote`.
 * @example
 * ```ts
 * const { remote, entries } = await select('./src'); // '/workspace/src', [...]
 * ```
 */
export interface Selection {
  /** The local directory the entries' names are relative to. */
  base: string;
  entries: PackEntry[];
  /** The sandbox path: the file itself for a single file, else the directory to extract into. */
  remote: string;
  /** One file, sent as itself (its entry's `source` is the file). */
  singleFile: boolean;
}

const MAGIC = /[*?[{]/;

/**
 * True when `text` has glob characters (`*`, `?`, `[`, `{`).
 * @example
 * ```ts
 * isGlob('./src/**\/*.ts'); // true
 * ```
 */
export function isGlob(text: string): boolean {
  return MAGIC.test(text);
}

function toPosix(text: string): string {
  return path.sep === '\\' ? text.replace(/\\/g, '/') : text;
}

/**
 * A pattern split into its fixed leading directory and the globbing rest.
 * @example
 * ```ts
 * splitGlob('./src/**\/*.ts'); // { base: './src', rest: '**\/*.ts' }
 * ```
 */
export function splitGlob(pattern: string): { base: string; rest: string } {
  const parts = toPosix(pattern).split('/');
  const first = parts.findIndex(isGlob);
  const fixed = first < 0 ? parts : parts.slice(0, first);
  const rest = first < 0 ? [] : parts.slice(first);
  const base = fixed.length === 1 && fixed[0] === '' ? '/' : fixed.join('/');
  return { base: base || '.', rest: rest.join('/') };
}

// ---- compiling patterns ----

interface Mode {
  /** `*` and `?` stop at `/`, `**` spans directories, wildcards skip dot-files (glob); else fnmatch. */
  paths: boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

/** The index of the `]` closing a class opened at `start`, or -1. */
function classEnd(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '!' || pattern[i] === '^') i++;
  if (pattern[i] === ']') i++;
  const end = pattern.indexOf(']', i);
  return end;
}

function compileClass(body: string, mode: Mode): string {
  const negated = body.startsWith('!') || body.startsWith('^');
  const inner = (negated ? body.slice(1) : body).replace(/[\\\]^[]/g, '\\$&');
  if (negated) return `[^${mode.paths ? '/' : ''}${inner}]`;
  return `[${inner}]`;
}

/** Splits `{a,b{c,d}}`'s inside at its top-level commas; undefined when unclosed. */
function braceParts(pattern: string, start: number): { parts: string[]; end: number } | undefined {
  const parts: string[] = [];
  let depth = 0;
  let from = start + 1;
  for (let i = start + 1; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '[') {
      const end = classEnd(pattern, i);
      if (end > 0) i = end;
    } else if (char === '{') depth++;
    else if (char === '}' && depth > 0) depth--;
    else if (char === '}' || (char === ',' && depth === 0)) {
      parts.push(pattern.slice(from, i));
      from = i + 1;
      if (char === '}') return { parts, end: i };
    }
  }
  return undefined;
}

function isWholeSegment(pattern: string, i: number): boolean {
  return (i === 0 || pattern[i - 1] === '/') && (i + 2 === pattern.length || pattern[i + 2] === '/');
}

const SEGMENT = '(?!\\.)[^/]*';

function compileGlobstar(pattern: string, i: number): { source: string; next: number } {
  if (i + 2 === pattern.length) return { source: `(?:${SEGMENT}(?:/${SEGMENT})*)?`, next: i + 2 };
  return { source: `(?:${SEGMENT}/)*`, next: i + 3 };
}

function compile(pattern: string, mode: Mode, startsSegment = true): string {
  let source = '';
  for (let i = 0; i < pattern.length; ) {
    const char = pattern[i] ?? '';
    const atStart = i === 0 ? startsSegment : pattern[i - 1] === '/';
    const hidden = mode.paths && atStart && '*?['.includes(char) ? '(?!\\.)' : '';
    if (char === '*' && pattern[i + 1] === '*' && mode.paths && isWholeSegment(pattern, i)) {
      const globstar = compileGlobstar(pattern, i);
      source += globstar.source;
      i = globstar.next;
    } else if (char === '*') {
      source += hidden + (mode.paths ? '[^/]*' : '.*');
      while (pattern[i] === '*') i++;
    } else if (char === '?') {
      source += hidden + (mode.paths ? '[^/]' : '.');
      i++;
    } else if (char === '[' && classEnd(pattern, i) > 0) {
      const end = classEnd(pattern, i);
      source += hidden + compileClass(pattern.slice(i + 1, end), mode);
      i = end + 1;
    } else if (char === '{' && braceParts(pattern, i)) {
      const braces = braceParts(pattern, i) ?? { parts: [], end: i };
      const alternatives = braces.parts.map((part) => compile(part, mode, atStart));
      source += `(?:${alternatives.join('|')})`;
      i = braces.end + 1;
    } else {
      source += escapeRegExp(char);
      i++;
    }
  }
  return source;
}

/**
 * A matcher for a glob pattern over relative `/`-separated paths.
 * @example
 * ```ts
 * globMatcher('**\/*.{ts,tsx}')('src/app/view.tsx'); // true
 * ```
 */
export function globMatcher(pattern: string): (relative: string) => boolean {
  const regex = new RegExp(`^${compile(toPosix(pattern), { paths: true })}$`);
  return (relative) => regex.test(relative);
}

/**
 * A matcher for `exclude` entries: true when an entry matches the relative path, or any segment
 * of it, the way Python's `fnmatch` does (`*` also spans `/`).
 * @example
 * ```ts
 * excludeMatcher(['node_modules', '*.log'])('app/node_modules/x/index.js'); // true
 * ```
 */
export function excludeMatcher(patterns: string[] = []): (relative: string) => boolean {
  const cleaned = patterns.map((p) => toPosix(p).replace(/^\.\//, '').replace(/\/+$/, '')).filter(Boolean);
  const regexes = cleaned.map((p) => new RegExp(`^${compile(p, { paths: false })}$`));
  return (relative) => {
    const parts = relative.split('/');
    return regexes.some((regex) => regex.test(relative) || parts.some((part) => regex.test(part)));
  };
}

// ---- walking ----

interface Found {
  relative: string;
  stat: Stats;
  absolute: string;
}

interface Walk {
  root: string;
  skip: (relative: string) => boolean;
  /** Deepest level to enter (a pattern without `**` does not need more). */
  maxDepth: number;
}

/** Every file, directory and symlink below `walk.root` (not into symlinked directories), sorted. */
async function* walkTree(walk: Walk, directory = '', depth = 1): AsyncGenerator<Found> {
  const names = (await fs.readdir(path.join(walk.root, directory))).sort();
  for (const name of names) {
    const relative = directory ? `${directory}/${name}` : name;
    if (walk.skip(relative)) continue;
    const absolute = path.join(walk.root, relative);
    const stat = await fs.lstat(absolute);
    yield { relative, stat, absolute };
    if (stat.isDirectory() && depth < walk.maxDepth) yield* walkTree(walk, relative, depth + 1);
  }
}

/** A symlink's target when it stays inside `root` (relative, not leading out); undefined otherwise. */
async function linkInside(root: string, found: Found): Promise<string | undefined> {
  const target = await fs.readlink(found.absolute);
  if (path.isAbsolute(target) || target.startsWith('/')) return undefined;
  const resolved = path.resolve(path.dirname(found.absolute), target);
  const relative = path.relative(root, resolved);
  if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  return toPosix(target);
}

function seconds(stat: Stats): number {
  return Math.floor(stat.mtimeMs / 1000);
}

/** The tar entry for a walked path; undefined for what is not sent (sockets, links leading out). */
async function packEntry(root: string, found: Found): Promise<PackEntry | undefined> {
  const { stat, relative } = found;
  const common = { name: relative, mode: stat.mode & 0o7777, mtime: seconds(stat) };
  if (stat.isFile()) return { ...common, type: 'file', size: stat.size, source: found.absolute };
  if (stat.isDirectory()) return { ...common, type: 'directory' };
  if (!stat.isSymbolicLink()) return undefined;
  const linkname = await linkInside(root, found);
  return linkname === undefined ? undefined : { ...common, type: 'symlink', mode: 0o777, linkname };
}

async function directoryEntries(root: string, exclude: string[]): Promise<PackEntry[]> {
  const entries: PackEntry[] = [];
  for await (const found of walkTree({ root, skip: excludeMatcher(exclude), maxDepth: Infinity })) {
    const entry = await packEntry(root, found);
    if (entry) entries.push(entry);
  }
  return entries;
}

/** The directories above each entry, each once, before it (their own entries carry their modes). */
async function withParents(root: string, entries: PackEntry[]): Promise<PackEntry[]> {
  const out: PackEntry[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const parts = entry.name.split('/').slice(0, -1);
    for (let depth = 1; depth <= parts.length; depth++) {
      const name = parts.slice(0, depth).join('/');
      if (seen.has(name)) continue;
      seen.add(name);
      const stat = await fs.stat(path.join(root, name));
      out.push({ name, type: 'directory', mode: stat.mode & 0o7777, mtime: seconds(stat) });
    }
    out.push(entry);
  }
  return out;
}

/**
 * The local files (and symlinks staying inside the base) matching a glob pattern, with their
 * names relative to the pattern's fixed base, preceded by their directories.
 * @example
 * ```ts
 * const { base, entries } = await globEntries('./src/**\/*.ts', ['node_modules']);
 * ```
 */
export async function globEntries(
  pattern: string,
  exclude: string[] = [],
): Promise<{ base: string; entries: PackEntry[] }> {
  const { base, rest } = splitGlob(pattern);
  const root = path.resolve(base);
  const matches = globMatcher(rest);
  const excluded = excludeMatcher(exclude);
  const bounded = !rest.includes('**') && !rest.includes('{');
  const walk = { root, skip: excluded, maxDepth: bounded ? rest.split('/').length : Infinity };
  const entries: PackEntry[] = [];
  try {
    for await (const found of walkTree(walk)) {
      if (found.stat.isDirectory() || !matches(found.relative)) continue;
      const entry = await packEntry(root, found);
      if (entry) entries.push(entry);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
  }
  return { base: root, entries: await withParents(root, entries) };
}

function missing(local: string): FileNotFoundError {
  return new FileNotFoundError(`no local file or directory matches ${JSON.stringify(local)}`, {
    code: 'local_file_not_found',
    details: { path: local },
  });
}

async function statOrUndefined(local: string): Promise<Stats | undefined> {
  return fs.stat(local).catch(() => undefined);
}

/** `remote`, or `/workspace/<name>`; a remote ending in `/` is a directory to put `name` in. */
function destination(remote: string | undefined, name: string): string {
  const target = remote || `${WORKSPACE}/${name}`;
  return target.endsWith('/') ? `${target}${name}` : target;
}

/**
 * Decides what an upload sends and where it lands (like the Python SDK's `select`):
 *
 * - a file: itself, to `remote` (ending in `/`: into that directory), default `/workspace/<name>`;
 * - a directory: its contents (less `exclude`), extracted at `remote`, default `/workspace/<name>`;
 * - a glob pattern: the matching files at their paths relative to the pattern's fixed base,
 *   extracted under `remote` (default `/workspace`).
 *
 * Symlinks are sent as symlinks when they stay inside the directory (or the pattern's base);
 * absolute ones and ones leading out are left out, and symlinked directories are not entered.
 * Throws {@link FileNotFoundError} (`local_file_not_found`) when nothing matches.
 * @example
 * ```ts
 * const selection = await select('./src', undefined, ['node_modules']); // remote: '/workspace/src'
 * ```
 */
export async function select(local: string, remote?: string, exclude: string[] = []): Promise<Selection> {
  const stat = await statOrUndefined(local);
  if (!stat && isGlob(local)) {
    const { base, entries } = await globEntries(local, exclude);
    if (!entries.length) throw missing(local);
    return { base, entries, remote: remote || WORKSPACE, singleFile: false };
  }
  if (!stat) throw missing(local);
  const absolute = path.resolve(local);
  const name = path.basename(absolute);
  if (stat.isDirectory()) {
    const entries = await directoryEntries(absolute, exclude);
    return { base: absolute, entries, remote: destination(remote, name), singleFile: false };
  }
  if (!stat.isFile()) throw new ValidationError(`not a regular file: ${JSON.stringify(local)}`, { code: 'not_a_file' });
  const entry: PackEntry = { name, type: 'file', mode: stat.mode & 0o777, size: stat.size, source: absolute };
  return { base: path.dirname(absolute), entries: [entry], remote: destination(remote, name), singleFile: true };
}
