// sandbox.files against the live server and the real engine: uploads of files, directories and
// glob patterns, downloads of files and directories, list/exists/delete/mkdir/move, errors; and the
// local pieces on their own: the tar writer/reader, confined extraction, glob matching.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';

import { ConflictError, FileNotFoundError, SandboxNotFoundError, ValidationError } from '../src/errors.js';
import { Files, type FileEntry } from '../src/files.js';
import { excludeMatcher, globMatcher, select } from '../src/glob.js';
import { extractTar, readTar, tarBytes, tarChunks, tarHeader, tarSize } from '../src/tar.js';
import { Transport } from '../src/transport.js';
import { API_KEY, API_URL, OUTSIDER_KEY, api, cleanupLater } from './helpers.js';

function transport(apiKey = API_KEY): Transport {
  return new Transport({
    baseUrl: API_URL,
    apiKey,
    timeout: 60_000,
    maxRetries: 2,
    backoff: 200,
    maxBackoff: 2_000,
    maxRetryAfter: 30,
    headers: {},
  });
}

async function tempDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(tmpdir(), `vb-files-${prefix}-`));
}

async function put(root: string, relative: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const target = path.join(root, relative);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await fs.writeFile(target, data);
  await fs.chmod(target, mode);
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function* chunked(data: Uint8Array, size = 700): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

async function exists(local: string): Promise<boolean> {
  return fs.lstat(local).then(
    () => true,
    () => false,
  );
}

const LONG_DIR = `deep/${'d'.repeat(60)}/${'e'.repeat(60)}`;
const LONG_FILE = `${LONG_DIR}/${'f'.repeat(40)}.txt`;

describe('tar (local)', () => {
  test('what the writer packs, the reader reads back: names over 100 bytes, links, modes, mtimes', async () => {
    const long = `a/${'x'.repeat(150)}/${'ü'.repeat(30)}.txt`;
    const archive = tarBytes([
      { name: 'a', type: 'directory', mode: 0o750, mtime: 1_700_000_000 },
      { name: long, type: 'file', mode: 0o755, mtime: 1_700_000_001, data: 'long name\n' },
      { name: 'a/link', type: 'symlink', mode: 0o777, linkname: `${'y'.repeat(120)}/target` },
      { name: 'empty.txt', type: 'file', mode: 0o600, data: '' },
    ]);
    assert.equal(archive.length % 512, 0);
    const seen: Array<[string, string, number, number, string, string]> = [];
    for await (const entry of readTar(chunked(archive, 333))) {
      const text = (await collect(entry.content)).toString();
      seen.push([entry.type, entry.name, entry.mode, entry.mtime, entry.linkname, text]);
    }
    assert.deepEqual(seen, [
      ['directory', 'a', 0o750, 1_700_000_000, '', ''],
      ['file', long, 0o755, 1_700_000_001, '', 'long name\n'],
      ['symlink', 'a/link', 0o777, seen[2]?.[3] ?? 0, `${'y'.repeat(120)}/target`, ''],
      ['file', 'empty.txt', 0o600, seen[3]?.[3] ?? 0, '', ''],
    ]);
  });

  test('an entry whose content is not read is skipped; sizes are computed up front', async () => {
    const entries = [
      { name: 'one.bin', type: 'file' as const, mode: 0o644, data: randomBytes(1500) },
      { name: 'two.txt', type: 'file' as const, mode: 0o644, data: 'second' },
    ];
    const names: string[] = [];
    let second = '';
    for await (const entry of readTar(chunked(tarBytes(entries), 100))) {
      names.push(entry.name);
      if (entry.name === 'two.txt') second = (await collect(entry.content)).toString();
    }
    assert.deepEqual(names, ['one.bin', 'two.txt']);
    assert.equal(second, 'second');
    assert.equal(tarSize(entries.map((e) => ({ ...e, size: e.data.length }))), tarBytes(entries).length);
    assert.equal(tarHeader({ name: 'n'.repeat(101), type: 'file', mode: 0o644, size: 1 }).length, 3 * 512);
  });

  test('a damaged archive is a ValidationError invalid_archive', async () => {
    const archive = tarBytes([{ name: 'a.txt', type: 'file', mode: 0o644, data: 'x' }]);
    archive[0] = 'b'.charCodeAt(0); // the checksum no longer matches
    await assert.rejects(collect((async function* () {
      for await (const entry of readTar(chunked(archive))) yield* entry.content;
    })()), (error: unknown) => error instanceof ValidationError && error.code === 'invalid_archive');
  });

  test('extraction keeps everything inside the target: .., absolute paths, links out are refused', async () => {
    const root = await tempDir('unsafe');
    const target = path.join(root, 'target');
    const crafted: Array<{ entry: Parameters<typeof tarBytes>[0][number]; escapes: string }> = [
      { entry: { name: '../evil', type: 'file', mode: 0o644, data: 'evil' }, escapes: path.join(root, 'evil') },
      {
        entry: { name: 'top/../../evil2', type: 'file', mode: 0o644, data: 'evil' },
        escapes: path.join(root, 'evil2'),
      },
      {
        entry: { name: `${root}/abs-evil`, type: 'file', mode: 0o644, data: 'evil' },
        escapes: path.join(root, 'abs-evil'),
      },
      { entry: { name: 'etc', type: 'symlink', mode: 0o777, linkname: '/etc' }, escapes: path.join(target, 'etc') },
      { entry: { name: 'up', type: 'symlink', mode: 0o777, linkname: '../..' }, escapes: path.join(target, 'up') },
    ];
    for (const { entry, escapes } of crafted) {
      const archive = tarBytes([{ name: 'ok.txt', type: 'file', mode: 0o644, data: 'fine' }, entry]);
      await assert.rejects(
        extractTar(chunked(archive), target),
        (error: unknown) =>
          error instanceof ValidationError && error.code === 'invalid_archive' && error.details.entry === entry.name,
        entry.name,
      );
      assert.equal(await exists(escapes), false, `${entry.name} was written`);
    }
    assert.equal(await fs.readFile(path.join(target, 'ok.txt'), 'utf8'), 'fine');
    assert.deepEqual((await fs.readdir(root)).sort(), ['target']);
  });

  test('extraction does not write through links: chained links, links already on disk', async () => {
    const root = await tempDir('links');
    const target = path.join(root, 'target');
    // sub/s -> .. is the target itself (fine); sub/t -> s/.. would be the target's parent.
    const chained = tarBytes([
      { name: 'sub', type: 'directory', mode: 0o755 },
      { name: 'sub/s', type: 'symlink', mode: 0o777, linkname: '..' },
      { name: 'sub/t', type: 'symlink', mode: 0o777, linkname: 's/..' },
    ]);
    await assert.rejects(extractTar(chunked(chained), target), { code: 'invalid_archive' });
    assert.equal((await fs.readlink(path.join(target, 'sub/s'))), '..');
    assert.equal(await exists(path.join(target, 'sub/t')), false);
    // A link that was already there, leading out: nothing is written through it.
    await fs.mkdir(path.join(root, 'outside'));
    await fs.symlink(path.join(root, 'outside'), path.join(target, 'door'));
    const through = tarBytes([{ name: 'door/evil.txt', type: 'file', mode: 0o644, data: 'evil' }]);
    await assert.rejects(extractTar(chunked(through), target), { code: 'invalid_archive' });
    assert.deepEqual(await fs.readdir(path.join(root, 'outside')), []);
  });

  test('stripTop drops the top directory; modes are kept the way tarfile data filter keeps them', async () => {
    const target = path.join(await tempDir('strip'), 'out');
    const archive = tarBytes([
      { name: 'dist', type: 'directory', mode: 0o755 },
      { name: 'dist/run.sh', type: 'file', mode: 0o4775, data: '#!/bin/sh\n' },
      { name: 'dist/private', type: 'file', mode: 0o400, data: 'p' },
      { name: 'dist/lib/a.js', type: 'file', mode: 0o644, data: 'a' },
      { name: 'dist/lib/alias.js', type: 'symlink', mode: 0o777, linkname: 'a.js' },
    ]);
    const written = await extractTar(chunked(archive), target, { stripTop: true });
    assert.equal(written.length, 3);
    assert.equal((await fs.stat(path.join(target, 'run.sh'))).mode & 0o7777, 0o755);
    assert.equal((await fs.stat(path.join(target, 'private'))).mode & 0o777, 0o600);
    assert.equal(await fs.readFile(path.join(target, 'lib/alias.js'), 'utf8'), 'a');
    assert.equal(await exists(path.join(target, 'dist')), false);
  });
});

describe('glob (local)', () => {
  test('patterns: *, **, ?, classes, alternatives; wildcards skip dot-files', () => {
    const cases: Array<[string, string, boolean]> = [
      ['**/*.ts', 'a.ts', true],
      ['**/*.ts', 'src/deep/b.ts', true],
      ['**/*.ts', '.cache/b.ts', false],
      ['*.ts', 'src/b.ts', false],
      ['src/?.js', 'src/a.js', true],
      ['src/?.js', 'src/ab.js', false],
      ['[a-c]*.md', 'b-notes.md', true],
      ['[!a-c]*.md', 'b-notes.md', false],
      ['**/*.{ts,tsx}', 'ui/view.tsx', true],
      ['{src,lib}/**/*.ts', 'test/x.ts', false],
      ['a/**/b', 'a/b', true],
      ['.*', '.env', true],
      ['a+b(1).txt', 'a+b(1).txt', true],
    ];
    for (const [pattern, relative, expected] of cases) {
      assert.equal(globMatcher(pattern)(relative), expected, `${pattern} ~ ${relative}`);
    }
    const excluded = excludeMatcher(['node_modules', 'dist', '*.log', './build/']);
    assert.equal(excluded('app/node_modules/x/index.js'), true);
    assert.equal(excluded('logs/today.log'), true);
    assert.equal(excluded('build/out.js'), true);
    assert.equal(excluded('src/distance.ts'), false);
  });

  test('select: destinations, exclude, symlinks inside kept and leading out left out', async () => {
    const root = await tempDir('select');
    await put(root, 'proj/src/a.ts', 'a');
    await put(root, 'proj/node_modules/m/i.ts', 'm');
    await fs.symlink('src/a.ts', path.join(root, 'proj/alias.ts'));
    await fs.symlink('/etc/hostname', path.join(root, 'proj/abs.ts'));
    await fs.symlink('../../outside.ts', path.join(root, 'proj/src/out.ts'));
    const directory = await select(path.join(root, 'proj'), undefined, ['node_modules']);
    assert.equal(directory.remote, '/workspace/proj');
    assert.deepEqual(
      directory.entries.map((e) => `${e.type}:${e.name}`),
      ['symlink:alias.ts', 'directory:src', 'file:src/a.ts'],
    );
    assert.equal((await select(path.join(root, 'proj/src/a.ts'), '/app/')).remote, '/app/a.ts');
    const glob = await select(`${root}/proj/**/*.ts`, 'dest', ['node_modules']);
    assert.equal(glob.remote, 'dest');
    assert.deepEqual(glob.entries.map((e) => e.name), ['alias.ts', 'src', 'src/a.ts']);
    await assert.rejects(select(`${root}/nothing/*.ts`), { code: 'local_file_not_found' });
  });
});

describe('files (live server)', () => {
  let id = '';
  let files: Files;
  let local = '';

  async function sh(command: string): Promise<{ stdout: string; exitCode: number }> {
    const response = await api('POST', `/api/v1/sandboxes/${id}/exec`, { command });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as { stdout: string; exitCode: number };
  }

  // Registered here, in the suite: an `after` registered inside `before` would run right after it.
  cleanupLater(async () => id && api('DELETE', `/api/v1/sandboxes/${id}`));

  before(async () => {
    const response = await api('POST', '/api/v1/sandboxes', { template: 'node-20' });
    assert.equal(response.status, 201, await response.clone().text());
    id = ((await response.json()) as { id: string }).id;
    files = new Files(transport(), () => id);
    local = await tempDir('live');
  });

  test('a file: auto destination /workspace/<name>, an explicit one, an absolute one outside /workspace', async () => {
    await put(local, 'single/package.json', '{"name": "demo"}\n');
    await put(local, 'single/local.json', '{"port": 8080}\n');
    const auto = await files.upload(path.join(local, 'single/package.json'));
    assert.equal(auto.path, '/workspace/package.json');
    assert.equal(auto.size, 17);
    assert.equal(await files.readText('package.json'), '{"name": "demo"}\n');
    // (an absolute path the sandbox user may write: elsewhere an upload is 403 path_not_writable)
    const explicit = await files.upload(path.join(local, 'single/local.json'), '/repo/config.json');
    assert.equal(explicit.path, '/repo/config.json');
    assert.equal((await sh('cat /repo/config.json')).stdout, '{"port": 8080}\n');
    const into = await files.upload(path.join(local, 'single/local.json'), 'conf/');
    assert.equal(into.path, '/workspace/conf/local.json');
  });

  test('a file keeps its local mode unless mode says otherwise', async () => {
    await put(local, 'modes/tool.sh', '#!/bin/sh\necho tool\n', 0o755);
    assert.equal((await files.upload(path.join(local, 'modes/tool.sh'))).mode, '0755');
    assert.equal((await sh('/workspace/tool.sh')).stdout, 'tool\n');
    assert.equal((await files.upload(path.join(local, 'modes/tool.sh'), 'plain.sh', { mode: 0o640 })).mode, '0640');
  });

  test('a directory: nested, binary, executable mode, a path over 100 characters', async () => {
    const tree = path.join(local, 'project');
    const binary = randomBytes(70_000);
    await put(tree, 'src/index.ts', 'export const x = 1;\n');
    await put(tree, 'src/lib/util.ts', 'export {};\n');
    await put(tree, 'assets/blob.bin', binary);
    await put(tree, 'bin/run.sh', '#!/bin/sh\necho ran\n', 0o755);
    await put(tree, LONG_FILE, 'long\n');
    await put(tree, 'docs/ünïcode 文档.md', 'utf-8 name\n');
    await fs.mkdir(path.join(tree, 'empty'));
    await fs.symlink('src/index.ts', path.join(tree, 'alias.ts'));
    await fs.symlink('/etc/hostname', path.join(tree, 'host.txt'));
    const progress: number[] = [];
    const result = await files.upload(tree, undefined, { onProgress: (done) => progress.push(done) });
    assert.equal(result.path, '/workspace/project');
    assert.ok(progress.length > 1 && progress.at(-1) === tarSize((await select(tree)).entries));
    const check = await sh(
      'cd /workspace/project && sha256sum assets/blob.bin | cut -c1-64 && stat -c %a bin/run.sh && ./bin/run.sh' +
        ` && cat src/index.ts ${LONG_FILE} 'docs/ünïcode 文档.md' && test -d empty && stat -c %U src/lib/util.ts` +
        ' && readlink alias.ts && { test -e host.txt || echo no-host; }',
    );
    assert.equal(
      check.stdout,
      `${sha256(binary)}\n755\nran\nexport const x = 1;\nlong\nutf-8 name\nsandbox\nsrc/index.ts\nno-host\n`,
    );
    const named = await files.uploadDir(tree, '/workspace/copies/');
    assert.equal(named.path, '/workspace/copies/project');
  });

  test('a glob pattern with exclude: node_modules and dist left out, relative structure kept', async () => {
    const tree = path.join(local, 'globbed');
    await put(tree, 'index.ts', 'i');
    await put(tree, 'src/a.ts', 'a');
    await put(tree, 'src/deep/b.ts', 'b');
    await put(tree, 'src/readme.md', 'r');
    await put(tree, 'node_modules/pkg/index.ts', 'n');
    await put(tree, 'dist/out.ts', 'd');
    const result = await files.upload(`${tree}/**/*.ts`, '/workspace/globbed', { exclude: ['node_modules', 'dist'] });
    assert.equal(result.path, '/workspace/globbed');
    const found = await sh('cd /workspace/globbed && find . -type f | sort');
    assert.equal(found.stdout, './index.ts\n./src/a.ts\n./src/deep/b.ts\n');
  });

  test('write, download, read, readText', async () => {
    const written = await files.write('notes/hello.txt', 'héllo\n');
    assert.deepEqual([written.path, written.size], ['/workspace/notes/hello.txt', 7]);
    assert.deepEqual(await files.download('/workspace/notes/hello.txt'), Buffer.from('héllo\n'));
    assert.deepEqual(await files.read('notes/hello.txt'), Buffer.from('héllo\n'));
    assert.equal(await files.readText('notes/hello.txt'), 'héllo\n');
    await files.write('notes/run.sh', '#!/bin/sh\necho ok\n', { mode: 0o700 });
    assert.equal((await sh('stat -c %a /workspace/notes/run.sh')).stdout, '700\n');
    await files.write('notes/empty', new Uint8Array());
    assert.equal((await files.download('notes/empty')).length, 0);
  });

  test('downloadTo: a file to a path or into a directory; a .tar file is saved, not unpacked', async () => {
    await files.write('out/report.txt', 'report\n');
    const target = path.join(local, 'downloads/r.txt');
    assert.equal(await files.downloadTo('out/report.txt', target), target);
    assert.equal(await fs.readFile(target, 'utf8'), 'report\n');
    const into = path.join(local, 'downloads');
    assert.equal(await files.downloadTo('out/report.txt', into), path.join(into, 'report.txt'));
    const archive = tarBytes([{ name: 'inner.txt', type: 'file', mode: 0o644, data: 'x' }]);
    await files.write('out/backup.tar', archive);
    const saved = await files.downloadTo('out/backup.tar', `${into}/`);
    assert.deepEqual(await fs.readFile(saved), Buffer.from(archive));
  });

  test('downloadTo: a directory lands as its contents, bytes identical, modes kept', async () => {
    const binary = randomBytes(200_000);
    await files.write('site/assets/logo.bin', binary);
    await files.write('site/index.html', '<h1>hi</h1>\n');
    await files.write('site/bin/serve.sh', '#!/bin/sh\n', { mode: 0o755 });
    await files.write(`site/${LONG_FILE}`, 'long\n');
    await sh('cd /workspace/site && ln -s index.html home.html && mkdir -p empty');
    const target = path.join(local, 'site-copy');
    assert.equal(await files.downloadTo('site/', target), target);
    assert.deepEqual((await fs.readdir(target)).sort(), ['assets', 'bin', 'deep', 'empty', 'home.html', 'index.html']);
    assert.equal(sha256(await fs.readFile(path.join(target, 'assets/logo.bin'))), sha256(binary));
    assert.equal((await fs.stat(path.join(target, 'bin/serve.sh'))).mode & 0o777, 0o755);
    assert.equal((await fs.stat(path.join(target, 'index.html'))).mode & 0o777, 0o644);
    assert.equal(await fs.readlink(path.join(target, 'home.html')), 'index.html');
    assert.equal(await fs.readFile(path.join(target, LONG_FILE), 'utf8'), 'long\n');
  });

  test('a 5 MB random binary file makes the round trip unchanged, with progress', async () => {
    const data = randomBytes(5 * 1024 * 1024);
    await put(local, 'big/random.bin', data);
    const sent: number[] = [];
    const result = await files.upload(path.join(local, 'big/random.bin'), 'big/random.bin', {
      onProgress: (done, total) => sent.push(done / total),
    });
    assert.equal(result.size, data.length);
    assert.equal(sent.at(-1), 1);
    const received: Array<[number, number]> = [];
    const back = await files.download('big/random.bin', { onProgress: (done, total) => received.push([done, total]) });
    assert.equal(sha256(back), sha256(data));
    assert.deepEqual(received.at(-1), [data.length, data.length]);
    const saved = await files.downloadTo('big/random.bin', path.join(local, 'big/back.bin'));
    assert.equal(sha256(await fs.readFile(saved)), sha256(data));
  });

  test('list (and recursive), exists', async () => {
    await files.write('listing/a.txt', 'aaaa');
    await files.write('listing/sub/b.txt', 'b');
    const entries = await files.list('listing');
    const byName = new Map(entries.map((e) => [e.name, e]));
    assert.deepEqual([...byName.keys()].sort(), ['a.txt', 'sub']);
    const file = byName.get('a.txt') as FileEntry;
    assert.deepEqual(
      [file.path, file.size, file.isDir, file.type, file.mode, file.symlinkTarget],
      ['/workspace/listing/a.txt', 4, false, 'file', '0644', null],
    );
    assert.equal(typeof file.modifiedAt, 'number');
    assert.equal(byName.get('sub')?.isDir, true);
    const all = (await files.list('/workspace/listing', { recursive: true })).map((e) => e.path).sort();
    assert.deepEqual(all, ['/workspace/listing/a.txt', '/workspace/listing/sub', '/workspace/listing/sub/b.txt']);
    assert.ok((await files.list()).some((e) => e.name === 'listing'));
    assert.equal(await files.exists('listing/a.txt'), true);
    assert.equal(await files.exists('listing/sub'), true);
    assert.equal(await files.exists('listing/nope.txt'), false);
    assert.equal(await files.exists('/nowhere/at/all'), false);
  });

  test('delete (a directory needs recursive), mkdir, move', async () => {
    await files.write('scratch/dir/one.txt', '1');
    await files.write('scratch/temp.txt', 't');
    await files.delete('/workspace/scratch/temp.txt');
    assert.equal(await files.exists('scratch/temp.txt'), false);
    await assert.rejects(
      files.delete('scratch/dir'),
      (error: unknown) => error instanceof ConflictError && error.code === 'file_conflict',
    );
    await files.delete('scratch/dir', { recursive: true });
    assert.equal(await files.exists('scratch/dir'), false);

    assert.deepEqual(await files.mkdir('scratch/made/deep'), { path: '/workspace/scratch/made/deep' });
    await files.mkdir('scratch/made/deep');
    assert.equal((await sh('test -d /workspace/scratch/made/deep && echo yes')).stdout, 'yes\n');

    await files.write('scratch/from.txt', 'moved');
    await files.write('scratch/taken.txt', 'taken');
    const moved = await files.move('scratch/from.txt', 'scratch/to/there.txt');
    assert.deepEqual(moved, { path: '/workspace/scratch/to/there.txt' });
    assert.equal(await files.readText('scratch/to/there.txt'), 'moved');
    await assert.rejects(files.move('scratch/to/there.txt', 'scratch/taken.txt'), { code: 'file_conflict' });
    await files.move('scratch/to/there.txt', 'scratch/taken.txt', { overwrite: true });
    assert.equal(await files.readText('scratch/taken.txt'), 'moved');
  });

  test('missing things: FileNotFoundError in the sandbox, local_file_not_found here, not_a_directory', async () => {
    const missing = (error: unknown) => error instanceof FileNotFoundError && error.code === 'file_not_found';
    await assert.rejects(files.download('no/such/file.txt'), missing);
    await assert.rejects(files.downloadTo('no/such/dir/', path.join(local, 'never')), missing);
    await assert.rejects(files.delete('no/such/file.txt'), missing);
    await assert.rejects(files.list('no/such/dir'), missing);
    assert.equal(await exists(path.join(local, 'never')), false);
    await assert.rejects(files.upload(path.join(local, 'absent.txt')), {
      name: 'FileNotFoundError',
      code: 'local_file_not_found',
    });
    await put(local, 'plain.txt', 'p');
    await assert.rejects(files.uploadDir(path.join(local, 'plain.txt')), (error: unknown) => {
      return error instanceof ValidationError && error.code === 'not_a_directory';
    });
  });

  test("another user's key sees no sandbox: SandboxNotFoundError", async () => {
    const outsider = new Files(transport(OUTSIDER_KEY), () => id);
    const notFound = (error: unknown) => error instanceof SandboxNotFoundError && error.code === 'sandbox_not_found';
    await assert.rejects(outsider.download('package.json'), notFound);
    await assert.rejects(outsider.write('x.txt', 'x'), notFound);
    await assert.rejects(outsider.upload(path.join(local, 'project')), notFound);
    await assert.rejects(outsider.list(), notFound);
    await assert.rejects(outsider.exists('package.json'), notFound);
    await assert.rejects(outsider.delete('package.json'), notFound);
  });

  test('tar chunks stream local files in order and agree with tarSize', async () => {
    const { entries } = await select(path.join(local, 'project'));
    const bytes = await collect(tarChunks(entries));
    assert.equal(bytes.length, tarSize(entries));
    const names: string[] = [];
    for await (const entry of readTar(chunked(bytes, 4096))) names.push(entry.name);
    assert.deepEqual(names, entries.map((e) => e.name));
  });
});
