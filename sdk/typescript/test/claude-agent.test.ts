// The orchestrator (`@vibebox/sdk/claude-agent`) against the live server, the real engine, and,
// for Claude tasks, the server's model gateway forwarding to the tests' Anthropic stub (scripted
// by the pytest driver: TS-AGENT-TASK, TS-ANALYZE).
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';

import { VibeBox, type Sandbox } from '../src/index.js';
import { TaskFailedError, VibeBoxAgent, type TaskResult, type Update } from '../src/claude-agent.js';
import { API_KEY, API_URL, GIT_URL, assertDestroyed } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
const user = process.env.VIBEBOX_TEST_GIT_USER ?? '';
const token = process.env.VIBEBOX_TEST_GIT_TOKEN ?? '';
const REPO = GIT_URL.replace('://', `://${user}:${token}@`);

function newAgent(): VibeBoxAgent {
  return new VibeBoxAgent({ apiKey: API_KEY, baseUrl: API_URL, maxParallelSandboxes: 4 });
}

async function tagged(tag: string): Promise<Sandbox[]> {
  return (await vb.list({ metadata: { agentTest: tag } })).filter((sandbox) => sandbox.status !== 'destroyed');
}

describe('claude-agent', () => {
  test('map is bounded, keeps order, reuses sandboxes, shares a context; reduce; all destroyed', async () => {
    const agent = newAgent();
    const tag = randomUUID().slice(0, 8);
    const context = agent.createContext({ sharedData: { suffix: '!' } });
    const used: string[] = [];
    let live = 0;
    let peak = 0;
    const results = await agent.map(
      [1, 2, 3, 4, 5, 6],
      async (item, sandbox, ctx) => {
        used.push(sandbox.id);
        live += 1;
        peak = Math.max(peak, live);
        try {
          const suffix = await ctx?.get<string>('suffix');
          return `${(await sandbox.exec(`echo $(( ${item} * 2 ))`)).stdout.trim()}${suffix}`;
        } finally {
          live -= 1;
        }
      },
      { parallelism: 2, template: 'node-20', context, metadata: { agentTest: tag } },
    );
    assert.deepEqual(results, ['2!', '4!', '6!', '8!', '10!', '12!']);
    assert.equal(new Set(used).size, 2); // two workers, each sandbox reused for three items
    assert.ok(peak <= 2);
    assert.equal(agent.reduce(results, (total, result) => total + result.length, 0), 14);
    assert.deepEqual(agent.alive(), []);
    assert.deepEqual(await tagged(tag), []);
    for (const id of new Set(used)) await assertDestroyed(id);

    const run = await agent.run();
    assert.equal(run.kind, 'map');
    assert.equal(run.status, 'completed');
    assert.equal(run.parallelism, 2);
    assert.deepEqual(run.counts, { pending: 0, running: 0, completed: 6, failed: 0, cancelled: 0, total: 6 });
    assert.deepEqual(
      run.tasks.map((t: { name: string; result: unknown }) => [t.name, t.result]),
      [['1', '2!'], ['2', '4!'], ['3', '6!'], ['4', '8!'], ['5', '10!'], ['6', '12!']],
    );
  });

  test('a failing item is retried in a fresh sandbox; onError sees it alive; TaskFailedError', async () => {
    const agent = newAgent();
    const seen = new Map<number, string[]>();
    const onError: Array<[number, number, string]> = [];
    const results = await agent.map(
      [0, 1, 2],
      async (item, sandbox) => {
        seen.set(item, [...(seen.get(item) ?? []), sandbox.id]);
        if (item === 2 || (item === 1 && seen.get(1)?.length === 1)) {
          await sandbox.exec(`echo broke-${item} > /workspace/build.log`);
          throw new Error(`item ${item} broke`);
        }
        return item;
      },
      {
        parallelism: 2,
        template: 'node-20',
        retries: 1,
        returnExceptions: true,
        onError: async (_error, sandbox, attempt, item) => {
          const log = (await sandbox!.exec('cat /workspace/build.log')).stdout.trim();
          onError.push([item, attempt, log]);
        },
      },
    );
    assert.deepEqual(results.slice(0, 2), [0, 1]);
    const failed = results[2] as unknown as TaskFailedError;
    assert.ok(failed instanceof TaskFailedError);
    assert.equal(failed.attempts, 2);
    assert.match(String((failed.cause as Error).message), /item 2 broke/);
    const ones = seen.get(1) ?? [];
    assert.equal(ones.length, 2);
    assert.notEqual(ones[0], ones[1]); // cleanup-and-retry: the failed attempt's sandbox was replaced
    assert.deepEqual(
      onError.sort(),
      [
        [1, 1, 'broke-1'],
        [2, 1, 'broke-2'],
        [2, 2, 'broke-2'],
      ],
    );
    const run = await agent.run();
    assert.equal(run.status, 'failed');
    assert.equal(run.counts.failed, 1);
    assert.match(run.tasks[2].error, /item 2 broke/);
    await assert.rejects(
      agent.map([1], async () => {
        throw new Error('always');
      }, { template: 'node-20' }),
      TaskFailedError,
    );
    assert.deepEqual(agent.alive(), []);
  });

  test('a persistent pool: submit, execute, acquire/release, waitForCompletion, shutdown', async () => {
    const agent = newAgent();
    const pool = await agent.createPool({ workers: 2, template: 'node-20', persistent: true });
    const workers = pool.sandboxIds;
    assert.equal(workers.length, 2);
    const submitted = [0, 1, 2, 3, 4].map((n) => pool.submit(async (sandbox) => [sandbox.id, (await sandbox.exec(`echo ${n}`)).stdout.trim()]));
    const executed = await pool.execute(async (sandbox) => (await sandbox.exec('node -e "console.log(6 * 7)"')).stdout.trim());
    assert.equal(executed, '42');
    const results = (await pool.waitForCompletion()) as Array<[string, string]>;
    assert.deepEqual(results.slice(0, 5).map(([, out]) => out), ['0', '1', '2', '3', '4']);
    assert.deepEqual(await submitted[0], results[0]);
    assert.ok(results.slice(0, 5).every(([id]) => workers.includes(id))); // the same two sandboxes did every job
    const lent = await pool.acquire();
    assert.ok(workers.includes(lent.id));
    await lent.exec('touch /workspace/lent');
    await pool.release(lent);
    await pool.shutdown();
    for (const id of workers) await assertDestroyed(id);
    assert.throws(() => pool.submit(() => 1), /shut down/);
    const run = await agent.run();
    assert.equal(run.kind, 'pool');
    assert.equal(run.status, 'completed');
    assert.equal(run.counts.completed, 6);
    assert.deepEqual(agent.alive(), []);
  });

  test('streamResults yields started, output and completed updates from several sandboxes', async () => {
    const agent = newAgent();
    const updates: Update[] = [];
    for await (const update of agent.streamResults({
      tasks: ['echo first; sleep 1; echo second', 'echo other', (sandbox) => sandbox.id, 'exit 3'],
      parallelism: 3,
      template: 'node-20',
    })) {
      updates.push(update);
    }
    const started = new Map(updates.filter((u) => u.status === 'started').map((u) => [u.index, u.sandboxId]));
    assert.deepEqual([...started.keys()].sort(), [0, 1, 2, 3]);
    assert.ok(new Set(started.values()).size >= 2);
    const output = updates.filter((u) => u.status === 'output' && u.index === 0).map((u) => u.logs).join('');
    assert.equal(output, 'first\nsecond\n');
    const completed = new Map(updates.filter((u) => u.status === 'completed').map((u) => [u.index, u.result]));
    assert.equal(completed.get(2), started.get(2));
    assert.ok(updates.some((u) => u.index === 3 && u.status === 'failed'));
    assert.deepEqual(agent.alive(), []);
    assert.equal((await agent.run()).kind, 'stream');
  });

  test('task: Claude through the sandbox gateway, tools run in its sandbox, sandbox destroyed', async () => {
    const agent = newAgent();
    const task = await agent.task('TS-AGENT-TASK: look around', { template: 'node-20-claude-code' });
    assert.equal(task.status, 'running');
    const result = await task.waitForCompletion();
    assert.equal(task.status, 'completed');
    assert.equal(task.result, result);
    assert.equal(result.success, true);
    assert.equal(result.text, 'done: from-ts');
    assert.equal(result.turns, 3);
    assert.deepEqual(result.toolCalls.map((call) => call.name), ['run_command', 'read_file']);
    assert.match(result.toolCalls[0]!.output, /"exit_code":0/);
    assert.match(result.toolCalls[0]!.output, /Linux/);
    assert.equal(result.toolCalls[1]!.output, 'from-ts\n'); // written by the command, in the sandbox
    assert.ok(result.usage.inputTokens > 0);
    assert.equal(result.transcript.length, 6);
    assert.equal(result.result[0]?.type, 'text');
    await assertDestroyed(result.sandboxId);
    const run = await agent.run();
    assert.equal(run.kind, 'task');
    assert.equal(run.tasks[0].status, 'completed');
  });

  test('orchestrate: executeAll of { repo, task }, { repo, command } and commands, in order', { skip: GIT_URL ? false : 'no git server' }, async () => {
    const agent = newAgent();
    const orchestrator = agent.orchestrate({ maxWorkers: 3, template: 'node-20-claude-code' });
    const results = await orchestrator.executeAll([
      { repo: REPO, task: 'TS-ANALYZE the repository' },
      { repo: REPO, branch: 'develop', command: 'cat DEVELOP.md' },
      'node --version',
    ]);
    const analysis = results[0] as TaskResult;
    assert.equal(analysis.text, 'analyzed');
    assert.match(analysis.toolCalls[0]!.output, /node test\.js/); // Claude read /repo/package.json
    assert.equal((results[1] as { stdout: string }).stdout, 'develop branch\n');
    assert.match((results[2] as { stdout: string }).stdout, /^v\d+/);
    const run = await agent.run();
    assert.equal(run.kind, 'orchestrate');
    assert.equal(run.parallelism, 3);
    assert.equal(run.tasks[0].name, `${GIT_URL}: TS-ANALYZE the repository`); // no credentials
    assert.deepEqual(agent.alive(), []);
  });
});
