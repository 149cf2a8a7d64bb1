/**
 * `vb.billing`: the organization's usage, costs, usage export, plans and plan, invoices and their
 * PDFs, and a Checkout session for the payment method (docs/billing.md).
 * Reading needs the billing.read permission (owners, admins, the billing role) and, for a key, the
 * `billing:read` scope; changing the plan billing.manage and `billing:manage`. Money and quantities
 * are decimal strings (exact; parse them with a decimal library, not `Number`, to keep cents exact),
 * in the plan's `currency`.
 * @module
 */

import { writeFile } from 'node:fs/promises';

import { exportLines } from './exports.js';
import { API, LONG, body, segment } from './paths.js';
import type { Query, Transport } from './transport.js';
import type { Schemas } from './types.js';

const BILLING = 'billing';

/** How usage and costs are grouped. @example `const by: BillingGroupBy = 'sandbox';` */
export type BillingGroupBy = 'sandbox' | 'template' | 'day' | 'resource';

/**
 * A window and a grouping: `from` (default: the month's start) and `to` (default: now), ISO 8601
 * with a zone, a date (`2026-11-01`, UTC midnight) or a `Date`.
 * @example
 * ```ts
 * const options: BillingWindow = { from: '2026-11-01', to: '2026-12-01', groupBy: 'day' };
 * ```
 */
export interface BillingWindow {
  from?: string | Date;
  to?: string | Date;
  groupBy?: BillingGroupBy;
}

/** What was used, per group and resource, in price units. @example `const { items } = await vb.billing.usage();` */
export type BillingUsage = Schemas['BillingUsage'];
/** What a window costs: `fee`, `total`, `groups`, `items`, `lineItems`. @example `const { total, currency } = await vb.billing.costs();` */
export type BillingCosts = Schemas['BillingCosts'];
/** A sandbox's cost so far and its rate per hour now. @example `const { total, ratePerHour } = await sandbox.cost();` */
export type SandboxCost = Schemas['SandboxCost'];
/** A plan on offer: fee, prices, included amounts, limits. @example `const [free] = await vb.billing.plans();` */
export type BillingPlan = Schemas['Plan'];
/** The organization's plan, scheduled changes, limits, month to date. @example `const { plan, monthToDate } = await vb.billing.plan();` */
export type OrgPlan = Schemas['OrgPlan'];
/** An invoice: number, period, money as decimal strings, status, `pdfUrl`. @example `const [latest] = await vb.billing.invoices({ limit: 1 });` */
export type Invoice = Schemas['Invoice'];
/** An invoice with its `lines`. @example `const { lines } = await vb.billing.invoice('inv_1');` */
export type InvoiceDetail = Schemas['InvoiceDetail'];
/** One line of an invoice. @example `const amounts = (await vb.billing.invoice('inv_1')).lines.map((line: InvoiceLine) => line.amount);` */
export type InvoiceLine = Schemas['InvoiceLine'];
/** An invoice's status. @example `const status: InvoiceStatus = 'open';` */
export type InvoiceStatus = Schemas['InvoiceStatusEnum'];
/** A Stripe Checkout session: send the browser to `url`. @example `const { url } = await vb.billing.checkout();` */
export type CheckoutSession = Schemas['CheckoutSession'];

const PAGE = 100;

function windowQuery(options: BillingWindow): Query {
  const when = (value: string | Date | undefined) => (value instanceof Date ? value.toISOString() : value);
  return { from: when(options.from), to: when(options.to), groupBy: options.groupBy };
}

/**
 * The organization's billing (`vb.billing`).
 * @example
 * ```ts
 * const costs = await vb.billing.costs({ groupBy: 'sandbox' });
 * console.log(costs.total, costs.currency);
 * ```
 */
export class Billing {
  constructor(private readonly transport: Transport) {}

  /**
   * Quantities used in the window (default: this month so far), per group and resource.
   * @example
   * ```ts
   * const { items } = await vb.billing.usage({ groupBy: 'day' });
   * ```
   */
  usage(options: BillingWindow = {}): Promise<BillingUsage> {
    return this.transport.json({ method: 'GET', path: `${API}/billing/usage`, query: windowQuery(options), feature: BILLING });
  }

  /**
   * What the window costs: the plan's prorated fee, per group and resource, the total, line items.
   * @example
   * ```ts
   * const { groups } = await vb.billing.costs({ groupBy: 'template' });
   * ```
   */
  costs(options: BillingWindow = {}): Promise<BillingCosts> {
    return this.transport.json({ method: 'GET', path: `${API}/billing/costs`, query: windowQuery(options), feature: BILLING });
  }

  /**
   * The window's hourly usage records, oldest first, streamed as CSV (default) or JSON lines. With
   * `file` (a path): written there, answers the number of bytes; without: its lines. (`to` is the
   * window's end, as in the other methods.)
   * @example
   * ```ts
   * const bytes = await vb.billing.export({ file: 'usage.csv', from: '2026-11-01' });
   * for await (const line of vb.billing.export({ format: 'jsonl' })) console.log(JSON.parse(line).sandboxId);
   * ```
   */
  export(options: BillingWindow & { format?: 'csv' | 'jsonl'; file: string }): Promise<number>;
  export(options?: BillingWindow & { format?: 'csv' | 'jsonl' }): AsyncGenerator<string>;
  export(options: BillingWindow & { format?: 'csv' | 'jsonl'; file?: string } = {}): Promise<number> | AsyncGenerator<string> {
    const window = { from: options.from, to: options.to };
    const call = {
      method: 'GET' as const,
      path: `${API}/billing/usage/export`,
      query: { ...windowQuery(window), format: options.format ?? 'csv' },
      timeout: LONG,
      feature: BILLING,
    };
    return exportLines(this.transport, call, options.file);
  }

  /** The plans on offer, cheapest first. @example `const plans = await vb.billing.plans();` */
  plans(): Promise<BillingPlan[]> {
    return this.transport.json({ method: 'GET', path: `${API}/billing/plans`, feature: BILLING });
  }

  /** The organization's plan now. @example `const { plan } = await vb.billing.plan();` */
  plan(): Promise<OrgPlan> {
    return this.transport.json({ method: 'GET', path: `${API}/billing/plan`, feature: BILLING });
  }

  /**
   * Puts the organization on `plan` from now (or `effectiveFrom`, later); audited.
   * @example
   * ```ts
   * await vb.billing.changePlan('pro');
   * ```
   */
  changePlan(plan: string, options: { effectiveFrom?: string | Date } = {}): Promise<OrgPlan> {
    const effectiveFrom = options.effectiveFrom instanceof Date ? options.effectiveFrom.toISOString() : options.effectiveFrom;
    return this.transport.json({
      method: 'PUT',
      path: `${API}/billing/plan`,
      json: body({ plan, effectiveFrom }),
      feature: BILLING,
    });
  }

  /** A sandbox's cost so far and rate per hour (`sandbox.cost()` too). @example `await vb.billing.sandboxCost('sbx_1');` */
  sandboxCost(sandboxId: string): Promise<SandboxCost> {
    return this.transport.json({ method: 'GET', path: `${API}/sandboxes/${segment(sandboxId)}/cost`, feature: BILLING });
  }

  /**
   * The organization's invoices, newest period first: every page, or the first `limit`; `status`
   * (open, paid, failed, void) filters them.
   * @example
   * ```ts
   * const open = await vb.billing.invoices({ status: 'open' });
   * ```
   */
  async invoices(options: { status?: InvoiceStatus; limit?: number } = {}): Promise<Invoice[]> {
    const found: Invoice[] = [];
    const wanted = options.limit ?? Number.POSITIVE_INFINITY;
    while (found.length < wanted) {
      const size = Math.min(PAGE, wanted - found.length);
      const page = await this.transport.json<{ next: string | null; results: Invoice[] }>({
        method: 'GET',
        path: `${API}/billing/invoices`,
        query: { status: options.status, limit: size, offset: found.length },
        feature: BILLING,
      });
      found.push(...page.results);
      if (!page.next || page.results.length === 0) break;
    }
    return found;
  }

  /** One invoice with its lines; another organization's is `InvoiceNotFoundError`. @example `const invoice = await vb.billing.invoice('inv_1');` */
  invoice(invoiceId: string): Promise<InvoiceDetail> {
    return this.transport.json({ method: 'GET', path: `${API}/billing/invoices/${segment(invoiceId)}`, feature: BILLING });
  }

  /**
   * The invoice as a PDF: its bytes, or with `file` (a path) written there, answering the number of bytes.
   * @example
   * ```ts
   * const pdf = await vb.billing.invoicePdf('inv_1'); // Uint8Array starting with %PDF
   * await vb.billing.invoicePdf('inv_1', { file: 'invoice.pdf' });
   * ```
   */
  invoicePdf(invoiceId: string, options: { file: string }): Promise<number>;
  invoicePdf(invoiceId: string): Promise<Uint8Array>;
  async invoicePdf(invoiceId: string, options: { file?: string } = {}): Promise<Uint8Array | number> {
    const response = await this.transport.send({
      method: 'GET',
      path: `${API}/billing/invoices/${segment(invoiceId)}.pdf`,
      timeout: LONG,
      feature: BILLING,
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (options.file === undefined) return bytes;
    await writeFile(options.file, bytes);
    return bytes.length;
  }

  /**
   * A Stripe Checkout session (setup mode: nothing is charged) for the payment method invoices are
   * charged to; send the browser to `url`. Needs billing.manage (a key: `billing:manage`);
   * `PaymentsNotConfiguredError` when the server takes no payments.
   * @example
   * ```ts
   * const { url } = await vb.billing.checkout({ successUrl: 'https://example.com/done' });
   * ```
   */
  checkout(options: { successUrl?: string; cancelUrl?: string } = {}): Promise<CheckoutSession> {
    return this.transport.json({
      method: 'POST',
      path: `${API}/billing/checkout`,
      json: body({ successUrl: options.successUrl, cancelUrl: options.cancelUrl }),
      feature: BILLING,
    });
  }
}
