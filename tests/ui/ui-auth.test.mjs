// Browser test of the Temporal Web UI's sign-in against a temper that checks tokens
// (tests/ui/run --auth): temper runs with --auth-jwks-url and --ui-auth-provider-url, both
// pointing at the test OpenID Connect provider idp.py, which signs in whoever comes without
// asking, as the user (and permissions) last given to its /next-user. Passed by tests/ui/run:
//   UI_URL       the UI's base URL
//   IDP_URL      the provider's base URL
//   SEED_FILE    seed.py's JSON (the workflows started)
//   ARTIFACTS    directory for screenshots
//   CHROMIUM     the browser binary (default /usr/bin/chromium)
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const UI = (process.env.UI_URL ?? 'http://127.0.0.1:8233').replace(/\/$/, '');
const IDP = (process.env.IDP_URL ?? '').replace(/\/$/, '');
const seed = JSON.parse(fs.readFileSync(process.env.SEED_FILE ?? 'artifacts/seed.json', 'utf8'));
const artifacts = process.env.ARTIFACTS ?? 'artifacts';
const TIMEOUT = Number(process.env.UI_TEST_TIMEOUT_MS ?? 20000);
const ns = seed.namespace;
const workflowsUrl = `${UI}/namespaces/${ns}/workflows`;
const listRoute = new RegExp(`/api/v1/namespaces/${ns}/workflows\\?`);

let browser;
let page;

before(async () => {
  assert.ok(IDP, 'IDP_URL is not set (run this through tests/ui/run --auth)');
  fs.mkdirSync(artifacts, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
});

afterEach(async (t) => {
  const name = t.name.replace(/[^A-Za-z0-9]+/g, '-').replace(/^-|-$/g, '').toLowerCase();
  await page?.screenshot({ path: path.join(artifacts, `auth-${name}.png`), fullPage: true });
});

/** A fresh browser (no cookies) whose next sign-in is `sub` with `permissions`. */
async function freshPageAs(sub, permissions) {
  const r = await fetch(`${IDP}/next-user`, {
    method: 'POST',
    body: JSON.stringify({ sub, permissions }),
  });
  assert.equal(r.status, 200, 'the test provider took the next user');
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(TIMEOUT);
  page = await context.newPage();
  return page;
}

/** Opens the workflows page, which sends a signed-out browser to the sign-in page, and signs
 * in through the provider. Resolves with the first answer to the UI's workflow list call. */
async function signInToWorkflows() {
  await page.goto(workflowsUrl);
  await page.waitForURL(/\/login\?/);
  const listed = page.waitForResponse((r) => listRoute.test(r.url()));
  await page.getByText('Continue to SSO').click();
  return listed;
}

test('the UI server refuses its API to a browser that has not signed in', async () => {
  page = undefined;
  const r = await fetch(`${UI}/api/v1/namespaces/${ns}/workflows`);
  assert.equal(r.status, 401);
});

test('a signed-out browser is sent to sign in, and back to the workflows after', async () => {
  await freshPageAs('reader', ['temporal-system:read', `${ns}:read`]);
  const listed = await signInToWorkflows();
  assert.equal(listed.status(), 200, `ListWorkflowExecutions: ${await listed.text()}`);
  await page.waitForURL(workflowsUrl);
  // Every seeded workflow is listed: temper answered the call with the user's token.
  for (const w of seed.workflows) {
    await page.getByText(w.id, { exact: true }).first().waitFor();
  }
});

test('a user without a role in the namespace is told so', async () => {
  await freshPageAs('stranger', ['other-namespace:read']);
  await page.goto(workflowsUrl);
  await page.waitForURL(/\/login\?/);
  const refused = page.waitForResponse((r) => r.url().includes('/api/v1/') && r.status() === 403);
  await page.getByText('Continue to SSO').click();
  const r = await refused;
  assert.equal(r.status(), 403, r.url());
  await page.getByText(/do not have permission/).waitFor();
  // And no workflow of the namespace reached the page.
  const text = await page.evaluate(() => document.body.innerText);
  for (const w of seed.workflows) {
    assert.ok(!text.includes(w.id), `${w.id} is shown to a user without access`);
  }
});
