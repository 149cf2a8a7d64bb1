// A sandbox's life and commands through the SDK, against the live server and the real engine:
// create, run (code and commands), exec (plain, streamed, background), logs, env, lifecycle,
// snapshots and the fluent chain.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';

import {
  CallbackError,
  CommandExitError,
  CommandTimeoutError,
  FileNotFoundError,
  SandboxPausedError,
  TerminalNotFoundError,
  ValidationError,
  VibeBox,
  type LogEntry,
  type Sandbox,
} from '../src/index.js';
import { API_KEY, API_URL, assertDestroyed, cleanupLater, uniqueName, waitFor } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });

let sandbox: Sandbox;

before(async () => {
  sandbox = await vb.sandbox('node-20');
  cleanupLater(() => sandbox.destroy());
});

describe('create', () => {
  test('vb.sandbox(template) answers a running sandbox', () => {
    assert.match(sandbox.id, /^sbx_/);
    assert.equal(sandbox.status, 'running');
    assert.equal(sandbox.template, 'node-20');
  });

  test('vb.create with full configuration; autoStart false leaves it stopped', async () => {
    const name = uniqueName('my-dev');
    const box = await vb.create({
      template: 'node-20',
      name,
      autoStart: false,
      ephemeral: false,
      timeout: '2h',
      env: { GREETING: 'hi' },
      metadata: { purpose: 'test' },
      resources: { cpu: 0.5, memory: '512m' },
    });
    cleanupLater(() => box.destroy());
    assert.equal(box.name, name);
    assert.equal(box.status, 'stopped');
    assert.equal(box.info.timeout, 7200);
    assert.equal(box.info.resources.memory, '512m');
    await box.start();
    assert.equal(box.status, 'running');
    assert.equal((await box.run('echo $GREETING')).stdout, 'hi\n');
    assert.equal((await vb.get(name)).id, box.id);
    const ephemeral = await vb.create({ template: 'node-20', ephemeral: true, timeout: '30m' });
    cleanupLater(() => ephemeral.destroy());
    assert.equal(ephemeral.info.ephemeral, true);
    assert.equal(ephemeral.info.timeout, 1800);
    await box.update({ metadata: { purpose: 'renamed' } });
    assert.deepEqual(box.info.metadata, { purpose: 'renamed' });
  });
});

describe('run', () => {
  test('code: output, returnValue, exitCode, duration', async () => {
    await sandbox.files.write('package.json', '{}');
    const result = await sandbox.run(`
      const fs = require('fs');
      const files = fs.readdirSync('.');
      console.log('Files:', files);
      return files;
    `);
    assert.ok(Array.isArray(result.returnValue) && (result.returnValue as string[]).includes('package.json'));
    assert.match(result.output, /^Files: \[.*'package.json'.*\]\n$/s);
    assert.equal(result.exitCode, 0);
    assert.equal(typeof result.duration, 'number');
    assert.equal(result.language, 'javascript');
  });

  test('phase: a TypeScript syntax error fails in the compile phase, a thrown error in the run phase', async () => {
    const broken = await sandbox.execute("const n: number = ;\nconsole.log('never');", { language: 'typescript' });
    assert.equal(broken.phase, 'compile');
    assert.notEqual(broken.exitCode, 0);
    assert.doesNotMatch(broken.stdout, /never/);
    assert.ok(broken.stderr.trim(), 'the compiler says why');
    const thrown = await sandbox.execute("throw new Error('boom');", { language: 'typescript' });
    assert.equal(thrown.phase, 'run');
    assert.match(thrown.stderr, /boom/);
    assert.equal((await sandbox.run('return 1')).phase, 'run');
    assert.equal((await sandbox.run('true', { language: 'shell' })).phase, 'run');
  });

  test('a command with cwd', async () => {
    const result = await sandbox.run('pwd', { cwd: '/tmp' });
    assert.equal(result.stdout, '/tmp\n');
    assert.equal((await sandbox.run('npm --version')).exitCode, 0);
  });

  test('a failing command throws CommandExitError with every attempt in logs', async () => {
    const error = await sandbox.run('echo try; exit 3', { retries: 2, retryDelay: 50 }).catch((e: unknown) => e);
    assert.ok(error instanceof CommandExitError, String(error));
    assert.equal(error.exitCode, 3);
    assert.equal(error.attempts.length, 3);
    assert.equal((error.logs.match(/--- attempt/g) ?? []).length, 3);
    assert.match(error.logs, /try/);
    assert.match(error.message, /failed|exited with 3/);
  });

  test('retries until a flaky command works', async () => {
    await sandbox.files.write('flaky.sh', 'n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n+1)); echo $n > /tmp/count; echo "run $n"; [ $n -ge 3 ]\n');
    const result = await sandbox.run('bash flaky.sh', { retries: 3, retryDelay: 100, timeout: '30s' });
    assert.equal(result.stdout, 'run 3\n');
    const caught = await sandbox
      .run('exit 1', { retries: 1, retryDelay: 10 })
      .catch((error) => error.logs);
    assert.match(String(caught), /attempt 2/);
  });

  test('the timeout is honoured: CommandTimeoutError, everything it started killed', async () => {
    const started = Date.now();
    const error = await sandbox.run('sleep 31 & sleep 32', { timeout: '1s', language: 'shell' }).catch((e: unknown) => e);
    assert.ok(error instanceof CommandTimeoutError, String(error));
    assert.equal(error.result.status, 'timeout');
    assert.ok(Date.now() - started < 20_000);
    await waitFor(async () => (await sandbox.exec("pgrep -fc 'sleep 3[12]' || true")).stdout.trim() === '0', {
      timeout: 30_000,
      what: 'the timed-out command and its children to be killed',
    });
  });

  test('retries of a command that times out: CommandTimeoutError with every attempt', async () => {
    const error = await sandbox.run('echo attempt; sleep 30', { timeout: '1s', retries: 1, retryDelay: 10, language: 'shell' }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof CommandTimeoutError, String(error));
    assert.equal(error.attempts.length, 2);
    assert.equal((error.logs.match(/attempt/g) ?? []).length >= 2, true);
  });

  test('check: false answers the failed result', async () => {
    const result = await sandbox.run('exit 4', { check: false });
    assert.equal(result.exitCode, 4);
    assert.equal(result.ok, false);
  });
});

describe('exec', () => {
  test('plain await answers the result whatever the exit code', async () => {
    const result = await sandbox.exec('echo out; echo err >&2; exit 2');
    assert.equal(result.stdout, 'out\n');
    assert.equal(result.stderr, 'err\n');
    assert.equal(result.exitCode, 2);
    assert.equal(result.status, 'failed');
    const argv = await sandbox.exec(['node', '-e', 'console.log(process.argv.length)'], { env: { X: '1' } });
    assert.equal(argv.stdout, '1\n');
  });

  test('stream: onData while it runs, onComplete and wait at the end', async () => {
    const cmd = await sandbox.exec('for i in 1 2 3; do echo line $i; sleep 0.5; done; echo oops >&2; exit 5', {
      stream: true,
      cwd: '/workspace',
    });
    const chunks: Array<[string, string]> = [];
    const times: number[] = [];
    cmd.onData((data, stream) => {
      chunks.push([data, stream]);
      times.push(Date.now());
    });
    const completed = new Promise<number | null>((resolve) => cmd.onComplete((result) => resolve(result.exitCode)));
    const result = await cmd.wait();
    assert.equal(await completed, 5);
    assert.equal(result.stdout, 'line 1\nline 2\nline 3\n');
    assert.equal(result.stderr, 'oops\n');
    assert.equal(chunks.map(([data]) => data).join(''), 'line 1\nline 2\nline 3\noops\n');
    assert.ok(times.at(-1)! - times[0]! >= 500, 'output did not arrive as it was printed');
    let late = -1;
    cmd.onComplete((r) => (late = r.exitCode ?? -1));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(late, 5);
  });

  test('stream: stdin and signals reach the command', async () => {
    const cat = await sandbox.exec('cat', { stream: true });
    cat.write('hello ').write('stdin\n').closeStdin();
    assert.equal((await cat.wait()).stdout, 'hello stdin\n');
    // Signalled once it runs: a signal sent before the engine has started the command finds
    // nothing to signal (docs/api.md, streamed exec), and the sleep would run to its timeout.
    const sleeper = await sandbox.exec('echo ready; sleep 60', { stream: true });
    await new Promise<void>((resolve) => sleeper.onData((data) => (data.includes('ready') ? resolve() : undefined)));
    sleeper.signal('TERM');
    const stopped = await sleeper.wait();
    assert.notEqual(stopped.exitCode, 0);
  });

  test('background: runs on, attach replays its output, kill stops it', async () => {
    const process = await sandbox.exec('echo started; sleep 60', { background: true });
    const listed = await sandbox.processes();
    assert.ok(listed.some((p) => p.processId === process.processId));
    const stream = await process.attach();
    const first = await new Promise<string>((resolve) => stream.onData((data) => resolve(data)));
    assert.equal(first, 'started\n');
    await process.kill();
    const result = await stream.wait();
    assert.notEqual(result.exitCode, 0);
    const history = await sandbox.executions({ limit: 5 });
    assert.equal(history[0]?.executionId, process.executionId);
    assert.equal((await sandbox.execution(process.executionId)).command, 'echo started; sleep 60');
  });
});

describe('streams', () => {
  test('waiting on a background process that already exited', async () => {
    const quick = await sandbox.exec('echo done-already', { background: true });
    await waitFor(async () => (await sandbox.execution(quick.executionId)).status !== 'running', {
      what: 'the background process to exit',
    });
    const result = await quick.wait();
    assert.equal(result.exitCode, 0);
    assert.equal(result.stdout, 'done-already\n');
  });

  test('a callback that throws ends the stream with a CallbackError instead of crashing', async () => {
    const cmd = await sandbox.exec('echo one; sleep 30', { stream: true });
    cmd.onData(() => {
      throw new Error('my bug');
    });
    const error = await cmd.wait().catch((e: unknown) => e);
    assert.ok(error instanceof CallbackError, String(error));
    assert.equal((error.cause as Error).message, 'my bug');
  });

  test('an onLog callback that throws ends the subscription with a CallbackError', async () => {
    const seen: unknown[] = [];
    const logs = sandbox.onLog(
      { onError: (error) => seen.push(error) },
      () => {
        throw new Error('log bug');
      },
    );
    await logs.ready;
    await sandbox.exec('echo boom > /run/vibebox/stdout');
    const error = await logs.closed.catch((e: unknown) => e);
    assert.ok(error instanceof CallbackError, String(error));
    assert.equal(seen[0], error);
  });

  test('streamed exec with autoResume resumes a paused sandbox', async () => {
    const box = await vb.sandbox('node-20');
    cleanupLater(() => box.destroy());
    await box.pause();
    const cmd = await box.exec('echo awake', { stream: true, autoResume: true });
    assert.equal((await cmd.wait()).stdout, 'awake\n');
    assert.equal(box.status, 'running');
  });
});

describe('terminal', () => {
  test('a PTY: resize, type, exit code; a second client joins the session', async () => {
    const term = await sandbox.terminal({ cols: 100, rows: 30 });
    assert.match(term.sessionId, /^term_/);
    assert.deepEqual([term.cols, term.rows], [100, 30]);
    const watcher = await sandbox.terminal({ session: term.sessionId });
    assert.equal(watcher.sessionId, term.sessionId);
    term.resize(132, 43);
    term.write('stty size; echo $((6 * 7)); exit 3\r');
    assert.equal(await term.exited, 3);
    assert.match(term.output, /43 132/);
    assert.match(term.output, /42/);
    assert.equal(await watcher.exited, 3);
    assert.match(watcher.output, /42/);
  });

  test('a terminal outlives its clients until it is killed, by message or by id', async () => {
    const term = await sandbox.terminal();
    term.write('echo up-$((6 * 7))\r');
    await waitFor(() => term.output.includes('up-42'), { what: 'the echo' });
    term.close();
    await term.exited;
    const listed = await sandbox.terminals();
    assert.deepEqual(
      listed.map((t) => [t.sessionId, t.shell, t.running]),
      [[term.sessionId, 'bash', true]],
    );
    await sandbox.killTerminal(term.sessionId);
    await waitFor(async () => (await sandbox.terminals()).length === 0, { what: 'the terminal to end' });
    await assert.rejects(sandbox.killTerminal(term.sessionId), TerminalNotFoundError);
    const other = await sandbox.terminal();
    other.kill();
    assert.equal(await other.exited, 137);
  });
});

describe('logs', () => {
  test('onLog delivers new container output; filters apply', async () => {
    const all: LogEntry[] = [];
    const stdoutOnly: LogEntry[] = [];
    const everything = sandbox.onLog((log) => all.push(log));
    const filtered = sandbox.onLog({ filter: 'stdout', level: 'info' }, (log) => stdoutOnly.push(log));
    try {
      await Promise.all([everything.ready, filtered.ready]);
      // Written again on each try: the subscription may start after the first lines.
      await waitFor(
        async () => {
          // Both subscriptions: the filtered one may have started after the first lines.
          const seen = (logs: LogEntry[], message: string) => logs.some((l) => l.message === message);
          if (seen(all, 'to-pid-1') && seen(all, 'err-pid-1') && seen(stdoutOnly, 'to-pid-1')) return true;
          await sandbox.exec('echo to-pid-1 > /run/vibebox/stdout; echo err-pid-1 > /run/vibebox/stderr'); // the container's own output
          return false;
        },
        { timeout: 60_000, interval: 300, what: 'a log entry from PID 1' },
      );
    } finally {
      everything.close();
      filtered.close();
    }
    await Promise.all([everything.closed, filtered.closed]);
    const line = all.find((l) => l.message === 'to-pid-1')!;
    assert.equal(line.stream, 'stdout');
    assert.equal(line.level, 'info');
    assert.match(line.text, /^\d{4}-\d\d-\d\dT.*Z \[stdout\] to-pid-1$/);
    assert.equal(all.find((l) => l.message === 'err-pid-1')!.level, 'error');
    assert.ok(stdoutOnly.some((l) => l.message === 'to-pid-1'));
    assert.ok(stdoutOnly.every((l) => l.type === 'log' && l.stream === 'stdout'), 'the stdout filter let other entries in');
    assert.ok(!all.some((l) => l.event === 'sandbox.created'), 'a new subscription got the history');
    assert.ok(all.some((l) => l.event === 'exec.started'), 'live events are delivered');
    const errorsOnly = await sandbox.logs({ tail: 'all', level: 'error' });
    assert.ok(errorsOnly.every((l) => l.level === 'error'));
    const backlog = await sandbox.logs({ tail: 'all' });
    assert.ok(backlog.some((l) => l.type === 'event' && l.event === 'sandbox.started'));
    assert.ok(backlog.some((l) => l.message === 'to-pid-1'));
    assert.ok((await sandbox.logs({ filter: 'stderr', tail: 'all' })).every((l) => l.stream === 'stderr'));
  });
});

describe('environment', () => {
  test('set one or several, get, all, delete', async () => {
    await sandbox.env.set('NODE_ENV', 'production');
    await sandbox.env.set({ API_KEY: { value: 'secret-value', secret: true }, PORT: '3000' });
    assert.equal(await sandbox.env.get('NODE_ENV'), 'production');
    assert.equal(await sandbox.env.get('API_KEY'), '********');
    assert.equal(await sandbox.env.get('MISSING'), undefined);
    const all = await sandbox.env.all();
    assert.deepEqual(all.PORT, { value: '3000', secret: false });
    assert.equal((await sandbox.run('echo $NODE_ENV $PORT $API_KEY')).stdout, 'production 3000 secret-value\n');
    await sandbox.env.delete('PORT');
    assert.equal(await sandbox.env.get('PORT'), undefined);
  });
});

describe('lifecycle and snapshots', () => {
  test('pause, resume, restart', async () => {
    const box = await vb.sandbox('node-20');
    cleanupLater(() => box.destroy());
    await box.run('echo kept > /workspace/state.txt');
    await box.pause();
    assert.equal(box.status, 'paused');
    assert.ok(box.info.pausedAt);
    await assert.rejects(box.run('echo hi'), SandboxPausedError);
    assert.equal((await box.run('echo auto', { autoResume: true })).stdout, 'auto\n');
    await box.pause();
    await box.resume();
    assert.equal(box.status, 'running');
    await box.restart();
    assert.equal(box.status, 'running');
    assert.equal((await box.run('cat /workspace/state.txt')).stdout, 'kept\n');
    await box.stop();
    assert.equal((await box.refresh()).status, 'stopped');
  });

  test('snapshot and restore roll the workspace back', async () => {
    const box = await vb.sandbox('node-20');
    cleanupLater(() => box.destroy());
    await box.run('echo v1 > /workspace/app.txt');
    const snapshot = await box.snapshot('before-deploy');
    assert.match(snapshot.id, /^snap_/);
    assert.equal(snapshot.name, 'before-deploy');
    cleanupLater(() => vb.deleteSnapshot(snapshot));
    await box.run('echo v2 > /workspace/app.txt');
    await box.restore(snapshot);
    assert.equal(box.id, snapshot.sandboxId);
    assert.equal((await box.run('cat /workspace/app.txt')).stdout, 'v1\n');
    assert.ok((await box.snapshots()).some((s) => s.id === snapshot.id));
    assert.ok((await vb.snapshots()).some((s) => s.id === snapshot.id));
    const copy = await vb.create({ snapshot: snapshot.id });
    cleanupLater(() => copy.destroy());
    assert.equal((await copy.run('cat /workspace/app.txt')).stdout, 'v1\n');
  });
});

describe('paths', () => {
  test('.. in a file path stays in the sandbox; spaces and unicode round-trip', async () => {
    const other = await vb.sandbox('node-20', { name: uniqueName('victim') });
    cleanupLater(() => other.destroy());
    await assert.rejects(sandbox.files.delete(`../../${other.name}`, { recursive: true }), FileNotFoundError);
    await assert.rejects(sandbox.files.delete('../restart'), FileNotFoundError);
    await assert.rejects(sandbox.download(`../../${other.id}/files/secret.txt`), FileNotFoundError);
    assert.equal((await vb.get(other.id)).status, 'running');
    await sandbox.files.write('dir with space/naïve ☃.txt', 'snow');
    assert.equal((await sandbox.download('dir with space/naïve ☃.txt')).toString(), 'snow');
    assert.equal((await sandbox.files.readText('/workspace/dir with space/../dir with space/naïve ☃.txt')), 'snow');
    await sandbox.files.delete('dir with space', { recursive: true });
    assert.equal(await sandbox.files.exists('dir with space'), false);
    await assert.rejects(vb.get('..'), ValidationError);
    await assert.rejects(sandbox.env.get('..'), ValidationError);
  });
});

describe('fluent chain', () => {
  test('upload → run → run → download → destroy', async () => {
    const local = await mkdtemp(join(tmpdir(), 'vibebox-chain-'));
    await mkdir(join(local, 'src'));
    await writeFile(join(local, 'src', 'index.js'), "console.log('built');\n");
    const box = await vb.sandbox('node-20');
    cleanupLater(() => box.destroy());
    const out = join(local, 'local-dist');
    await box
      .upload(join(local, 'src'))
      .run('mkdir -p dist && node src/index.js > dist/bundle.txt')
      .run('echo extra > dist/extra.txt')
      .download('dist/', out)
      .destroy();
    assert.equal(await readFile(join(out, 'bundle.txt'), 'utf8'), 'built\n');
    assert.equal(await readFile(join(out, 'extra.txt'), 'utf8'), 'extra\n');
    await assertDestroyed(box.id);
  });

  test('a failing step skips the rest and rejects the chain', async () => {
    const box = await vb.sandbox('node-20');
    cleanupLater(() => box.destroy());
    const error = await box
      .run('exit 7')
      .run('echo never > /workspace/never.txt')
      .catch((e: unknown) => e);
    assert.ok(error instanceof CommandExitError);
    assert.equal(error.exitCode, 7);
    assert.equal((await box.exec('test -e /workspace/never.txt')).exitCode, 1);
    const content = await box.run('echo hi > a.txt').download('a.txt');
    assert.equal(content.toString(), 'hi\n');
  });
});
