/**
 * Checking the webhooks VibeBox delivers (the Standard Webhooks scheme, https://www.standardwebhooks.com).
 *
 * Each delivery is a `POST` of JSON `{"type", "timestamp", "data"}` with the headers `webhook-id`
 * (the event's id, the same on every retry: dedupe on it), `webhook-timestamp` (unix seconds, when
 * this attempt was sent) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
 * `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the endpoint's secret (`whsec_` + base64;
 * the HMAC key is the decoded bytes). After a secret rotation the header holds several signatures,
 * space-separated; one valid signature is enough. Only `node:crypto` is used.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { verifyWebhook, WebhookVerificationError } from '@vibebox/sdk';
 *
 * createServer(async (req, res) => {
 *   const chunks: Buffer[] = [];
 *   for await (const chunk of req) chunks.push(chunk as Buffer);
 *   try {
 *     const event = verifyWebhook(Buffer.concat(chunks), req.headers, process.env.WEBHOOK_SECRET!);
 *     console.log(event.type, event.data);
 *     res.writeHead(204).end();
 *   } catch (error) {
 *     res.writeHead(error instanceof WebhookVerificationError ? 400 : 500).end();
 *   }
 * }).listen(8000);
 * ```
 * @module
 */

import { createHmac, timingSafeEqual } from 'node:crypto';

import { WebhookVerificationError } from './errors.js';

/**
 * The prefix of a webhook secret (`whsec_` + base64 of its key).
 * @example
 * ```ts
 * secret.startsWith(WEBHOOK_SECRET_PREFIX); // true for a secret VibeBox made
 * ```
 */
export const WEBHOOK_SECRET_PREFIX = 'whsec_';

/**
 * How many seconds a delivery's `webhook-timestamp` may be away from this clock by default (5 minutes).
 * @example
 * ```ts
 * verifyWebhook(body, headers, secret, { tolerance: DEFAULT_WEBHOOK_TOLERANCE * 2 });
 * ```
 */
export const DEFAULT_WEBHOOK_TOLERANCE = 300;

const HEADERS = ['webhook-id', 'webhook-timestamp', 'webhook-signature'] as const;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const TIMESTAMP = /^[0-9]{1,12}$/;

/**
 * A delivery's headers: Node's `req.headers` (lower-case names, values that may be arrays), a plain
 * object with names in any case, or anything with `entries()` (fetch's `Headers`, a `Map`).
 * @example
 * ```ts
 * const headers: WebhookHeaders = { 'Webhook-Id': 'evt_1', 'Webhook-Timestamp': '1764759600', 'Webhook-Signature': 'v1,…' };
 * ```
 */
export type WebhookHeaders =
  | { entries(): Iterable<[string, string]> }
  | Record<string, string | readonly string[] | undefined>;

/**
 * Options of {@link verifyWebhook}.
 * @example
 * ```ts
 * const options: VerifyWebhookOptions = { tolerance: 60 };
 * ```
 */
export interface VerifyWebhookOptions {
  /** Seconds the delivery's `webhook-timestamp` may differ from this clock, either way (default 300). */
  tolerance?: number;
}

/**
 * A delivered event: `type` (`sandbox.created`, `execution.completed`…), `timestamp` (ISO 8601, when
 * it happened) and `data` (for a sandbox event the same JSON as `GET /sandboxes/{id}`).
 * @example
 * ```ts
 * const event: WebhookEvent = verifyWebhook(body, headers, secret);
 * if (event.type === 'sandbox.created') console.log(event.data.id);
 * ```
 */
export interface WebhookEvent<Data = Record<string, unknown>> {
  type: string;
  timestamp: string;
  data: Data;
  [key: string]: unknown;
}

/**
 * Checks one delivery and answers its event (the parsed JSON body).
 *
 * `body` is the request body exactly as received (a `Buffer`/`Uint8Array`, or its UTF-8 text: never
 * JSON parsed and serialized again); `headers` the request's headers, names in any case; `secret`
 * the endpoint's `whsec_…` (the prefix may be left out). Throws {@link WebhookVerificationError}
 * when the delivery must be refused (see its `code`), and a `TypeError` for a secret that is not
 * one (a configuration mistake, not a bad delivery). Signatures are compared in constant time.
 *
 * @example
 * ```ts
 * const event = verifyWebhook(rawBody, req.headers, process.env.WEBHOOK_SECRET!, { tolerance: 300 });
 * console.log(event.type, req.headers['webhook-id']); // dedupe on webhook-id: retries repeat it
 * ```
 */
export function verifyWebhook<Data = Record<string, unknown>>(
  body: string | Uint8Array | ArrayBuffer,
  headers: WebhookHeaders,
  secret: string,
  options: VerifyWebhookOptions = {},
): WebhookEvent<Data> {
  const tolerance = options.tolerance ?? DEFAULT_WEBHOOK_TOLERANCE;
  if (typeof tolerance !== 'number' || Number.isNaN(tolerance) || tolerance < 0) {
    throw new TypeError('tolerance is a number of seconds, 0 or more');
  }
  const key = webhookSecretKey(secret);
  const raw = typeof body === 'string' ? Buffer.from(body, 'utf8') : Buffer.from(body instanceof ArrayBuffer ? new Uint8Array(body) : body);
  const found = webhookHeaders(headers);
  const missing = HEADERS.filter((name) => !found.get(name));
  if (missing.length) {
    throw new WebhookVerificationError(`missing webhook header(s): ${missing.join(', ')}`, {
      code: 'webhook_headers_missing',
      details: { missing },
    });
  }
  const [id, stamp, signatures] = HEADERS.map((name) => found.get(name) ?? '') as [string, string, string];
  if (!TIMESTAMP.test(stamp)) {
    throw new WebhookVerificationError('webhook-timestamp is not unix seconds', {
      code: 'webhook_headers_malformed',
      details: { header: stamp.slice(0, 40) },
    });
  }
  const timestamp = Number(stamp);
  const now = Math.floor(Date.now() / 1000);
  const skew = Math.abs(now - timestamp);
  if (skew > tolerance) {
    throw new WebhookVerificationError(
      `webhook-timestamp is too ${timestamp < now ? 'old' : 'new'}: ${skew} s from this clock, tolerance ${tolerance} s`,
      { code: 'webhook_timestamp_out_of_tolerance', details: { timestamp, now, tolerance } },
    );
  }
  const expected = createHmac('sha256', key).update(`${id}.${stamp}.`).update(raw).digest();
  const candidates = v1Signatures(signatures);
  if (!candidates.length) {
    throw new WebhookVerificationError('webhook-signature holds no v1 signature', { code: 'webhook_headers_malformed' });
  }
  let matched = false;
  for (const candidate of candidates) {
    // every one is compared: the time does not depend on which matched
    const same = candidate.length === expected.length && timingSafeEqual(candidate, expected);
    matched = same || matched;
  }
  if (!matched) throw new WebhookVerificationError('no valid webhook signature', { code: 'webhook_signature_invalid' });
  let event: unknown;
  try {
    event = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(raw));
  } catch {
    event = undefined;
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new WebhookVerificationError("the webhook's body is not a JSON object", { code: 'webhook_payload_invalid' });
  }
  return event as WebhookEvent<Data>;
}

/**
 * The HMAC key of a webhook secret: the bytes its base64 (after `whsec_`) encodes. A string that is
 * not one throws a `TypeError`.
 * @example
 * ```ts
 * webhookSecretKey('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').length; // 24
 * ```
 */
export function webhookSecretKey(secret: string): Buffer {
  if (typeof secret !== 'string') throw new TypeError('the webhook secret is a string (whsec_...)');
  let encoded = secret.trim();
  if (encoded.startsWith(WEBHOOK_SECRET_PREFIX)) encoded = encoded.slice(WEBHOOK_SECRET_PREFIX.length);
  if (!encoded) throw new TypeError('the webhook secret is empty');
  if (!BASE64.test(encoded)) throw new TypeError('not a webhook secret: expected whsec_ followed by base64');
  return Buffer.from(encoded, 'base64');
}

/** The three webhook headers by lower-case name (the first value of a repeated one). */
function webhookHeaders(headers: WebhookHeaders): Map<string, string> {
  const found = new Map<string, string>();
  const entries: Iterable<[string, unknown]> =
    typeof (headers as { entries?: unknown }).entries === 'function'
      ? (headers as { entries(): Iterable<[string, string]> }).entries()
      : Object.entries(headers);
  for (const [rawName, rawValue] of entries) {
    const name = String(rawName).toLowerCase();
    if (!(HEADERS as readonly string[]).includes(name) || found.has(name)) continue;
    const value = Array.isArray(rawValue) ? rawValue[0] : rawValue;
    if (value === undefined || value === null) continue;
    found.set(name, String(value).trim());
  }
  return found;
}

/** The decoded `v1,<base64>` entries of a webhook-signature header; other schemes (`v1a`…) are skipped. */
function v1Signatures(header: string): Buffer[] {
  const decoded: Buffer[] = [];
  for (const entry of header.split(/\s+/)) {
    const comma = entry.indexOf(',');
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const value = entry.slice(comma + 1);
    if (value && BASE64.test(value)) decoded.push(Buffer.from(value, 'base64'));
  }
  return decoded;
}
