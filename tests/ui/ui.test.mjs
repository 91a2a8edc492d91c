// Browser test of the Temporal Web UI, driven by playwright-core through a Chromium that is
// already installed. tests/ui/run starts the server, the UI and the workflows (seed.py) and
// passes:
//   UI_URL       the UI's base URL (http://127.0.0.1:PORT)
//   SEED_FILE    seed.py's JSON (the workflows started, with their ids, run ids and types)
//   ARTIFACTS    directory for screenshots (one per test, taken at its end, pass or fail)
//   CHROMIUM     the browser binary (default /usr/bin/chromium)
// Tests whose name says [List/Count] need ListWorkflowExecutions / CountWorkflowExecutions.
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const UI = (process.env.UI_URL ?? 'http://127.0.0.1:8233').replace(/\/$/, '');
const seed = JSON.parse(fs.readFileSync(process.env.SEED_FILE ?? 'artifacts/seed.json', 'utf8'));
const artifacts = process.env.ARTIFACTS ?? 'artifacts';
const ns = seed.namespace;
const TIMEOUT = Number(process.env.UI_TEST_TIMEOUT_MS ?? 20000);

const workflows = seed.workflows;
const ofType = (type) => workflows.filter((w) => w.type === type);
const byStatus = (status) => workflows.filter((w) => w.status === status);
const stuck = workflows.find((w) => w.pendingActivity);
const historyUrl = (w) =>
  `${UI}/namespaces/${ns}/workflows/${encodeURIComponent(w.id)}/${w.runId}/history`;
const workflowsUrl = (query) =>
  `${UI}/namespaces/${ns}/workflows` + (query ? `?query=${encodeURIComponent(query)}` : '');

/** The UI server's HTTP API routes the list pages use, and the RPC behind each. */
const RPCS = [
  [/\/namespaces\/[^/]+\/workflows$/, 'ListWorkflowExecutions'],
  [/\/namespaces\/[^/]+\/workflow-count$/, 'CountWorkflowExecutions'],
];

let browser;
let page;
const apiErrors = [];

before(async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    // Root in a container has no user namespaces for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
  // The UI's calls to its server's HTTP API: failed ones are printed, to say which RPC failed.
  page.on('response', async (r) => {
    if (r.url().includes('/api/v1/') && r.status() >= 400) {
      let body = '';
      try {
        body = (await r.text()).slice(0, 200);
      } catch {
        // the page moved on
      }
      const route = new URL(r.url()).pathname;
      const rpc = RPCS.find(([re]) => re.test(route))?.[1] ?? 'an RPC';
      const line = `${r.status()} ${r.request().method()} ${r.url().replace(UI, '')} (${rpc}) ${body.replace(/\s+/g, ' ')}`;
      apiErrors.push(line);
      console.log(`# UI API error: ${line}`);
    }
  });
});

after(async () => {
  await browser?.close();
});

afterEach(async (t) => {
  const name = t.name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
});

/** Waits until the page's visible text matches `re`. */
async function waitForText(re, timeout = TIMEOUT) {
  await page.waitForFunction(
    ([source, flags]) => new RegExp(source, flags).test(document.body.innerText),
    [re.source, re.flags],
    { timeout },
  );
}

/**
 * Runs a [List/Count] test's body, failing it as soon as the UI's call for the workflow list
 * or count fails (instead of waiting for rows that cannot come), naming the RPC.
 */
async function needsVisibility(body) {
  const seen = apiErrors.length;
  let timer;
  const failed = new Promise((_, reject) => {
    timer = setInterval(() => {
      const errors = apiErrors.slice(seen).filter((e) => /ListWorkflowExecutions|CountWorkflowExecutions/.test(e));
      if (errors.length) reject(new Error(`the UI's visibility calls failed:\n${errors.join('\n')}`));
    }, 200);
  });
  try {
    await Promise.race([body(), failed]);
  } finally {
    clearInterval(timer);
  }
}

/** The workflow table's row for one workflow id. */
const row = (id) => page.getByRole('row').filter({ hasText: id });

test('the UI loads and lists the namespace default', async () => {
  await page.goto(`${UI}/namespaces`);
  await page.getByRole('link', { name: ns, exact: true }).first().waitFor();
  assert.match(await page.title(), /Temporal|Namespaces/i);
});

test('the namespace page shows default', async () => {
  await page.goto(`${UI}/namespaces/${ns}`);
  await waitForText(new RegExp(`\\b${ns}\\b`));
  await waitForText(/Retention/i);
});

test('[List/Count] the workflows page lists every workflow with its status', async () => {
  await needsVisibility(async () => {
    await page.goto(workflowsUrl());
    for (const w of workflows) {
      const r = row(w.id);
      await r.first().waitFor();
      const text = await r.first().innerText();
      assert.match(text, new RegExp(w.status, 'i'), `${w.id}: ${text}`);
      assert.match(text, new RegExp(w.type), `${w.id}: ${text}`);
      assert.match(text, new RegExp(w.runId), `${w.id}: ${text}`);
    }
  });
});

test('[List/Count] the workflows page shows the counts', async () => {
  await needsVisibility(async () => {
    await page.goto(workflowsUrl());
    const running = byStatus('Running').length;
    const completed = byStatus('Completed').length;
    await waitForText(new RegExp(`\\b${running}\\s+Running\\b`, 'i'));
    await waitForText(new RegExp(`\\b${completed}\\s+Completed\\b`, 'i'));
    await page.getByTestId('workflow-count').first().waitFor();
    await page.waitForFunction(
      ([n]) => document.querySelector('[data-testid="workflow-count"]')?.innerText.trim() === n,
      [String(workflows.length)],
      { timeout: TIMEOUT },
    );
  });
});

test('[List/Count] a query filters the workflows (WorkflowType)', async () => {
  await needsVisibility(async () => {
    const hello = ofType('UiHello');
    await page.goto(workflowsUrl(`WorkflowType="UiHello"`));
    for (const w of hello) await row(w.id).first().waitFor();
    // Every row of this run shown is a UiHello one.
    const rows = page.getByRole('row').filter({ hasText: `ui-${seed.run}-` });
    assert.equal(await rows.count(), hello.length, await page.innerText('body'));
    for (const w of workflows.filter((w) => w.type !== 'UiHello')) {
      assert.equal(await row(w.id).count(), 0, `${w.id} shown under WorkflowType="UiHello"`);
    }
    await page.getByTestId('workflow-count').first().waitFor();
    await page.waitForFunction(
      ([n]) => document.querySelector('[data-testid="workflow-count"]')?.innerText.trim() === n,
      [String(hello.length)],
      { timeout: TIMEOUT },
    );
  });
});

test('[List/Count] a workflow opens from the list and shows its history', async () => {
  await needsVisibility(async () => {
    const w = ofType('UiHello')[0];
    await page.goto(workflowsUrl());
    await row(w.id).first().getByRole('link', { name: w.id }).first().click();
    // The UI opens the workflow on its default tab (Timeline in recent versions).
    await page.waitForURL(new RegExp(`/workflows/${w.id}/${w.runId}(/|$)`));
    await page.getByRole('tab', { name: /Event History/i }).first().click();
    await page.waitForURL(new RegExp(`/workflows/${w.id}/${w.runId}/history`));
    await waitForText(/Workflow\s*Execution\s*Completed/i);
  });
});

test('a completed workflow shows its history (opened by URL)', async () => {
  const w = ofType('UiHello')[0];
  await page.goto(historyUrl(w));
  await waitForText(new RegExp(w.id));
  await waitForText(/\bCompleted\b/i);
  for (const event of [
    'Workflow Execution Started',
    'Workflow Task Scheduled',
    'Workflow Task Started',
    'Workflow Task Completed',
    'Activity Task Scheduled',
    'Activity Task Started',
    'Activity Task Completed',
    'Workflow Execution Completed',
  ]) {
    await waitForText(new RegExp(event.replace(/ /g, '\\s*'), 'i'));
  }
  await waitForText(/Hello, w0!/);
});

test('a running workflow without a worker shows its history (opened by URL)', async () => {
  const w = ofType('UiIdle')[0];
  await page.goto(historyUrl(w));
  await waitForText(new RegExp(w.id));
  await waitForText(/\bRunning\b/i);
  await waitForText(/Workflow\s*Execution\s*Started/i);
  await waitForText(/Workflow\s*Task\s*Scheduled/i);
  await waitForText(new RegExp(w.taskQueue));
});

test('a workflow with a pending activity shows it (opened by URL)', async () => {
  await page.goto(historyUrl(stuck));
  await waitForText(/Activity\s*Task\s*Scheduled/i);
  await waitForText(/Pending\s*Activit/i);
  await waitForText(new RegExp(stuck.pendingActivity));
  await page.goto(historyUrl(stuck).replace(/\/history$/, '/pending-activities'));
  await waitForText(new RegExp(stuck.pendingActivity));
  await waitForText(/Attempt/i);
});
