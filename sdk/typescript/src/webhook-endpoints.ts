/**
 * `vb.webhooks`: the organization's webhooks, endpoints VibeBox POSTs signed events to, and their
 * deliveries (docs/webhooks.md). Everything needs the webhooks.manage permission (owners and
 * admins) and, for a key, the `webhooks:manage` scope; another organization's webhook is a
 * `WebhookNotFoundError`. Checking the deliveries you receive: `verifyWebhook` (webhooks.ts).
 * @module
 */

import { API, body, segment } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { Schemas } from './types.js';
import type { WebhookEvent } from './webhooks.js';

/**
 * An event name a webhook can subscribe to, or `'*'` for all of them.
 * @example
 * ```ts
 * const events: WebhookEventName[] = ['sandbox.created', 'execution.failed'];
 * ```
 */
export type WebhookEventName = Schemas['WebhookEventEnum'];

/**
 * Narrows a webhook to some sandboxes; every key given must match (`{}`: every event).
 * @example
 * ```ts
 * const filter: WebhookFilter = { template: 'python-3', metadata: { ci: 'run-42' } };
 * ```
 */
export type WebhookFilter = Schemas['WebhookFilterRequest'];

/**
 * A webhook as listed and read (never its secret); `disabledReason` is set when the server turned it off.
 * @example
 * ```ts
 * for (const hook of await vb.webhooks.list()) console.log(hook.id, hook.url, hook.events, hook.active);
 * ```
 */
export type Webhook = Omit<Schemas['Webhook'], 'filter'> & { filter: WebhookFilter };

/**
 * A webhook just created, or whose secret was just rotated: `secret` (`whsec_…`) is shown only here.
 * @example
 * ```ts
 * const { id, secret } = await vb.webhooks.create('https://example.com/hooks', ['sandbox.created']);
 * ```
 */
export type WebhookWithSecret = Omit<Schemas['WebhookWithSecret'], 'filter'> & { filter: WebhookFilter };

/**
 * One event sent (or to be sent) to a webhook: `eventId` is the `webhook-id` header, the same on
 * every attempt and redelivery.
 * @example
 * ```ts
 * const [latest] = await vb.webhooks.deliveries(hook, { limit: 1 });
 * console.log(latest?.event, latest?.status, latest?.responseStatus);
 * ```
 */
export type Delivery = Schemas['Delivery'];

/**
 * A delivery's state: `pending`, `succeeded`, `retrying` or `failed`.
 * @example
 * ```ts
 * const failed = await vb.webhooks.deliveries(hook, { status: 'failed' satisfies DeliveryStatus });
 * ```
 */
export type DeliveryStatus = Schemas['DeliveryStatusEnum'];

/**
 * One attempt of a delivery: the answer's `statusCode`, or why none came (`error`), headers both
 * ways and the answer's first 4 KiB.
 * @example
 * ```ts
 * for (const attempt of (await vb.webhooks.delivery(hook, id)).attemptLog) console.log(attempt.statusCode, attempt.error);
 * ```
 */
export type DeliveryAttempt = Schemas['DeliveryAttempt'];

/**
 * A delivery with its `payload` (the request body) and `attemptLog`.
 * @example
 * ```ts
 * const { payload, attemptLog } = await vb.webhooks.delivery(hook, deliveryId);
 * console.log(payload.type, attemptLog.length);
 * ```
 */
export type DeliveryDetail = Omit<Schemas['DeliveryDetail'], 'payload'> & { payload: WebhookEvent };

/**
 * A webhook: its id (`whk_…`), or the webhook itself.
 * @example
 * ```ts
 * const ref: WebhookRef = 'whk_3kT9';
 * ```
 */
export type WebhookRef = string | Pick<Webhook, 'id'>;

/**
 * A delivery: its id (`dlv_…`), or the delivery itself.
 * @example
 * ```ts
 * const ref: DeliveryRef = 'dlv_8Pq2';
 * ```
 */
export type DeliveryRef = string | Pick<Delivery, 'id'>;

/**
 * What `vb.webhooks.create()` takes besides the URL and the events.
 * @example
 * ```ts
 * const options: WebhookCreateOptions = { description: 'CI', filter: { template: 'python-3' } };
 * ```
 */
export interface WebhookCreateOptions {
  /** What the endpoint is for (at most 500 characters). */
  description?: string;
  /** `false` creates it turned off: nothing is sent until it is turned on (default `true`). */
  active?: boolean;
  filter?: WebhookFilter;
}

/**
 * What `vb.webhooks.update()` changes.
 * @example
 * ```ts
 * await vb.webhooks.update(hook, { events: ['*'], active: true, filter: {} });
 * ```
 */
export interface WebhookUpdateOptions {
  url?: string;
  events?: WebhookEventName[];
  description?: string;
  /** `true` also turns on one the server disabled (and sends what waited). */
  active?: boolean;
  /** Replaces the filter; `{}` removes it. */
  filter?: WebhookFilter;
}

/**
 * Filters of `vb.webhooks.deliveries()`, and `limit`: at most this many (default: every page).
 * @example
 * ```ts
 * const options: DeliveryListOptions = { status: 'failed', event: 'sandbox.created', limit: 20 };
 * ```
 */
export interface DeliveryListOptions {
  status?: DeliveryStatus;
  event?: string;
  limit?: number;
}

const FEATURE = 'webhooks';
const PAGE = 100;

function idOf(ref: WebhookRef | DeliveryRef): string {
  return typeof ref === 'string' ? ref : ref.id;
}

/**
 * Webhooks: create, list, get, update, delete, rotateSecret, test, deliveries, delivery, redeliver.
 * @example
 * ```ts
 * const hook = await vb.webhooks.create('https://example.com/hooks', ['sandbox.created', 'execution.failed']);
 * console.log(hook.secret); // whsec_…: shown only here, store it now
 * const test = await vb.webhooks.test(hook); // a webhook.test event, sent at once
 * const detail = await vb.webhooks.delivery(hook, test); // later: its attempts
 * await vb.webhooks.redeliver(hook, test); // the same event (same webhook-id), again
 * ```
 */
export class Webhooks {
  constructor(private readonly transport: Transport) {}

  private path(webhook: WebhookRef, ...parts: string[]): string {
    return [`${API}/webhooks`, ...[idOf(webhook), ...parts].map((part) => segment(part))].join('/');
  }

  private async pages<T>(path: string, query: Query, limit?: number): Promise<T[]> {
    const found: T[] = [];
    const wanted = limit ?? Number.POSITIVE_INFINITY;
    while (found.length < wanted) {
      const size = Math.min(PAGE, wanted - found.length);
      const page = await this.transport.json<{ next: string | null; results: T[] }>({
        method: 'GET',
        path,
        query: { ...query, limit: size, offset: found.length },
        feature: FEATURE,
      });
      found.push(...page.results);
      if (!page.next || page.results.length === 0) break;
    }
    return found;
  }

  /**
   * A new endpoint of the organization, with its `secret`: the only time it is shown. `events`:
   * names from docs/webhooks.md or `['*']` (`UnknownEventError` for others).
   * @example
   * ```ts
   * const hook = await vb.webhooks.create('https://example.com/hooks', ['*'], { description: 'all events' });
   * ```
   */
  create(url: string, events: WebhookEventName[], options: WebhookCreateOptions = {}): Promise<WebhookWithSecret> {
    const json = body({ url, events, ...options }) satisfies Partial<Record<keyof Schemas['WebhookCreateRequest'], unknown>>;
    return this.transport.json({ method: 'POST', path: `${API}/webhooks`, json, feature: FEATURE });
  }

  /**
   * The organization's webhooks, newest first: every page, or the first `limit`.
   * @example
   * ```ts
   * const hooks = await vb.webhooks.list();
   * ```
   */
  list(options: { limit?: number } = {}): Promise<Webhook[]> {
    return this.pages<Webhook>(`${API}/webhooks`, {}, options.limit);
  }

  /**
   * One webhook (never its secret).
   * @example
   * ```ts
   * const { url, events, active } = await vb.webhooks.get('whk_3kT9');
   * ```
   */
  get(webhook: WebhookRef): Promise<Webhook> {
    return this.transport.json({ method: 'GET', path: this.path(webhook), feature: FEATURE });
  }

  /**
   * Changes what is given.
   * @example
   * ```ts
   * await vb.webhooks.update(hook, { active: false });
   * ```
   */
  update(webhook: WebhookRef, options: WebhookUpdateOptions): Promise<Webhook> {
    const json = body({ ...options }) satisfies Partial<Record<keyof Schemas['PatchedWebhookUpdateRequest'], unknown>>;
    return this.transport.json({ method: 'PATCH', path: this.path(webhook), json, feature: FEATURE });
  }

  /**
   * Deletes the endpoint with its delivery history; nothing more is sent to it.
   * @example
   * ```ts
   * await vb.webhooks.delete(hook);
   * ```
   */
  async delete(webhook: WebhookRef): Promise<void> {
    await this.transport.json({ method: 'DELETE', path: this.path(webhook), feature: FEATURE });
  }

  /**
   * A new secret (shown only here); the previous one keeps signing beside it for 24 hours
   * (`previousSecretExpiresAt`).
   * @example
   * ```ts
   * const { secret } = await vb.webhooks.rotateSecret(hook);
   * ```
   */
  rotateSecret(webhook: WebhookRef): Promise<WebhookWithSecret> {
    return this.transport.json({ method: 'POST', path: this.path(webhook, 'rotate-secret'), feature: FEATURE });
  }

  /**
   * Queues a `webhook.test` event to this endpoint alone, sent at once (even while inactive);
   * answers its delivery (`pending` until the sender has tried).
   * @example
   * ```ts
   * const delivery = await vb.webhooks.test(hook);
   * ```
   */
  test(webhook: WebhookRef): Promise<Delivery> {
    return this.transport.json({ method: 'POST', path: this.path(webhook, 'test'), feature: FEATURE });
  }

  /**
   * The endpoint's deliveries, newest first: every page, or the first `limit`; `status` and `event` filter them.
   * @example
   * ```ts
   * const failed = await vb.webhooks.deliveries(hook, { status: 'failed', limit: 20 });
   * ```
   */
  deliveries(webhook: WebhookRef, options: DeliveryListOptions = {}): Promise<Delivery[]> {
    const { limit, ...filters } = options;
    return this.pages<Delivery>(this.path(webhook, 'deliveries'), filters, limit);
  }

  /**
   * One delivery with its `payload` (the request body) and `attemptLog` (each attempt).
   * @example
   * ```ts
   * const { attemptLog } = await vb.webhooks.delivery(hook, 'dlv_8Pq2');
   * ```
   */
  delivery(webhook: WebhookRef, delivery: DeliveryRef): Promise<DeliveryDetail> {
    const path = this.path(webhook, 'deliveries', idOf(delivery));
    return this.transport.json({ method: 'GET', path, feature: FEATURE });
  }

  /**
   * Sends the delivery's event again, at once, as a new delivery (same `eventId`, same body).
   * @example
   * ```ts
   * const again = await vb.webhooks.redeliver(hook, delivery);
   * console.log(again.redeliveryOf === delivery.id); // true
   * ```
   */
  redeliver(webhook: WebhookRef, delivery: DeliveryRef): Promise<Delivery> {
    const path = this.path(webhook, 'deliveries', idOf(delivery), 'redeliver');
    return this.transport.json({ method: 'POST', path, feature: FEATURE });
  }
}
