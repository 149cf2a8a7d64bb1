/**
 * Streamed exports (the audit log's, billing usage's): the answer's lines as they arrive, or the
 * bytes written to a file. One place for both namespaces.
 */

import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import type { Call, Transport } from './transport.js';

/**
 * Splits a byte stream into lines (without their ends).
 * @example `for await (const line of lines(response.body)) console.log(line);`
 */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let rest = '';
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    rest += decoder.decode(chunk, { stream: true });
    const parts = rest.split('\n');
    rest = parts.pop() ?? '';
    for (const part of parts) yield part.replace(/\r$/, '');
  }
  rest += decoder.decode();
  if (rest) yield rest.replace(/\r$/, '');
}

/**
 * `call`'s answer line by line, or (with `file`) streamed into the file: the bytes written.
 * @example `const written = await exportLines(transport, call, 'usage.csv');`
 */
export function exportLines(transport: Transport, call: Call, file?: string): Promise<number> | AsyncGenerator<string> {
  if (file === undefined) {
    return (async function* () {
      const response = await transport.send(call);
      if (response.body) yield* lines(response.body);
    })();
  }
  return (async () => {
    const response = await transport.send(call);
    let written = 0;
    const count = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        written += chunk.length;
        done(null, chunk);
      },
    });
    const source = response.body ? Readable.fromWeb(response.body as WebReadableStream<Uint8Array>) : Readable.from([]);
    await pipeline(source, count, createWriteStream(file));
    return written;
  })();
}
