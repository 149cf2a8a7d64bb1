// The per-execute client of a code context's JavaScript kernel (js_kernel.js), as python_client.py:
// stdin (one JSON request) to the kernel's abstract Unix socket, its answer to stdout.
// Run as `node -e <this file> <kernel name>`.
'use strict';
const net = require('net');

const name = process.argv[process.argv.length - 1];
const chunks = [];
const deadline = Date.now() + 10000; // a kernel just started may not listen yet
const connect = () => {
  const conn = net.createConnection('\0vibebox-context-' + name);
  let connected = false;
  conn.on('error', (err) => {
    if (connected) return;
    if (Date.now() < deadline) {
      setTimeout(connect, 20);
      return;
    }
    process.stdout.write(JSON.stringify({ type: 'dead', reason: String(err.message) }) + '\n');
    process.exitCode = 3;
  });
  conn.on('connect', () => {
    connected = true;
    const request = Buffer.concat(chunks).toString().replace(/\n+$/, '');
    conn.write(request + '\n');
    conn.pipe(process.stdout);
  });
};
process.stdin.on('data', (chunk) => chunks.push(chunk));
process.stdin.on('end', connect);
