// Multi-repository analysis (product spec 2.3): Claude analyses each repository in a sandbox of
// its own, the repositories spread over an orchestrator's workers; progress is streamed.
//
//   REPOS="https://github.com/user/repo1.git,https://github.com/user/repo2.git" node multi-repo-analysis.js
//
// VIBEBOX_API_KEY and VIBEBOX_API_URL say which VibeBox. Claude is reached with ANTHROPIC_API_KEY
// if set, else through each sandbox's VibeBox model gateway (VibeBox holds the key and meters it).
// The last line printed is the report (JSON).
import { VibeBoxAgent, type TaskResult } from '@vibebox/sdk/claude-agent';

const repos = (process.env.REPOS ?? 'https://github.com/user/repo1.git,https://github.com/user/repo2.git').split(',');
const prompt = process.env.PROMPT ?? 'Analyze this repository: what it does, how it is tested, what to improve.';
const agent = new VibeBoxAgent({
  apiKey: process.env.VIBEBOX_API_KEY,
  claudeApiKey: process.env.ANTHROPIC_API_KEY,
  maxParallelSandboxes: 10,
});

// A quick inventory first, streamed as each sandbox reports.
const inventory: Record<number, string> = {};
for await (const update of agent.streamResults({
  tasks: repos.map((repo) => async (sandbox) => {
    await sandbox.git.clone(repo, { path: '/repo' });
    return (await sandbox.exec('git -C /repo ls-files | wc -l')).stdout.trim();
  }),
  parallelism: 3,
  template: 'node-20',
})) {
  console.error(`Sandbox ${update.sandboxId}: ${update.status}`);
  if (update.status === 'completed') inventory[update.index] = String(update.result);
}

// Then Claude on every repository, in parallel.
const orchestrator = agent.orchestrate({ maxWorkers: 5, template: 'node-20-claude-code' });
const results = (await orchestrator.executeAll(repos.map((repo) => ({ repo, task: prompt })))) as TaskResult[];

const report = repos.map((repo, index) => ({
  repo: repo.replace(/:\/\/[^/@]*@/, '://'),
  files: Number(inventory[index] ?? 0),
  analysis: results[index]?.text ?? '',
  toolCalls: results[index]?.toolCalls.length ?? 0,
}));
console.log(JSON.stringify({ report, runId: agent.lastRunId }));
