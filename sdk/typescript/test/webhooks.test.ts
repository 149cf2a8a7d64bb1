// verifyWebhook against deliveries signed independently of the SDK: vectors made by the Standard
// Webhooks reference library (Python `standardwebhooks` 1.0.0, the first one is the spec's own
// test vector), and the spec's algorithm written out here with node:crypto. No server: this suite
// is run by the pytest driver without one (OFFLINE in test_typescript_sdk.py); the receivers in
// examples/webhooks are run against this code by sdk/python/tests/test_webhook_examples.py.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { describe, test } from 'node:test';

import { VibeBoxError, WebhookVerificationError, verifyWebhook, webhookSecretKey } from '../src/index.js';

const FOREVER = { tolerance: Number.MAX_SAFE_INTEGER }; // the reference vectors have fixed, old timestamps

// made by standardwebhooks.Webhook(secret).sign(id, datetime.fromtimestamp(timestamp, UTC), body)
const REFERENCE = [
  {
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
    timestamp: '1614265330',
    body: '{"test": 2432232314}',
    signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
  },
  {
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    id: 'evt_ts',
    timestamp: '1764759600',
    body: '{"type":"sandbox.created","timestamp":"2026-12-03T11:00:00Z","data":{"id":"sbx_1","note":"é ✓"}}',
    signature: 'v1,8Mx8CTGCA2qfeRmzKMADXnbLEPes30DWrnkgO6qDxLY=',
  },
];

const EVENT = {
  type: 'sandbox.created',
  timestamp: '2026-12-03T11:00:00.123456Z',
  data: { id: 'sbx_abc', template: 'python-3', metadata: { ci: 'build-42', note: 'é ✓' } },
};
const BODY = JSON.stringify(EVENT);

/** A secret as the server makes them (32 random bytes: base64 with padding); the spec's minimum is 24. */
function newSecret(size = 32): string {
  return `whsec_${randomBytes(size).toString('base64')}`;
}

/** The spec's algorithm: v1,base64(HMAC-SHA256(base64-decoded secret, "{id}.{timestamp}.{body}")). */
function sign(secret: string, id: string, timestamp: number, body: string | Buffer): string {
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const mac = createHmac('sha256', key).update(Buffer.concat([Buffer.from(`${id}.${timestamp}.`), Buffer.from(body)]));
  return `v1,${mac.digest('base64')}`;
}

function titleCase(name: string): string {
  return name.replace(/(^|-)([a-z])/g, (_, dash: string, letter: string) => dash + letter.toUpperCase());
}

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function delivery(secret: string, body: string | Buffer = BODY, id = 'evt_01', at = now()): Record<string, string> {
  return { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': sign(secret, id, at, body) };
}

function refused(
  code: string,
  body: string | Uint8Array,
  headers: Parameters<typeof verifyWebhook>[1],
  secret: string,
  options = {},
): WebhookVerificationError {
  let caught: unknown;
  try {
    verifyWebhook(body, headers, secret, options);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof WebhookVerificationError, `expected a WebhookVerificationError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe('verifyWebhook', () => {
  test('the reference library’s signatures verify, and anything changed does not', () => {
    for (const vector of REFERENCE) {
      const headers = { 'webhook-id': vector.id, 'webhook-timestamp': vector.timestamp, 'webhook-signature': vector.signature };
      assert.deepEqual(verifyWebhook(vector.body, headers, vector.secret, FOREVER), JSON.parse(vector.body));
      assert.equal(sign(vector.secret, vector.id, Number(vector.timestamp), vector.body), vector.signature);
      refused('webhook_signature_invalid', `${vector.body} `, headers, vector.secret, FOREVER);
      refused('webhook_signature_invalid', vector.body, { ...headers, 'webhook-id': `${vector.id}x` }, vector.secret, FOREVER);
      refused('webhook_signature_invalid', vector.body, headers, newSecret(), FOREVER);
      refused('webhook_timestamp_out_of_tolerance', vector.body, headers, vector.secret); // the default 300 s
    }
  });

  test('a secret of 24, 32 or 64 bytes; a delivery from a Buffer, a Uint8Array, an ArrayBuffer or text', () => {
    for (const size of [24, 64]) {
      const other = newSecret(size);
      assert.deepEqual(verifyWebhook(BODY, delivery(other), other), EVENT);
    }
    const secret = newSecret();
    const headers = delivery(secret);
    const bytes = Buffer.from(BODY);
    assert.deepEqual(verifyWebhook(bytes, headers, secret), EVENT);
    assert.deepEqual(verifyWebhook(new Uint8Array(bytes), headers, secret), EVENT);
    const buffer = new ArrayBuffer(bytes.length);
    new Uint8Array(buffer).set(bytes);
    assert.deepEqual(verifyWebhook(buffer, headers, secret), EVENT);
    const event = verifyWebhook<{ id: string }>(BODY, headers, secret);
    assert.equal(event.data.id, 'sbx_abc');
    assert.equal(event.type, 'sandbox.created');
  });

  test('header names in any case; Node’s req.headers arrays, fetch Headers and a Map', () => {
    const secret = newSecret();
    const lower = delivery(secret);
    const titled = Object.fromEntries(Object.entries(lower).map(([k, v]) => [titleCase(k), v]));
    assert.deepEqual(Object.keys(titled), ['Webhook-Id', 'Webhook-Timestamp', 'Webhook-Signature']);
    assert.deepEqual(verifyWebhook(BODY, titled, secret), EVENT);
    const arrays = Object.fromEntries(Object.entries(lower).map(([k, v]) => [k, [v]]));
    assert.deepEqual(verifyWebhook(BODY, { ...arrays, 'content-type': 'application/json', other: undefined }, secret), EVENT);
    const fetchHeaders = new Headers(Object.entries(lower).map(([k, v]) => [k.toUpperCase(), v] as [string, string]));
    assert.deepEqual(verifyWebhook(BODY, fetchHeaders, secret), EVENT);
    assert.deepEqual(verifyWebhook(BODY, new Map(Object.entries(titled)), secret), EVENT);
  });

  test('a secret without its prefix is the same key; one that is not a secret is a TypeError', () => {
    const secret = newSecret();
    assert.deepEqual(verifyWebhook(BODY, delivery(secret), secret.slice('whsec_'.length)), EVENT);
    assert.equal(webhookSecretKey('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw').length, 24);
    for (const bad of ['whsec_', '', 'whsec_not base64!', 'whsec_abc']) {
      assert.throws(() => verifyWebhook(BODY, delivery(secret), bad), TypeError, bad);
    }
  });

  test('during a rotation any one valid signature is enough', () => {
    const [oldSecret, newer, other] = [newSecret(), newSecret(), newSecret()];
    const at = now();
    const both = `${sign(oldSecret, 'evt_r', at, BODY)} ${sign(newer, 'evt_r', at, BODY)}`;
    const headers = { 'webhook-id': 'evt_r', 'webhook-timestamp': String(at), 'webhook-signature': both };
    assert.deepEqual(verifyWebhook(BODY, headers, oldSecret), EVENT);
    assert.deepEqual(verifyWebhook(BODY, headers, newer), EVENT);
    refused('webhook_signature_invalid', BODY, headers, other);
    // another scheme's entry (v1a: asymmetric) or a broken one next to a valid v1 is skipped
    const mixed = { ...headers, 'webhook-signature': `v1a,AAAA v1,@@@ ${sign(newer, 'evt_r', at, BODY)}` };
    assert.deepEqual(verifyWebhook(BODY, mixed, newer), EVENT);
  });

  test('a changed body, id, timestamp or signature, or another secret, is refused', () => {
    const secret = newSecret();
    const headers = delivery(secret);
    refused('webhook_signature_invalid', BODY.replace('build-42', 'build-43'), headers, secret);
    refused('webhook_signature_invalid', JSON.stringify(EVENT, null, 1), headers, secret); // parsed and serialized again
    refused('webhook_signature_invalid', BODY, { ...headers, 'webhook-id': 'evt_02' }, secret);
    const earlier = String(Number(headers['webhook-timestamp']) - 1);
    refused('webhook_signature_invalid', BODY, { ...headers, 'webhook-timestamp': earlier }, secret);
    refused('webhook_signature_invalid', BODY, headers, newSecret());
    const raw = Buffer.from(headers['webhook-signature']!.slice(3), 'base64');
    raw[0]! ^= 1;
    refused('webhook_signature_invalid', BODY, { ...headers, 'webhook-signature': `v1,${raw.toString('base64')}` }, secret);
    const short = `v1,${raw.subarray(0, 16).toString('base64')}`; // another length: still no throw from timingSafeEqual
    refused('webhook_signature_invalid', BODY, { ...headers, 'webhook-signature': short }, secret);
  });

  test('a timestamp outside the tolerance is refused, too old or too new; the tolerance is an option', () => {
    const secret = newSecret();
    const at = now();
    for (const [offset, word] of [[-301, 'old'], [301, 'new'], [-86400, 'old']] as const) {
      const error = refused('webhook_timestamp_out_of_tolerance', BODY, delivery(secret, BODY, 'evt_t', at + offset), secret);
      assert.match(error.message, new RegExp(`too ${word}`));
      assert.equal(error.details.timestamp, at + offset);
      assert.equal(error.details.tolerance, 300);
    }
    assert.deepEqual(verifyWebhook(BODY, delivery(secret, BODY, 'evt_t', at - 280), secret), EVENT);
    refused('webhook_timestamp_out_of_tolerance', BODY, delivery(secret, BODY, 'evt_t', at - 60), secret, { tolerance: 30 });
    assert.deepEqual(verifyWebhook(BODY, delivery(secret, BODY, 'evt_t', at - 3000), secret, { tolerance: 3600 }), EVENT);
    assert.throws(() => verifyWebhook(BODY, delivery(secret), secret, { tolerance: -1 }), TypeError);
  });

  test('a missing or empty header is refused and named', () => {
    const secret = newSecret();
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const headers = delivery(secret);
      delete headers[name];
      assert.deepEqual(refused('webhook_headers_missing', BODY, headers, secret).details, { missing: [name] });
      refused('webhook_headers_missing', BODY, { ...headers, [name]: '' }, secret);
    }
    assert.deepEqual(refused('webhook_headers_missing', BODY, {}, secret).details, {
      missing: ['webhook-id', 'webhook-timestamp', 'webhook-signature'],
    });
  });

  test('a timestamp that is not unix seconds, or no v1 signature, is malformed', () => {
    const secret = newSecret();
    for (const stamp of ['soon', '1.5e9', '-1', '1764759600.5', '0x10', '9'.repeat(13)]) {
      refused('webhook_headers_malformed', BODY, { ...delivery(secret), 'webhook-timestamp': stamp }, secret);
    }
    for (const signature of ['garbage', 'v1', 'v1,', 'v1,***', 'v2,AAAA', 'v1a,AAAA', 'sha256=abcd']) {
      refused('webhook_headers_malformed', BODY, { ...delivery(secret), 'webhook-signature': signature }, secret);
    }
  });

  test('a signed body that is not a JSON object is refused', () => {
    const secret = newSecret();
    for (const body of ['not json', '[1, 2]', '"text"', '{"a": 1', 'null']) {
      refused('webhook_payload_invalid', body, delivery(secret, body), secret);
    }
    const notUtf8 = Buffer.from([0xff, 0xfe, 0x7b, 0x7d]); // signed as bytes, as the spec's algorithm
    refused('webhook_payload_invalid', notUtf8, delivery(secret, notUtf8), secret);
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{}')]); // refused as Python refuses it
    refused('webhook_payload_invalid', bom, delivery(secret, bom), secret);
  });

  test('the error is a VibeBoxError with no HTTP status', () => {
    const error = refused('webhook_signature_invalid', BODY, delivery(newSecret()), newSecret());
    assert.ok(error instanceof VibeBoxError);
    assert.equal(error.name, 'WebhookVerificationError');
    assert.equal(error.status, undefined);
    assert.equal(error.message, 'no valid webhook signature');
  });
});
