// Timed through the TypeScript SDK (sdk/typescript/dist) against a live server; prints JSON samples
// in seconds. Run by bench/sdk_typescript.py, which measures the docker-py baseline in the same run.
import { VibeBox } from '../sdk/typescript/dist/index.js';

const repeat = Number(process.argv[2] ?? 50);
const sandboxId = process.argv[3];
const vb = new VibeBox();

async function timed(fn, n) {
  const samples = [];
  for (let i = 0; i < n; i++) {
    const start = process.hrtime.bigint();
    await fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  return samples;
}

const sandbox = await vb.get(sandboxId);
for (let i = 0; i < 5; i++) await sandbox.exec(['true']); // warm up the connection pool
const exec = await timed(() => sandbox.exec(['true']), repeat);
const run = await timed(() => sandbox.run('1', { language: 'python' }), Math.max(5, Math.floor(repeat / 5)));
const stream = await timed(async () => (await sandbox.exec(['true'], { stream: true })).wait(), Math.max(5, Math.floor(repeat / 5)));
const lifecycle = await timed(async () => {
  const box = await vb.sandbox('python-3');
  await box.exec(['true']);
  await box.destroy();
}, Math.max(5, Math.floor(repeat / 5)));
const memory = process.memoryUsage();
console.log(JSON.stringify({ exec, run, stream, lifecycle, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed }));
