// A VibeBox webhook receiver with node:http only (plus @vibebox/sdk for the signature).
//
//   npm install @vibebox/sdk
//   WEBHOOK_SECRET=whsec_... node receiver.mjs      # PORT=8000 HOST=127.0.0.1 WEBHOOK_STORE=webhooks.json
//
// For every POST it:
// 1. checks the signature and the timestamp with verifyWebhook (400 when they are wrong: a
//    forgery, a body changed on the way, or a replay);
// 2. records the event in a JSON file keyed by webhook-id (the event's id, the same on every
//    retry), written before answering: a delivery whose id is there already is a duplicate,
//    answered 200 and not processed again;
// 3. answers 2xx at once, and processes the event afterwards (VibeBox waits 15 s at most for an
//    answer, then retries). An event recorded but not processed (the process stopped) is processed
//    when the receiver starts again.
//
// A JSON file suits an example; a real receiver would use its database (a unique key on webhook-id).
// Replace processEvent with what your system does with an event.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import { verifyWebhook, webhookSecretKey, WebhookVerificationError } from '@vibebox/sdk';

const MAX_BODY = 1024 * 1024; // VibeBox's events are far smaller

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error("set WEBHOOK_SECRET to the endpoint's secret (whsec_...)");
  process.exit(1);
}
webhookSecretKey(secret); // a value that is not a secret stops here, not at the first delivery
const storePath = process.env.WEBHOOK_STORE ?? 'webhooks.json';

/** The dedupe store: { events: { [webhookId]: { type, event, receivedAt, deliveries, processedAt } } }. */
const store = existsSync(storePath) ? JSON.parse(readFileSync(storePath, 'utf8')) : { events: {} };

function save() {
  // all at once: a crash mid-write leaves the previous file, never half of one
  writeFileSync(`${storePath}.tmp`, JSON.stringify(store));
  renameSync(`${storePath}.tmp`, storePath);
}

/** Your work goes here (it runs after the answer was sent). This one prints the event. */
async function processEvent(webhookId, event) {
  console.log(`processed ${webhookId} ${event.type} ${event.data?.id ?? ''}`.trimEnd());
}

async function processStored(webhookId) {
  const entry = store.events[webhookId];
  try {
    await processEvent(webhookId, entry.event);
  } catch (error) {
    console.error(`failed ${webhookId}: ${error}`); // stays unprocessed: tried again at the next start
    return;
  }
  entry.processedAt = new Date().toISOString();
  save();
}

function answer(res, status, payload) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
}

const server = createServer(async (req, res) => {
  if (req.method !== 'POST') return answer(res, 405, { error: 'method_not_allowed' });
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length; // read to the end: a server that answers before reading may reset the connection
    if (size <= MAX_BODY) chunks.push(chunk);
  }
  if (size > MAX_BODY) return answer(res, 413, { error: 'too_large' });
  const body = Buffer.concat(chunks); // the raw bytes: never parse and serialize again before checking
  let event;
  try {
    event = verifyWebhook(body, req.headers, secret);
  } catch (error) {
    if (error instanceof WebhookVerificationError) return answer(res, 400, { error: error.code });
    console.error(error);
    return answer(res, 500, { error: 'internal' });
  }
  const webhookId = req.headers['webhook-id'];
  const seen = store.events[webhookId];
  if (seen) {
    seen.deliveries += 1;
    save();
    return answer(res, 200, { duplicate: true });
  }
  store.events[webhookId] = { type: event.type, event, receivedAt: new Date().toISOString(), deliveries: 1, processedAt: null };
  save(); // recorded before the answer: a retry after a crash is still seen as a duplicate
  answer(res, 202, { accepted: true });
  setImmediate(() => processStored(webhookId)); // processed after the answer
});

const host = process.env.HOST ?? '127.0.0.1';
server.listen(Number(process.env.PORT ?? 8000), host, () => {
  console.log(`listening on http://${host}:${server.address().port}`);
  for (const [webhookId, entry] of Object.entries(store.events)) {
    if (!entry.processedAt) setImmediate(() => processStored(webhookId)); // recorded before a stop, never processed
  }
});
