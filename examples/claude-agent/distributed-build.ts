// Distributed build (product spec 2.3): the components of a project built in parallel by a
// persistent worker pool, each build in a worker's sandbox; the artifacts come back here.
//
//   COMPONENTS="api,web,worker" node distributed-build.js
//
// VIBEBOX_API_KEY and VIBEBOX_API_URL say which VibeBox; the last line printed is the result (JSON).
import { createHash } from 'node:crypto';

import { VibeBoxAgent } from '@vibebox/sdk/claude-agent';

const components = (process.env.COMPONENTS ?? 'api,web,worker').split(',');
const agent = new VibeBoxAgent({ apiKey: process.env.VIBEBOX_API_KEY, maxParallelSandboxes: 10 });

const pool = await agent.createPool({ workers: Number(process.env.WORKERS ?? 2), template: 'node-20', persistent: true });
try {
  // Each component: its source written, "compiled" (bundled and minified by a small Node script),
  // its artifact read back. A real build would clone and run `npm run build` the same way.
  const builds = components.map((name) =>
    pool.submit(async (sandbox) => {
      const dir = `/workspace/${name}`;
      await sandbox.files.write(`${dir}/src/index.js`, `export const component = ${JSON.stringify(name)};\n// built by VibeBox\n`);
      await sandbox.files.write(
        `${dir}/build.js`,
        "const fs = require('fs');\n" +
          "const source = fs.readFileSync('src/index.js', 'utf8');\n" +
          "fs.mkdirSync('dist', { recursive: true });\n" +
          "fs.writeFileSync('dist/index.min.js', source.split('\\n').filter((l) => l && !l.startsWith('//')).join(''));\n",
      );
      await sandbox.run('node build.js', { cwd: dir });
      const artifact = await sandbox.files.readText(`${dir}/dist/index.min.js`);
      return { name, sandboxId: sandbox.id, artifact, sha256: createHash('sha256').update(artifact).digest('hex') };
    }),
  );
  await pool.waitForCompletion();
  const artifacts = await Promise.all(builds);
  console.log(JSON.stringify({ workers: pool.sandboxIds, artifacts, runId: agent.lastRunId }));
} finally {
  await pool.shutdown();
}
