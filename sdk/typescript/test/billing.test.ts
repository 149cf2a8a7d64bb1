// vb.billing against the live server: usage, costs, the streamed export, a sandbox's cost, plans
// and the plan change, invoices and their PDFs, checkout; another organization's sandbox a 404;
// bad input as the SDK's classes. A usage record is written into the server's database as the
// meter's rollup writes it, and an invoice closed there as the beat task closes one.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  InvoiceNotFoundError,
  NotFoundError,
  PaymentsNotConfiguredError,
  PlanNotFoundError,
  ValidationError,
  VibeBox,
  type Sandbox,
} from '../src/index.js';
import { API_KEY, API_URL, OUTSIDER_KEY, cleanupLater, manage } from './helpers.js';

const vb = new VibeBox({ apiKey: API_KEY, baseUrl: API_URL });
let sandbox: Sandbox;
let orgId = '';
let invoiceId = '';

describe('billing', () => {
  before(async () => {
    sandbox = await vb.sandbox('python-3');
    cleanupLater(() => sandbox.destroy());
    orgId = await manage(
      'shell',
      '-c',
      [
        'from decimal import Decimal',
        'from django.utils import timezone',
        'from apps.billing.models import Plan, PlanAssignment, UsageRecord',
        'from apps.sandboxes.models import Sandbox',
        `box = Sandbox.objects.get(pk="${sandbox.id}")`,
        'hour = timezone.now().replace(minute=0, second=0, microsecond=0)',
        // The server's default plan is `internal` (no prices): price this month on the free plan,
        // whose 20 included vCPU-hours the 30 used here exceed.
        'PlanAssignment.objects.get_or_create(org=box.org, effective_from=hour.replace(day=1, hour=0), defaults=dict(plan=Plan.objects.get(slug="free")))',
        'UsageRecord.objects.update_or_create(sandbox=box, hour=hour, defaults=dict(org=box.org, template=box.template.name, cpu_seconds=Decimal(30 * 3600)))',
        'print(box.org_id)',
      ].join('\n'),
    );
  });

  after(async () => {
    await manage(
      'shell',
      '-c',
      `from apps.billing.models import Invoice, UsageRecord, PlanAssignment; Invoice.objects.filter(pk="${invoiceId}").delete(); UsageRecord.objects.filter(sandbox_id="${sandbox.id}").delete(); PlanAssignment.objects.filter(org_id="${orgId}").delete(); print("ok")`,
    );
  });

  test('usage, costs and the export', async () => {
    const usage = await vb.billing.usage({ groupBy: 'sandbox' });
    const cpu = usage.items.find((item) => item.key === sandbox.id && item.resource === 'cpu');
    assert.equal(cpu?.quantity, '30.000000');
    assert.equal(cpu?.unit, 'vCPU-hour');
    const costs = await vb.billing.costs({ groupBy: 'resource' });
    assert.match(costs.total, /^\d+\.\d{6}$/);
    assert.ok(costs.currency.length === 3);
    const lines: string[] = [];
    for await (const line of vb.billing.export({ format: 'jsonl' })) if (line) lines.push(line);
    const rows = lines.map((line) => JSON.parse(line) as { sandboxId: string; cpuSeconds: string });
    assert.ok(rows.some((row) => row.sandboxId === sandbox.id && Number(row.cpuSeconds) === 30 * 3600));
    const csv: string[] = [];
    for await (const line of vb.billing.export()) csv.push(line);
    assert.ok(csv[0]?.startsWith('hour,sandboxId,'));
  });

  test("a sandbox's cost", async () => {
    const cost = await sandbox.cost();
    assert.equal(cost.sandboxId, sandbox.id);
    assert.ok(Number(cost.ratePerHour) > 0);
    assert.equal((await vb.billing.sandboxCost(sandbox.id)).total, cost.total);
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.billing.sandboxCost(sandbox.id), NotFoundError);
  });

  test('plans and the plan change', async () => {
    const plans = await vb.billing.plans();
    assert.deepEqual(
      plans.map((plan) => plan.slug),
      ['free', 'pro', 'team'],
    );
    const changed = await vb.billing.changePlan('pro');
    assert.equal(changed.plan.slug, 'pro');
    assert.equal((await vb.billing.plan()).plan.slug, 'pro');
    await assert.rejects(vb.billing.changePlan('platinum'), PlanNotFoundError);
    await assert.rejects(vb.billing.changePlan('platinum'), NotFoundError);
    await assert.rejects(vb.billing.costs({ from: '2026-12-01', to: '2026-11-01' }), ValidationError);
  });

  test('invoices, their PDFs and checkout', async () => {
    invoiceId = await manage(
      'shell',
      '-c',
      [
        'from django.utils import timezone',
        'from apps.billing import invoices, plans',
        'from apps.sandboxes.models import Sandbox',
        `box = Sandbox.objects.get(pk="${sandbox.id}")`,
        'invoice, made = invoices.invoice_close(org=box.org, period_start=plans.month_bounds(timezone.now())[0])',
        'print(invoice.pk)',
      ].join('\n'),
    );
    const listed = await vb.billing.invoices();
    const mine = listed.find((invoice) => invoice.id === invoiceId);
    assert.ok(mine, 'the closed invoice is listed');
    assert.match(mine.number, /^VB-\d{4}-\d{6}$/);
    assert.match(mine.total, /^\d+\.\d{2}$/);
    assert.ok(mine.pdfUrl.endsWith(`${invoiceId}.pdf`));
    assert.ok((await vb.billing.invoices({ status: mine.status })).some((invoice) => invoice.id === invoiceId));
    assert.equal((await vb.billing.invoices({ limit: 1 })).length, 1);

    const invoice = await vb.billing.invoice(invoiceId);
    assert.equal(invoice.number, mine.number);
    assert.ok(invoice.lines.some((line) => line.resource === 'cpu'));

    const pdf = await vb.billing.invoicePdf(invoiceId);
    assert.ok(pdf instanceof Uint8Array);
    assert.equal(new TextDecoder().decode(pdf.subarray(0, 4)), '%PDF');
    const file = join(mkdtempSync(join(tmpdir(), 'vb-invoice-')), 'invoice.pdf');
    assert.equal(await vb.billing.invoicePdf(invoiceId, { file }), pdf.length);
    assert.equal(readFileSync(file).subarray(0, 4).toString(), '%PDF');

    await assert.rejects(vb.billing.invoice('inv_doesnotexist00'), InvoiceNotFoundError);
    await assert.rejects(vb.billing.invoicePdf('inv_doesnotexist00'), InvoiceNotFoundError);
    const outsider = new VibeBox({ apiKey: OUTSIDER_KEY, baseUrl: API_URL });
    await assert.rejects(outsider.billing.invoice(invoiceId), InvoiceNotFoundError);
    // The test server takes no payments (no VIBEBOX_STRIPE_SECRET_KEY).
    await assert.rejects(vb.billing.checkout(), PaymentsNotConfiguredError);
  });
});
