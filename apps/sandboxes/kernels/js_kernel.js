// VibeBox's JavaScript kernel for code contexts (docs/api.md, "Code contexts"). Node's own modules only.
//
// It runs INSIDE a sandbox, as the sandbox user, started by the server as sandboxd's background
// process `node -e <this file> kernel <name>`: it listens on the abstract Unix socket
// `@vibebox-context-<name>` and runs one request at a time in one `vm` context kept between
// requests (the script's completion value is the main result). js_client.js (the server's
// per-execute command) copies its stdin to the kernel and the answer to its stdout.
// The request and answer are those of python_kernel.py. Nothing here is trusted by the server.
'use strict';
const net = require('net');
const vm = require('vm');
const util = require('util');
const path = require('path');
const { Console } = require('console');
const { Writable } = require('stream');
const { createRequire } = require('module');

const args = process.argv.slice(process.argv.length - 2);
const mode = args[0];
const name = args[1];
const address = '\0vibebox-context-' + name;
const CHUNK = 16 * 1024;

class Execution {
  constructor(conn, request) {
    this.conn = conn;
    this.outputLimit = Number(request.outputLimit) || 1 << 20;
    this.resultLimit = Number(request.resultLimit) || 8 << 20;
    this.resultsLimit = Number(request.resultsLimit) || 16 << 20;
    this.resultsSize = 0;
    this.maxResults = Number(request.maxResults) || 100;
    this.sizes = { stdout: 0, stderr: 0 };
    this.pending = { stdout: '', stderr: '' };
    this.results = 0;
    this.truncated = false;
    this.broken = false;
    this.timer = null;
  }
  send(message) {
    if (this.broken) return;
    try {
      this.conn.write(JSON.stringify(message) + '\n');
    } catch (e) {
      this.broken = true;
    }
  }
  write(stream, text) {
    const room = this.outputLimit - this.sizes[stream];
    if (room <= 0) {
      this.truncated = true;
      return;
    }
    if (text.length > room) {
      text = text.slice(0, room);
      this.truncated = true;
    }
    this.sizes[stream] += text.length;
    this.pending[stream] += text;
    if (this.pending[stream].length >= CHUNK) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), 50);
  }
  flush() {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    for (const stream of ['stdout', 'stderr']) {
      const data = this.pending[stream];
      this.pending[stream] = '';
      if (data) this.send({ type: stream, data });
    }
  }
  result(data, isMainResult) {
    this.flush();
    let size = 0;
    for (const value of Object.values(data)) size += typeof value === 'string' ? value.length : JSON.stringify(value).length;
    if (this.results >= this.maxResults || size > this.resultLimit || this.resultsSize + size > this.resultsLimit) {
      this.truncated = true;
      return;
    }
    this.results += 1;
    this.resultsSize += size;
    this.send({ type: 'result', data, isMainResult });
  }
}

function kernel() {
  let current = null;
  let count = 0;
  const sink = (stream) =>
    new Writable({
      write(chunk, encoding, callback) {
        if (current) current.write(stream, chunk.toString());
        callback();
      },
    });
  const userConsole = new Console({ stdout: sink('stdout'), stderr: sink('stderr') });
  // Writes to process.stdout/stderr go to the running request too (a child's inherited fds do not).
  for (const stream of ['stdout', 'stderr']) {
    process[stream].write = (chunk, encoding, callback) => {
      if (current) current.write(stream, typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
      if (typeof encoding === 'function') encoding();
      else if (typeof callback === 'function') callback();
      return true;
    };
  }
  const cwd = process.cwd();
  const context = {
    console: userConsole,
    require: createRequire(path.join(cwd, '__vibebox_context__.js')),
    module: { exports: {} },
    __dirname: cwd,
    __filename: path.join(cwd, '__vibebox_context__.js'),
    display: (...values) => {
      for (const value of values) if (current) current.result(format(value), false);
    },
  };
  context.exports = context.module.exports;
  for (const key of Object.getOwnPropertyNames(globalThis)) {
    if (!(key in context) && key !== 'globalThis') {
      try {
        context[key] = globalThis[key];
      } catch (e) {
        // a getter that throws: left out
      }
    }
  }
  vm.createContext(context);
  // Between requests a SIGINT interrupts nothing (breakOnSigint takes it while a script runs).
  let interrupt = null;
  process.on('SIGINT', () => {
    if (interrupt) interrupt();
  });

  function format(value) {
    const data = { 'text/plain': util.inspect(value, { depth: 4, maxArrayLength: 200, maxStringLength: 100000 }) };
    try {
      if (value && typeof value === 'object') {
        for (const [mime, method] of [
          ['text/html', '_repr_html_'],
          ['text/markdown', '_repr_markdown_'],
          ['image/svg+xml', '_repr_svg_'],
          ['image/png', '_repr_png_'],
        ]) {
          if (typeof value[method] === 'function') {
            const out = value[method]();
            if (typeof out === 'string') data[mime] = out;
            else if (Buffer.isBuffer(out) && mime === 'image/png') data[mime] = out.toString('base64');
          }
        }
      }
    } catch (e) {
      // a broken method is the user's: its value shows as text
    }
    return data;
  }

  function error(execution, err, name) {
    execution.flush();
    let value = '';
    let stack = '';
    let errName = name || 'Error';
    try {
      if (err && typeof err === 'object') {
        errName = name || String(err.name || 'Error');
        value = String(err.message === undefined ? err : err.message);
        stack = String(err.stack || `${errName}: ${value}`);
      } else {
        value = util.inspect(err);
        errName = name || 'Error';
        stack = `Uncaught ${value}`;
      }
    } catch (e) {
      value = '<unprintable error>';
    }
    // The kernel's frames are not the user's business.
    stack = stack
      .split('\n')
      .filter((line) => !/^\s+at /.test(line) || line.includes('<cell-'))
      .join('\n');
    execution.send({ type: 'error', name: errName, value, traceback: stack + '\n' });
  }

  function asyncScript(code, filename) {
    const lines = code.replace(/\s+$/, '').split('\n');
    const last = lines[lines.length - 1].trim().replace(/;$/, '');
    const statement = /^(const|let|var|function|class|if|for|while|do|switch|try|return|throw|import|export)\b|^[{}]/;
    if (last && !statement.test(last)) {
      const body = [...lines.slice(0, -1), `return (${last}\n);`].join('\n');
      try {
        return new vm.Script(`(async () => {\n${body}\n})()`, { filename, lineOffset: -1 });
      } catch (err) {
        // not an expression after all: the plain body below
      }
    }
    return new vm.Script(`(async () => {\n${code}\n})()`, { filename, lineOffset: -1 });
  }

  async function run(execution, request) {
    count += 1;
    const code = String(request.code || '');
    const timeout = Number(request.timeout) || 0;
    const filename = `<cell-${count}>`;
    const started = Date.now();
    let value;
    try {
      let script;
      try {
        script = new vm.Script(code, { filename });
      } catch (err) {
        if (!(err instanceof SyntaxError) || !/await/.test(code)) throw err;
        // Top-level await: the code runs as an async function's body (its declarations stay
        // local to it). Its value: what it returns, or its last line when that is an expression.
        script = asyncScript(code, filename);
      }
      const options = { breakOnSigint: true };
      if (timeout > 0) options.timeout = Math.max(1, Math.round(timeout * 1000));
      value = script.runInContext(context, options);
      if (value && typeof value.then === 'function') {
        const left = timeout > 0 ? Math.max(1, timeout * 1000 - (Date.now() - started)) : 0;
        value = await new Promise((resolve, reject) => {
          let timer = null;
          if (left) timer = setTimeout(() => reject(Object.assign(new Error(`Execution timed out after ${timeout} s`), { vibebox: 'TimeoutError' })), left);
          interrupt = () => reject(Object.assign(new Error('Interrupted'), { vibebox: 'KeyboardInterrupt' }));
          Promise.resolve(value).then(resolve, reject).finally(() => timer && clearTimeout(timer));
        });
      }
      interrupt = null;
      if (value !== undefined) {
        context._ = value;
        execution.result(format(value), true);
      }
    } catch (err) {
      interrupt = null;
      const code = err && err.code;
      if (code === 'ERR_SCRIPT_EXECUTION_TIMEOUT' || (err && err.vibebox === 'TimeoutError')) {
        error(execution, { name: 'TimeoutError', message: `Execution timed out after ${timeout} s`, stack: `TimeoutError: Execution timed out after ${timeout} s` }, 'TimeoutError');
      } else if (code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || (err && err.vibebox === 'KeyboardInterrupt')) {
        error(execution, { name: 'KeyboardInterrupt', message: 'Interrupted', stack: 'KeyboardInterrupt: Interrupted' }, 'KeyboardInterrupt');
      } else {
        error(execution, err);
      }
    }
    execution.flush();
    execution.send({ type: 'done', executionCount: count, truncated: execution.truncated });
  }

  const queue = [];
  let busy = false;
  async function next() {
    if (busy || !queue.length) return;
    busy = true;
    const [conn, request] = queue.shift();
    const execution = new Execution(conn, request);
    current = execution;
    try {
      await run(execution, request);
    } catch (e) {
      // the kernel outlives any request
    }
    current = null;
    conn.end();
    busy = false;
    setImmediate(next);
  }

  const server = net.createServer((conn) => {
    let raw = '';
    conn.setEncoding('utf8');
    conn.on('error', () => {});
    const onData = (chunk) => {
      raw += chunk;
      if (raw.length > 64 * 1024 * 1024) conn.destroy();
      const end = raw.indexOf('\n');
      if (end < 0) return;
      conn.removeListener('data', onData);
      let request;
      try {
        request = JSON.parse(raw.slice(0, end));
      } catch (e) {
        conn.destroy();
        return;
      }
      queue.push([conn, request]);
      next();
    };
    conn.on('data', onData);
  });
  server.listen(address);
}

if (mode === 'kernel') kernel();
else {
  process.stderr.write('usage: kernel NAME\n');
  process.exitCode = 2;
}
