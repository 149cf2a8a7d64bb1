// Parallel testing (product spec 2.3): every repository's test suite in a sandbox of its own,
// at most PARALLELISM at once; a summary is reduced from the results.
//
//   REPOS="https://github.com/user/repo1.git,https://github.com/user/repo2.git" node parallel-testing.js
//
// VIBEBOX_API_KEY and VIBEBOX_API_URL say which VibeBox; the last line printed is the summary (JSON).
import { VibeBoxAgent } from '@vibebox/sdk/claude-agent';

const repos = (process.env.REPOS ?? 'https://github.com/user/repo1.git,https://github.com/user/repo2.git').split(',');
const agent = new VibeBoxAgent({ apiKey: process.env.VIBEBOX_API_KEY, maxParallelSandboxes: 10 });

function parseCoverage(output: string): number {
  const found = /coverage[^\d]*(\d+(?:\.\d+)?)%/i.exec(output);
  return found ? Number(found[1]) : 0;
}

// Map: each repository cloned, installed and tested in parallel sandboxes.
const analyses = await agent.map(
  repos,
  async (repo, sandbox) => {
    await sandbox.git.clone(repo, { path: '/repo' });
    await sandbox.run('npm install', { cwd: '/repo' });
    const result = await sandbox.run('npm test', { cwd: '/repo', check: false });
    return { repo, passed: result.exitCode === 0, coverage: parseCoverage(result.output) };
  },
  { parallelism: Number(process.env.PARALLELISM ?? 3), template: 'node-20', retries: 1 },
);

// Reduce: one summary.
const summary = agent.reduce(
  analyses,
  (acc, result) => {
    acc.total++;
    if (result.passed) acc.passed++;
    acc.avgCoverage += result.coverage / analyses.length;
    return acc;
  },
  { total: 0, passed: 0, avgCoverage: 0 },
);

console.log(JSON.stringify({ ...summary, runId: agent.lastRunId }));
