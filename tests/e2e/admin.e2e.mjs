// End-to-end test of the /admin web UI: headless Chromium (Debian's package) driven by
// playwright-core against a real `keyledger serve` and PostgreSQL (started by scripts/e2e).
//
// Data is seeded through the public API, every step is done the way an operator would (clicks,
// typing, the keyboard), and what the page shows is checked against what the API then holds.
// Any failed step, unexpected console message or CSP violation fails the run (exit 1).

import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = process.env.KEYLEDGER_URL;
const ADMIN_KEY = process.env.ADMIN_API_KEY;
const SHOTS = process.env.SCREENSHOT_DIR || 'screenshots';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 10_000;
assert.ok(BASE && ADMIN_KEY, 'KEYLEDGER_URL and ADMIN_API_KEY must be set (scripts/e2e sets them)');

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
  + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const TIME_ZONE = 'Europe/Berlin';

// ---- the API, from outside the browser ------------------------------------------------------

async function call(method, route, body, { key = ADMIN_KEY, accept = 'application/json' } = {}) {
  const headers = { Accept: accept };
  if (key) headers.Authorization = `Bearer ${key}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(BASE + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: 'manual' });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: res.status, json, text, headers: res.headers };
}

async function must(method, route, body, expected) {
  const answer = await call(method, route, body);
  assert.equal(answer.status, expected, `${method} ${route} → ${answer.status} ${answer.text}`);
  return answer.json;
}

// ---- a fake OAuth provider on a loopback port ---------------------------------------------------
// Refresh tokens say how the provider answers their refresh: `rt-ok-*` succeeds, `rt-down-*`
// fails with 503 (transient), `rt-dead-*` with invalid_grant. `/authorize` consents at once:
// it sends the browser back to `redirect_uri` with a code, as a user clicking "Allow" would.
// Every token request's form is kept in `tokenRequests` (to see which secret keyledger sent).

const tokenRequests = [];

function fakeProvider() {
  let issued = 0;
  const server = http.createServer((req, res) => {
    if (req.url.startsWith('/authorize')) {
      const q = new URL(req.url, 'http://x').searchParams;
      const back = new URL(q.get('redirect_uri'));
      back.searchParams.set('code', `ok-consent-${q.get('state').slice(0, 6)}`);
      back.searchParams.set('state', q.get('state'));
      res.writeHead(302, { Location: back.toString() });
      res.end();
      return;
    }
    let raw = '';
    req.on('data', (c) => { raw += c; });
    req.on('end', () => {
      const form = new URLSearchParams(raw);
      if (req.url.startsWith('/token')) tokenRequests.push(Object.fromEntries(form));
      const send = (status, body) => {
        res.writeHead(status, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.url.startsWith('/token') && form.get('grant_type') === 'authorization_code') {
        issued += 1;
        return send(200, {
          access_token: `at-${issued}`, refresh_token: `rt-${form.get('code')}`, token_type: 'Bearer',
          expires_in: 3600, scope: 'crm.read crm.write',
        });
      }
      if (req.url.startsWith('/token') && form.get('grant_type') === 'refresh_token') {
        const rt = form.get('refresh_token') || '';
        if (rt.startsWith('rt-down')) return send(503, { error: 'temporarily_unavailable' });
        if (rt.startsWith('rt-dead')) return send(400, { error: 'invalid_grant', error_description: 'the grant was revoked' });
        issued += 1;
        return send(200, { access_token: `at-${issued}`, token_type: 'Bearer', expires_in: 3600 });
      }
      if (req.url.startsWith('/token') && form.get('grant_type') === 'client_credentials') {
        issued += 1;
        return send(200, { access_token: `at-cc-${issued}`, token_type: 'Bearer', expires_in: 3600 });
      }
      if (req.url.startsWith('/revoke')) return send(200, {});
      return send(404, { error: 'not_found' });
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

// ---- steps ------------------------------------------------------------------------------------

let passed = 0;
let page;
const consoleProblems = [];
let allowedConsole = null; // a RegExp of messages a step expects (a 401 it provokes)

async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    passed += 1;
    console.log(`ok ${passed} - ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    console.log(`not ok ${passed + 1} - ${name}`);
    console.log(e && e.stack ? e.stack : e);
    if (page) {
      const file = process.env.FAILURE_SCREENSHOT || path.join(os.tmpdir(), 'keyledger-e2e-failure.png');
      await page.screenshot({ path: file, fullPage: true }).catch(() => {});
      console.log(`# page at failure: ${file} (${page.url()})`);
    }
    console.log(`${passed} passed, 1 failed`);
    process.exit(1);
  }
}

function watch(p) {
  p.on('console', (msg) => {
    if (msg.type() !== 'error' && msg.type() !== 'warning') return;
    const text = msg.text();
    if (allowedConsole && allowedConsole.test(text)) return;
    consoleProblems.push(`${msg.type()}: ${text} (${p.url()})`);
  });
  p.on('pageerror', (e) => consoleProblems.push(`page error: ${e.message} (${p.url()})`));
}

async function expecting(pattern, fn) {
  allowedConsole = pattern;
  try { await fn(); } finally { allowedConsole = null; }
}

const text = (selector) => page.locator(selector).first().innerText({ timeout: TIMEOUT });
const waitText = (selector, hasText) => page.locator(selector).filter({ hasText }).first().waitFor({ timeout: TIMEOUT });
const visible = (selector) => page.locator(selector).first().waitFor({ state: 'visible', timeout: TIMEOUT });

async function shot(name, { fullPage = true } = {}) {
  const file = path.join(SHOTS, name);
  await page.screenshot({ path: file, fullPage });
  assert.ok(statSync(file).size > 5000, `${file} is a real picture`);
}

/** Every visible control has an accessible name, and nothing scrolls sideways. */
async function checkPage(label) {
  const problems = await page.evaluate(() => {
    const out = [];
    const isVisible = (el) => !!(el.offsetWidth || el.offsetHeight || el.getClientRects().length);
    for (const el of document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')) {
      if (!isVisible(el) || el.type === 'hidden') continue;
      const labelled = el.getAttribute('aria-labelledby');
      const name = (el.getAttribute('aria-label') || '').trim()
        || (labelled ? labelled.split(' ').map((id) => document.getElementById(id)?.textContent || '').join(' ').trim() : '')
        || (el.labels && el.labels.length ? [...el.labels].map((l) => l.textContent).join(' ').trim() : '')
        || (['A', 'BUTTON'].includes(el.tagName) ? el.textContent.trim() : '')
        || (el.getAttribute('title') || '').trim()
        || ([...el.querySelectorAll('img[alt]')].map((i) => i.alt).join(' ').trim());
      if (!name && !['MAIN', 'SECTION', 'PRE'].includes(el.tagName)) out.push(`${el.tagName.toLowerCase()}#${el.id || '?'}.${el.className} has no accessible name`);
      if (el.tabIndex < 0 && ['A', 'BUTTON', 'INPUT', 'SELECT'].includes(el.tagName)) out.push(`${el.tagName} ${el.id} is not keyboard reachable`);
    }
    const doc = document.documentElement;
    if (doc.scrollWidth > doc.clientWidth + 1) out.push(`the page scrolls sideways: ${doc.scrollWidth} > ${doc.clientWidth}`);
    return out;
  });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
}

async function atWidth(width, fn) {
  const before = page.viewportSize();
  await page.setViewportSize({ width, height: width < 500 ? 844 : 900 });
  try { await fn(); } finally { await page.setViewportSize(before); }
}

async function goto(route) {
  const response = await page.goto(BASE + route, { waitUntil: 'load' });
  assert.equal(response.status(), 200, `${route} answers 200`);
  const headers = response.headers();
  assert.equal(headers['content-security-policy'], CSP, `${route} CSP`);
  assert.equal(headers['x-content-type-options'], 'nosniff');
  assert.equal(headers['referrer-policy'], 'no-referrer');
  assert.match(headers['content-type'], /^text\/html/);
  return response;
}

// ---- the run ----------------------------------------------------------------------------------

mkdirSync(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 900 }, timezoneId: TIME_ZONE, locale: 'en-GB',
  permissions: ['clipboard-read', 'clipboard-write'],
});
page = await context.newPage();
watch(page);

const provider = await fakeProvider();
const providerUrl = `http://127.0.0.1:${provider.address().port}`;
let connectionsApi = false;
// A long connection id (DESIGN §6.2 allows 128 characters): it must wrap, never be cut.
const LONG_ID = 'acme-eu-central-1.workspace-000042:branch-google-calendar-sync';
const SEEDED = []; // the seeded request records, to check the chart's buckets against
// "What did the LLM service answer at 14:03?": yesterday 13:03 UTC, shown in Berlin time.
const THE_CALL = (() => {
  const d = new Date(Date.now() - 86_400_000);
  d.setUTCHours(13, 3, 0, 0);
  return d;
})();

/** `date` as the browser in TIME_ZONE writes it in a datetime-local input (YYYY-MM-DDTHH:MM). */
function berlinInput(date) {
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-GB', {
    timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
  }).formatToParts(date).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
}

await step('seed the request log through POST /v1/requests', async () => {
  const now = Date.now();
  const records = [];
  for (let i = 0; i < 60; i += 1) {
    const service = ['llm', 'crm', 'mail'][i % 3];
    records.push({
      timestamp: new Date(now - i * 60_000).toISOString(),
      service, endpoint: service === 'llm' ? '/v1/chat' : `/api/${service}/items`, method: i % 4 === 0 ? 'GET' : 'POST',
      status_code: [200, 201, 404, 500][i % 4], duration_ms: 20 + i,
      user_identifier: `user${i % 5}@example.com`, request_id: `seed-${i}`,
      request_body: JSON.stringify({ n: i }), response_body: JSON.stringify({ ok: i % 4 < 2 }),
    });
  }
  records.push({
    timestamp: THE_CALL.toISOString(), service: 'llm', endpoint: '/v1/chat', method: 'POST', status_code: 502, duration_ms: 30_000,
    user_identifier: 'branch-42@example.com', request_id: 'the-call',
    request_body: { prompt: 'Summarise the ticket', api_key: 'sk-live-should-never-show', model: 'large' },
    response_body: { error: 'upstream timeout', session_token: 'abc.def.ghi' },
  });
  SEEDED.push(...records);
  const accepted = await must('POST', '/v1/requests', { records }, 202);
  assert.equal(accepted.accepted, 61);
});

await step('seed OAuth connections through the API (when the connections API is deployed)', async () => {
  const probe = await call('GET', '/v1/connections?limit=1');
  if (probe.status === 404 && probe.json && probe.json.code === 'route_not_found') {
    console.log('# the connections API is not on this server: connection steps are skipped');
    return;
  }
  assert.equal(probe.status, 200, `GET /v1/connections → ${probe.status} ${probe.text}`);
  connectionsApi = true;
  const client = await must('POST', '/v1/clients', {
    name: 'fake-crm', authorize_url: `${providerUrl}/authorize`, token_url: `${providerUrl}/token`,
    revoke_url: `${providerUrl}/revoke`, client_id: 'e2e-client', client_secret: 'e2e-secret',
    redirect_uri: `${BASE}/oauth/callback`, scopes: ['crm.read', 'crm.write'], auth_method: 'client_secret_post', pkce: true,
  }, 201);
  const connect = async (connectionId, code) => {
    const started = await must('POST', '/v1/connections/authorize', { client_id: client.id, connection_id: connectionId }, 201);
    const state = new URL(started.authorize_url).searchParams.get('state');
    const done = await call('GET', `/oauth/callback?code=${code}&state=${encodeURIComponent(state)}`, undefined, { key: null });
    assert.equal(done.status, 200, `callback of ${connectionId} → ${done.status} ${done.text}`);
  };
  await connect('branch-42', 'ok-42');
  await connect('branch-7', 'down-7');
  await connect('branch-13', 'dead-13');
  await connect('branch-99', 'ok-99');
  await connect(LONG_ID, 'ok-long');
  await must('POST', '/v1/tokens/branch-42/refresh', undefined, 200);
  const failing = await call('POST', '/v1/tokens/branch-7/refresh');
  assert.equal(failing.status, 503, failing.text);
  const dead = await call('POST', '/v1/tokens/branch-13/refresh');
  assert.equal(dead.status, 409, dead.text);
  await must('DELETE', '/v1/connections/branch-99', undefined, 204);
});

await step('/admin answers with a strict CSP, asks for the key, and is keyboard reachable', async () => {
  await goto('/admin');
  await visible('#login');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'api-key', 'the key field has the focus');
  const order = [];
  for (let i = 0; i < 7; i += 1) {
    await page.keyboard.press('Shift+Tab');
    order.push(await page.evaluate(() => document.activeElement.textContent.trim()));
  }
  assert.deepEqual(order, ['API keys', 'OAuth clients', 'Connections', 'Requests', 'Licenses', 'keyledger admin', 'Skip to content']);
  await checkPage('sign-in');
});

await step('a wrong key says so plainly (401 from the API)', async () => {
  await expecting(/status of 401/, async () => {
    await page.locator('#api-key').focus();
    await page.keyboard.type('kl_this_is_not_a_key');
    await page.keyboard.press('Enter');
    await waitText('#login-error', 'Wrong key');
  });
  assert.match(await text('#login-error'), /401 Unauthorized/);
  assert.ok(await page.locator('#app').isHidden(), 'nothing behind the sign-in is shown');
  assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a wrong key is not kept');
});

await step('the right key signs in once, kept in sessionStorage; the hub links the five pages', async () => {
  await page.locator('#api-key').fill(ADMIN_KEY);
  await page.keyboard.press('Enter');
  await visible('#app');
  await waitText('#health', 'database ok');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keyledger.admin_key')), ADMIN_KEY);
  for (const href of ['/admin/licenses', '/admin/requests', '/admin/connections', '/admin/clients', '/admin/api-keys']) {
    assert.equal(await page.locator(`.hub a[href="${href}"]`).count(), 1, href);
  }
  await checkPage('hub');
  await shot('hub.png');
  await atWidth(390, async () => {
    await checkPage('hub at 390 px');
    await shot('hub-390.png');
  });
});


// ---- API keys ---------------------------------------------------------------------------------

let serviceKey;

await step('api keys: the scope picker explains every scope in one line; nothing is created without one', async () => {
  await page.locator('nav').getByRole('link', { name: 'API keys', exact: true }).click();
  await page.waitForURL(/\/admin\/api-keys/);
  await visible('#app');
  await waitText('#keys', 'No API keys besides the configured admin key');
  const scopes = await page.locator('#scope-list input[type=checkbox]').evaluateAll((els) => els.map((el) => ({
    scope: el.value,
    label: el.labels[0].textContent.trim(),
    what: document.getElementById(el.getAttribute('aria-describedby')).textContent.trim(),
  })));
  assert.deepEqual(scopes.map((x) => x.scope), ['admin', 'tokens:read', 'tokens:refresh', 'connections:read',
    'connections:write', 'licenses:read', 'licenses:write', 'requests:read', 'requests:write']);
  for (const x of scopes) {
    assert.equal(x.label, x.scope);
    assert.ok(x.what.length > 15 && !x.what.includes('\n'), `${x.scope} is explained in one line: ${x.what}`);
  }
  await page.locator('#key-name').fill('crm-sync');
  await page.locator('#create-button').click();
  await waitText('#create-error', 'Pick at least one scope');
  assert.equal((await must('GET', '/v1/api-keys', undefined, 200)).items.length, 0, 'nothing was created');
});

await step('api keys: create one; the key is shown once with a warning and a copy button, and it works', async () => {
  await page.getByLabel('tokens:read').check();
  await page.getByLabel('connections:read').check();
  await page.locator('#create-button').click();
  await visible('#new-api-key');
  serviceKey = (await text('#new-api-key')).trim();
  assert.match(serviceKey, /^kl_[A-Za-z0-9_-]{20,}$/);
  assert.match(await text('#created'), /only time it is shown/);
  await page.getByRole('button', { name: 'Copy the new API key' }).click();
  await waitText('#created .copied', 'Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), serviceKey);
  await waitText('#keys tbody', 'crm-sync');
  const row = page.locator('#keys tbody tr').filter({ hasText: 'crm-sync' });
  assert.match(await row.innerText(), /tokens:read/);
  assert.match(await row.innerText(), /connections:read/);
  assert.equal(await page.locator('#keys').getByText(serviceKey).count(), 0, 'the list never shows the key');
  assert.ok(await page.locator('#last-used-hint').isVisible(), 'says that last use is not recorded');
  // The key is real and has exactly these scopes.
  const listed = await call('GET', '/v1/connections?limit=1', undefined, { key: serviceKey });
  assert.equal(listed.status, connectionsApi ? 200 : 404, listed.text);
  assert.equal((await call('GET', '/v1/licenses', undefined, { key: serviceKey })).status, 403);
  const keys = await must('GET', '/v1/api-keys', undefined, 200);
  assert.deepEqual(keys.items.map((k) => [k.name, k.scopes]), [['crm-sync', ['tokens:read', 'connections:read']]]);
  await checkPage('api keys');
  await shot('api-keys.png');
  await atWidth(390, async () => {
    await checkPage('api keys at 390 px');
    await shot('api-keys-390.png');
  });
});

await step('api keys: revoke asks first; Cancel keeps the key, confirming revokes it (401 from then on)', async () => {
  await page.getByRole('button', { name: 'Revoke key crm-sync' }).click();
  await visible('dialog.confirm');
  await page.locator('dialog.confirm').getByRole('button', { name: 'Cancel' }).click();
  await page.locator('dialog.confirm').waitFor({ state: 'detached', timeout: TIMEOUT });
  assert.equal((await must('GET', '/v1/api-keys', undefined, 200)).items.length, 1);
  await page.getByRole('button', { name: 'Revoke key crm-sync' }).click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Revoke key' }).click();
  await waitText('#list-status', 'revoked');
  await waitText('#keys', 'No API keys besides');
  assert.equal((await must('GET', '/v1/api-keys', undefined, 200)).items.length, 0);
  assert.equal((await call('GET', '/v1/connections?limit=1', undefined, { key: serviceKey })).status, 401);
});

let issuedKey;
let licenseId;

await step('licenses: the key is not asked again; an empty search says so', async () => {
  await page.locator('nav').getByRole('link', { name: 'Licenses', exact: true }).click();
  await page.waitForURL(/\/admin\/licenses/);
  await visible('#app');
  assert.ok(await page.locator('#login').isHidden(), 'signed in already');
  await waitText('#results', 'No licenses yet');
  assert.ok(await page.locator('#issue-entitlements-field').isVisible(), 'the first license can get entitlements too');
  await checkPage('licenses (empty)');
});

await step('licenses: issue one with entitlement pro from the form; the new key is shown once with a copy button', async () => {
  await page.locator('#issue-email').fill('alice@example.com');
  await page.locator('#issue-max').fill('3');
  await page.locator('#issue-entitlements').fill('pro');
  await page.locator('#issue-button').click();
  await visible('#new-key');
  issuedKey = (await text('#new-key')).trim();
  assert.match(issuedKey, /^[0-9A-Z]{5}(-[0-9A-Z]{5}){5}$/);
  await page.getByRole('button', { name: 'Copy the new license key' }).click();
  await waitText('#issued .copied', 'Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), issuedKey);
  await waitText('#detail-title', 'alice@example.com');
  await waitText('#license-status', 'Active');
  const found = await must('POST', '/v1/licenses/lookup', { license_key: issuedKey }, 200);
  licenseId = found.id;
  assert.equal(found.max_installations, 3);
  assert.deepEqual((await must('GET', `/v1/licenses/${licenseId}`, undefined, 200)).entitlements, ['pro']);
  await waitText('#entitlements', 'pro');
  assert.equal(await page.locator('#detail-body').getByText(issuedKey).count(), 0, 'the detail panel does not show the key unasked');
});

await step('licenses: installations activated by the product are listed', async () => {
  for (const installation of ['laptop-1', 'desktop-2']) {
    const answer = await must('POST', '/v1/licenses/activate', { license_key: issuedKey, installation_id: installation, name: `${installation} of Alice` }, 200);
    assert.equal(answer.code, 'VALID');
  }
  await page.locator('#search-button').click();
  await page.getByRole('button', { name: 'Open license of alice@example.com' }).click();
  await waitText('#detail-body', 'laptop-1');
  await waitText('#detail-body', 'desktop-2');
  await waitText('#detail-body', '2 of 3');
});

await step('licenses: last seen is a relative time; entitlements are shown and editable', async () => {
  const lastSeen = page.locator('#detail-body td[data-label="Last seen"] time').first();
  assert.match(await lastSeen.innerText(), /(second|minute)s? ago|^now$/);
  assert.ok(await lastSeen.getAttribute('title'), 'the exact time is in the title');
  assert.equal(await page.locator('#entitlements-input').inputValue(), 'pro');
  await page.locator('#entitlements-input').fill('pro, export');
  await page.locator('#entitlements-button').click();
  await waitText('#detail-status', 'Entitlements now: pro, export');
  await waitText('#entitlements', 'export');
  const changed = await must('GET', `/v1/licenses/${licenseId}`, undefined, 200);
  assert.deepEqual([...changed.entitlements].sort(), ['export', 'pro']);
  assert.ok(await page.locator('#issue-entitlements-field').isVisible(), 'issuing offers entitlements too');
});

await step('licenses: suspend, see the status change, then reinstate', async () => {
  await page.locator('#suspend-button').click();
  await waitText('#license-status', 'Suspended');
  await waitText('#detail-status', 'License suspended');
  await waitText(`#results tr[data-id="${licenseId}"]`, 'Suspended');
  assert.equal((await must('GET', `/v1/licenses/${licenseId}`, undefined, 200)).status, 'suspended');
  const check = await must('POST', '/v1/licenses/validate', { license_key: issuedKey, installation_id: 'laptop-1' }, 200);
  assert.equal(check.code, 'SUSPENDED');
  await page.locator('#reinstate-button').click();
  await waitText('#license-status', 'Active');
  assert.equal((await must('GET', `/v1/licenses/${licenseId}`, undefined, 200)).status, 'active');
});

await step('licenses: extend by a year', async () => {
  await page.locator('#extend-year').click();
  await page.locator('#extend-button').click();
  await waitText('#detail-status', 'now expires');
  const license = await must('GET', `/v1/licenses/${licenseId}`, undefined, 200);
  const days = (new Date(license.expires_at) - Date.now()) / 86_400_000;
  assert.ok(days > 364 && days < 367, `expires in ${days} days`);
  await waitText('#detail-body', /\((in 1 year|next year)\)/);
});

await step('licenses: reveal the key, search by key and by email', async () => {
  await page.locator('#reveal-key').click();
  await waitText('#license-key', issuedKey);
  await page.locator('#reveal-key').click();
  assert.equal(await page.locator('#license-key').innerText(), '•••••-•••••-•••••-•••••');
  await page.locator('#q').fill(issuedKey);
  await page.locator('#search-button').click();
  await waitText('#results tbody', 'alice@example.com');
  assert.equal(await page.locator('#results tbody tr').count(), 1);
  await page.locator('#q').fill('nobody@example.com');
  await page.locator('#search-button').click();
  await waitText('#results', 'No license for nobody@example.com');
  await page.locator('#q').fill('ALICE@example.com');
  await page.locator('#search-button').click();
  await waitText('#results tbody', 'alice@example.com');
});

await step('licenses: an API error is shown, not swallowed', async () => {
  await expecting(/status of 400/, async () => {
    // Only an over-long key is refused (400); a malformed one is simply not found, as on the
    // public checks.
    await page.locator('#q').fill('K'.repeat(129));
    await page.locator('#search-button').click();
    await waitText('#search-error', '400 invalid_request');
  });
  assert.match(await text('#search-error'), /license_key/);
  await expecting(/status of 404/, async () => {
    await page.locator('#q').fill('a key with spaces');
    await page.locator('#search-button').click();
    await waitText('#results', 'No license has this key.');
  });
  await page.locator('#search-error').waitFor({ state: 'hidden', timeout: TIMEOUT });
  await page.locator('#q').fill('');
  await page.locator('#search-button').click();
  await page.locator('#search-error').waitFor({ state: 'hidden', timeout: TIMEOUT });
});

await step('licenses: remove an installation after confirming', async () => {
  await page.getByRole('button', { name: 'Remove installation desktop-2' }).click();
  await visible('dialog.confirm');
  await page.locator('dialog.confirm').getByRole('button', { name: 'Remove installation' }).click();
  await waitText('#detail-status', 'desktop-2 removed');
  await waitText('#detail-body', '1 of 3');
  const license = await must('GET', `/v1/licenses/${licenseId}`, undefined, 200);
  assert.deepEqual(license.installations.map((i) => i.installation_id), ['laptop-1']);
  await checkPage('licenses');
  await shot('licenses.png');
  await atWidth(390, async () => {
    await checkPage('licenses at 390 px');
    await shot('licenses-390.png');
  });
});

await step('licenses: revoke asks first; Cancel keeps it, confirming revokes it for good', async () => {
  await page.locator('#revoke-button').click();
  await visible('dialog.confirm');
  await page.keyboard.press('Escape');
  await page.locator('dialog.confirm').waitFor({ state: 'detached', timeout: TIMEOUT });
  assert.equal((await must('GET', `/v1/licenses/${licenseId}`, undefined, 200)).status, 'active');
  await page.locator('#revoke-button').click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Revoke license' }).click();
  await waitText('#license-status', 'Revoked');
  assert.equal((await must('GET', `/v1/licenses/${licenseId}`, undefined, 200)).status, 'revoked');
  assert.equal(await page.locator('#suspend-button, #reinstate-button, #revoke-button').count(), 0);
});

await step('requests: newest first, keyset pagination with "Load older"', async () => {
  await page.locator('nav').getByRole('link', { name: 'Requests', exact: true }).click();
  await page.waitForURL(/\/admin\/requests/);
  await visible('#log tbody');
  assert.equal(await page.locator('#log tbody tr:not(.detail)').count(), 50);
  const times = await page.locator('#log tbody tr:not(.detail) time').evaluateAll((els) => els.map((e) => e.getAttribute('datetime')));
  assert.deepEqual([...times].sort().reverse(), times, 'newest first');
  assert.equal(await text('#tz'), TIME_ZONE);
  await page.locator('#more-requests').click();
  await waitText('#log-count', '61 shown');
  assert.ok(await page.locator('#more-requests').isHidden(), 'no further page');
  await checkPage('requests');
});

/** Per UTC bucket of `size` ms: [count, 4xx, 5xx] of the seeded records in [from, to). */
function expectedBuckets(size, from, to) {
  const out = new Map();
  for (const r of SEEDED) {
    const t = new Date(r.timestamp).getTime();
    if (t < from || t >= to) continue;
    const start = new Date(Math.floor(t / size) * size).toISOString();
    const b = out.get(start) || [0, 0, 0];
    b[0] += 1;
    if (r.status_code >= 400 && r.status_code < 500) b[1] += 1;
    if (r.status_code >= 500) b[2] += 1;
    out.set(start, b);
  }
  return out;
}

/** What the chart drew: per bar its start, its stacked heights' classes and its <title>. */
async function drawnBars() {
  return page.locator('#chart svg g.bar').evaluateAll((gs) => gs.map((g) => ({
    start: new Date(g.dataset.start).toISOString(),
    parts: [...g.querySelectorAll('rect:not(.bar-hit)')].map((r) => r.getAttribute('class')),
    title: g.querySelector('title').textContent,
    label: g.querySelector('.bar-hit').getAttribute('aria-label'),
  })));
}

function assertBarsMatch(bars, expected) {
  assert.deepEqual(bars.map((b) => b.start), [...expected.keys()].sort(), 'one bar per bucket with records, oldest first');
  for (const bar of bars) {
    const [count, c4, c5] = expected.get(bar.start);
    assert.match(bar.title, new RegExp(`: ${count} requests \\(${count - c4 - c5} ok, ${c4} 4xx, ${c5} 5xx\\), p50 [\\d.]+ (ms|s), p95 [\\d.]+ (ms|s)$`), bar.title);
    assert.equal(bar.parts.includes('bar-5xx'), c5 > 0, `${bar.start}: a 5xx part only with 5xx records`);
    assert.equal(bar.parts.includes('bar-4xx'), c4 > 0);
    assert.ok(bar.label.startsWith(bar.title), 'the focusable bar is named by the same text');
  }
}

await step('requests: the chart draws requests per hour with errors stacked and p50/p95 lines, from the stats API', async () => {
  await visible('#chart svg');
  await waitText('#chart-totals', 'one bar per hour');
  const now = Date.now();
  // The page's range: the last 24 hours (its own clock; the seeded records are well inside).
  const expected = expectedBuckets(3_600_000, now - 86_400_000 + 60_000, now);
  assertBarsMatch(await drawnBars(), expected);
  const total = [...expected.values()].reduce((n, b) => n + b[0], 0);
  assert.match(await text('#chart-totals'), new RegExp(`^${total} requests`));
  assert.ok(await page.locator('#chart svg .line-p50, #chart svg .dot-p50').count() > 0, 'a p50 line');
  assert.ok(await page.locator('#chart svg .line-p95, #chart svg .dot-p95').count() > 0, 'a p95 line');
  // The same numbers as a table (the accessible fallback), and no CDN: the SVG is the page's.
  await page.locator('#chart-table summary').click();
  const rows = await page.locator('#chart-table tbody tr').evaluateAll((trs) => trs.map((tr) => tr.children[1].textContent));
  assert.deepEqual(rows.map(Number), [...expected.keys()].sort().map((k) => expected.get(k)[0]));
  await page.locator('#chart-table summary').click();
  const sources = await page.evaluate(() => [...document.scripts].map((x) => new URL(x.src).pathname));
  assert.deepEqual(sources, ['/admin/assets/common.js', '/admin/assets/chart.js', '/admin/assets/requests.js']);
});

await step('requests: clicking a bar narrows the time range to it (log and chart), "Back" restores it', async () => {
  // The fullest hour (the seeded minutes may straddle two).
  const bars = await drawnBars();
  const counts = bars.map((b) => Number(/: (\d+) requests/.exec(b.title)[1]));
  const fullest = counts.indexOf(Math.max(...counts));
  const start = new Date(bars[fullest].start);
  await page.locator('#chart svg g.bar .bar-hit').nth(fullest).click();
  await waitText('#chart-totals', 'one bar per minute');
  assert.equal(await page.locator('#f-from').inputValue(), berlinInput(start));
  assert.equal(await page.locator('#f-to').inputValue(), berlinInput(new Date(start.getTime() + 3_600_000)));
  assert.equal(new URL(page.url()).searchParams.get('from'), start.toISOString());
  const inHour = SEEDED.filter((r) => {
    const t = new Date(r.timestamp).getTime();
    return t >= start.getTime() && t < start.getTime() + 3_600_000;
  }).length;
  await waitText('#log-count', `${Math.min(inHour, 50)} shown`);
  assertBarsMatch(await drawnBars(), expectedBuckets(60_000, start.getTime(), start.getTime() + 3_600_000));
  await checkPage('requests (chart, one hour)');
  await shot('requests.png');
  await atWidth(390, async () => {
    await page.waitForFunction(() => document.querySelector('#chart svg').getAttribute('width') < 400, null, { timeout: TIMEOUT });
    await checkPage('requests chart at 390 px');
    const box = await page.locator('#chart svg').boundingBox();
    assert.ok(box.x >= 0 && box.x + box.width <= 390, `the chart fits: ${JSON.stringify(box)}`);
    const tick = await page.locator('#chart svg text.tick').first().boundingBox();
    assert.ok(tick.height >= 10, `tick labels stay readable (${tick.height} px high)`);
    await page.locator('#chart-card').scrollIntoViewIfNeeded();
    await shot('requests-390.png', { fullPage: false });
  });
  // The keyboard does what the mouse does: focus a bar, press Enter.
  await page.locator('#chart svg g.bar .bar-hit').first().focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#chart svg g.bar').length === 1, null, { timeout: TIMEOUT });
  await page.locator('#chart-back').click();
  await waitText('#chart-totals', 'one bar per minute');
  await page.locator('#chart-back').click();
  await waitText('#chart-totals', 'one bar per hour');
  assert.equal(await page.locator('#f-from').inputValue(), '');
  assert.ok(await page.locator('#chart-back').isHidden());
  await waitText('#log-count', '50 shown');
});

await step('requests: filter by service, method, status class and time range; expand one', async () => {
  await page.locator('#f-service').fill('llm');
  await page.locator('#f-method').selectOption('POST');
  await page.locator('#f-status').selectOption('5xx');
  // The range is entered in browser time (Berlin): three minutes before to seven after.
  const from = new Date(THE_CALL.getTime() - 180_000);
  await page.locator('#f-from').fill(berlinInput(from));
  await page.locator('#f-to').fill(berlinInput(new Date(THE_CALL.getTime() + 420_000)));
  await page.locator('#apply-filters').click();
  // The count may still read '1 shown' from the previous filter: wait for the filtered row.
  await waitText('#log tbody tr:not(.detail)', '502');
  await waitText('#log-count', '1 shown');
  const row = page.locator('#log tbody tr:not(.detail)').first();
  assert.match(await row.innerText(), /502/);
  const local = berlinInput(THE_CALL).slice(11);
  assert.notEqual(local, '13:03', 'Berlin is never UTC');
  assert.match(await row.locator('time').innerText(), new RegExp(`${local}:00`), 'shown in the browser\'s time zone');
  assert.equal(new Date(await row.locator('time').getAttribute('datetime')).getTime(), THE_CALL.getTime());
  const url = new URL(page.url());
  assert.equal(url.searchParams.get('service'), 'llm');
  assert.equal(url.searchParams.get('from'), from.toISOString());
  const toggle = row.getByRole('button', { name: /^Bodies of POST \/v1\/chat/ });
  await toggle.click();
  await visible('#log tr.detail:not([hidden]) pre');
  assert.equal(await toggle.getAttribute('aria-expanded'), 'true');
  const detail = await text('#log tr.detail:not([hidden])');
  assert.match(detail, /Summarise the ticket/);
  assert.match(detail, /\[REDACTED\]/);
  assert.match(detail, /upstream timeout/);
  assert.doesNotMatch(detail, /sk-live-should-never-show|abc\.def\.ghi/);
  assert.match(detail, /the-call/);
  await checkPage('requests (expanded)');
  await shot('requests-bodies.png');
});

await step('requests: filters survive a reload; an empty result says so', async () => {
  await page.reload();
  await waitText('#log-count', '1 shown');
  assert.equal(await page.locator('#f-service').inputValue(), 'llm');
  await page.locator('#f-service').fill('no-such-service');
  await page.locator('#apply-filters').click();
  await waitText('#log', 'No requests match these filters');
  await page.locator('#reset-filters').click();
  await waitText('#log-count', '50 shown');
});

await step('requests: a slow answer shows progress until it arrives', async () => {
  // The API is held back for a second, as a slow network would.
  const slow = /\/v1\/requests\?/;
  await page.route(slow, async (route) => {
    await new Promise((resolve) => { setTimeout(resolve, 1000); });
    await route.continue();
  });
  try {
    await page.locator('#apply-filters').click();
    await visible('#progress');
    assert.equal(await page.locator('#apply-filters').isDisabled(), true);
    assert.equal((await text('#apply-filters')).trim(), 'Loading…');
    assert.equal(await page.locator('#log').getAttribute('aria-busy'), 'true');
    await page.locator('#progress').waitFor({ state: 'hidden', timeout: TIMEOUT });
    assert.equal((await text('#apply-filters')).trim(), 'Apply filters');
    assert.equal(await page.locator('#log').getAttribute('aria-busy'), null);
    await waitText('#log-count', '50 shown');
  } finally {
    await page.unroute(slow);
  }
});

await step('connections: status badges, expiry, last refresh and one connection\'s timeline', async () => {
  await expecting(connectionsApi ? null : /status of 404/, async () => {
    await page.locator('nav').getByRole('link', { name: 'Connections', exact: true }).click();
    await page.waitForURL(/\/admin\/connections/);
    await visible('#app');
    // Without the API the page still loads, and shows the API's answer rather than nothing.
    if (!connectionsApi) await waitText('#list-error', 'route_not_found');
  });
  if (!connectionsApi) {
    await shot('connections.png');
    console.log('# SKIPPED connection timeline: the connections API is not on this server');
    return;
  }
  await visible('#connections tbody');
  for (const [id, label] of [['branch-42', 'Active'], ['branch-7', 'Refresh failing'],
    ['branch-13', 'Re-authorization required'], ['branch-99', 'Revoked'], [LONG_ID, 'Active']]) {
    await waitText(`#connections tr[data-id="${id}"] .badge`, label);
  }
  assert.match(await text('#connections tr[data-id="branch-42"]'), /expires in/);
  assert.match(await text('#connections tr[data-id="branch-7"]'), /1 failure in a row/);
  assert.equal(await page.locator('#connections tr[data-id="branch-42"] time').count() >= 2, true, 'expiry and last refresh shown');
  await page.getByRole('button', { name: 'Timeline of branch-42' }).click();
  await waitText('#timeline-title', 'branch-42');
  await waitText('#events', 'Authorized');
  await waitText('#events', 'Token refreshed');
  assert.match(await text('#events'), /forced/);
  const panel = await text('#timeline');
  assert.doesNotMatch(panel, /at-\d|rt-ok|access_token|refresh_token\b/, 'no secrets in the timeline');
  await page.getByRole('button', { name: 'Timeline of branch-7' }).click();
  await waitText('#timeline-title', 'branch-7');
  await waitText('#events', 'Token refresh failed');
  await page.locator('#c-status').selectOption('reauthorization_required');
  await page.locator('#filter-button').click();
  await page.waitForFunction(() => document.querySelectorAll('#connections tbody tr').length === 1, null, { timeout: TIMEOUT });
  await waitText('#connections tbody', 'branch-13');
  await page.locator('#c-status').selectOption('');
  await page.locator('#filter-button').click();
  await page.waitForFunction(() => document.querySelectorAll('#connections tbody tr').length === 5, null, { timeout: TIMEOUT });
  await page.getByRole('button', { name: 'Timeline of branch-42' }).click();
  await waitText('#events', 'Token refreshed');
});

/**
 * Every row's connection id is visible in full: its element is not clipped (scrollWidth ≤
 * clientWidth), lies inside the viewport and inside the visible part of the table's scroll
 * container, which itself does not scroll sideways. Checked on the live layout, not the DOM.
 */
async function assertIdsVisible(label) {
  const problems = await page.evaluate(() => {
    const out = [];
    const results = document.querySelector('#connections');
    const box = results.getBoundingClientRect();
    if (results.scrollWidth > results.clientWidth + 1) out.push(`the table scrolls sideways: ${results.scrollWidth} > ${results.clientWidth}`);
    if (results.scrollLeft !== 0) out.push(`the table is scrolled by ${results.scrollLeft} px`);
    for (const row of document.querySelectorAll('#connections tbody tr')) {
      const code = row.querySelector('.conn-id');
      const r = code.getBoundingClientRect();
      const id = row.dataset.id;
      if (code.textContent !== id) out.push(`${id}: shows "${code.textContent}"`);
      if (code.scrollWidth > code.clientWidth + 1) out.push(`${id}: clipped (${code.scrollWidth} > ${code.clientWidth})`);
      if (r.left < 0 || r.right > window.innerWidth) out.push(`${id}: outside the viewport (${r.left}..${r.right} of ${window.innerWidth})`);
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) out.push(`${id}: outside its container (${r.left}..${r.right} of ${box.left}..${box.right})`);
      // Each character is laid out inside the box: the rendered text is as wide as its range.
      const range = document.createRange();
      range.selectNodeContents(code);
      for (const rect of range.getClientRects()) {
        if (rect.right > r.right + 1 || rect.left < r.left - 1) out.push(`${id}: its text overflows its box`);
      }
    }
    return out;
  });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
}

await step('connections: the overview counts every status and lists the ten that fail or expire soonest', async () => {
  if (!connectionsApi) {
    console.log('# SKIPPED connections overview: the connections API is not on this server');
    return;
  }
  const all = (await must('GET', '/v1/connections?limit=500', undefined, 200)).items;
  const counts = {};
  for (const c of all) counts[c.status] = (counts[c.status] || 0) + 1;
  for (const status of ['active', 'refresh_failing', 'reauthorization_required', 'revoked']) {
    const shown = await page.locator(`#status-counts button[data-status="${status}"] .count`).innerText();
    assert.equal(Number(shown), counts[status] || 0, `${status}: ${shown}`);
  }
  assert.match(await text('#overview-total'), new RegExp(`\\(${all.length} connections\\)`));
  const order = await page.locator('#soonest li').evaluateAll((lis) => lis.map((li) => li.dataset.id));
  // Failing first (re-authorization before refresh failing), then the active ones by expiry.
  const active = all.filter((c) => c.status === 'active' && c.expires_at)
    .sort((a, b) => new Date(a.expires_at) - new Date(b.expires_at)).map((c) => c.connection_id);
  assert.deepEqual(order, ['branch-13', 'branch-7', ...active].slice(0, 10));
  assert.match(await text('#soonest li[data-id="branch-7"]'), /1 refresh failed in a row/);
  assert.match(await text(`#soonest li[data-id="${active[0]}"]`), /token expires in/);
  // A count is a filter: click "Refresh failing", then again to show all.
  await page.locator('#status-counts button[data-status="refresh_failing"]').click();
  await page.waitForFunction(() => document.querySelectorAll('#connections tbody tr').length === 1, null, { timeout: TIMEOUT });
  await waitText('#connections tbody', 'branch-7');
  assert.equal(await page.locator('#status-counts button[data-status="refresh_failing"]').getAttribute('aria-pressed'), 'true');
  await page.locator('#status-counts button[data-status="refresh_failing"]').click();
  await page.waitForFunction((n) => document.querySelectorAll('#connections tbody tr').length === n, all.length, { timeout: TIMEOUT });
  await page.locator('#soonest').getByRole('button', { name: 'Open branch-13' }).click();
  await waitText('#timeline-title', 'branch-13');
});

await step('connections: every row\'s full id is visible at 1280 px and at 390 px (not only in the DOM)', async () => {
  if (!connectionsApi) return;
  assert.equal(page.viewportSize().width, 1280);
  // With the timeline open (the narrowest the list gets) and with a long id among them.
  assert.ok(await page.locator('#timeline').isVisible());
  await assertIdsVisible('1280 px');
  await checkPage('connections');
  await shot('connections.png');
  await atWidth(390, async () => {
    await assertIdsVisible('390 px');
    await checkPage('connections at 390 px');
    await shot('connections-390.png');
  });
});

// ---- OAuth clients ----------------------------------------------------------------------------

let presetsApi = false;
let grantsApi = false;
let tagsApi = false;
let clientCredentialsApi = false;
const CALLBACK = () => `${BASE}/oauth/callback`;
const MANUAL = 'fake-crm-ui';

await step('clients: probe which client features this server has (presets, grants, tags)', async () => {
  const providers = await call('GET', '/v1/providers');
  presetsApi = providers.status === 200;
  if (!presetsApi) assert.equal(providers.status, 404, providers.text);
  // Grants and tags: a throwaway client registered with `grants` tells whether the API knows it.
  const probe = await call('POST', '/v1/clients', {
    name: 'probe', authorize_url: `${providerUrl}/authorize`, token_url: `${providerUrl}/token`, client_id: 'p',
    client_secret: 'p', redirect_uri: CALLBACK(), grants: ['authorization_code', 'client_credentials'],
  });
  grantsApi = probe.status === 201;
  if (grantsApi) {
    const tagged = await call('POST', '/v1/connections/authorize', { client_id: probe.json.id, connection_id: 'probe', tags: { a: 'b' } });
    tagsApi = tagged.status === 201;
    await must('DELETE', `/v1/clients/${probe.json.id}`, undefined, 204);
  } else {
    const untagged = await call('POST', '/v1/connections/authorize', { client_id: '00000000-0000-7000-8000-000000000000', connection_id: 'probe', tags: { a: 'b' } });
    tagsApi = untagged.status === 404;
  }
  // POST /v1/connections (client credentials) answers a 400 for an empty body when it exists.
  const create = await call('POST', '/v1/connections', {});
  clientCredentialsApi = grantsApi && ![404, 405].includes(create.status);
  console.log(`# server features: presets ${presetsApi}, grants ${grantsApi}, tags ${tagsApi}, client credentials ${clientCredentialsApi}`);
});

const noPresets = () => (presetsApi ? null : /status of 404/);

await step('clients: the page lists the registered ones; the redirect URI is this deployment\'s callback, with a copy button', async () => {
  await expecting(noPresets(), async () => {
    await page.locator('nav').getByRole('link', { name: 'OAuth clients', exact: true }).click();
    await page.waitForURL(/\/admin\/clients/);
    await visible('#app');
    // The connections seed registered `fake-crm` through the API.
    await waitText('#clients', connectionsApi ? 'fake-crm' : 'No OAuth clients yet');
    await page.waitForLoadState('networkidle');
  });
  assert.equal(await page.locator('#cf-redirect').inputValue(), CALLBACK());
  await page.getByRole('button', { name: 'Copy the redirect URI' }).click();
  await waitText('#editor .copied', 'Copied');
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), CALLBACK());
  if (!presetsApi) {
    assert.ok(await page.locator('#presets-missing').isVisible(), 'says why there is no preset picker');
    assert.ok(await page.locator('#mode-preset').isHidden());
    assert.ok(await page.locator('#cf-authorize').isVisible(), 'registering by hand still works');
  }
});

await step('clients: register from a preset; its parameters are form fields (when the server has presets)', async () => {
  if (!presetsApi) {
    console.log('# SKIPPED preset registration: GET /v1/providers answers 404 on this server');
    return;
  }
  const providers = (await must('GET', '/v1/providers', undefined, 200)).items;
  const options = await page.locator('#cf-preset option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, providers.map((p) => p.id));
  const preset = providers.find((p) => Object.values(p.params || {}).some((x) => x.allowed && x.allowed.length > 1)) || providers[0];
  await page.locator('#cf-preset').selectOption(preset.id);
  const params = Object.entries(preset.params || {});
  assert.equal(await page.locator('#cf-params [data-param]').count(), params.length);
  const chosen = {};
  for (const [name, p] of params) {
    const input = page.locator(`#cf-param-${name}`);
    if (p.allowed && p.allowed.length) {
      assert.deepEqual(await input.locator('option').evaluateAll((os) => os.map((o) => o.value)), p.allowed);
      assert.equal(await input.inputValue(), p.default ?? p.allowed[0]);
      chosen[name] = p.allowed[p.allowed.length - 1];
      await input.selectOption(chosen[name]);
    } else if (!p.default) {
      chosen[name] = 'acme';
      await input.fill('acme');
    }
  }
  assert.equal(await page.locator('#cf-name').inputValue(), preset.id, 'the name defaults to the preset');
  assert.ok(await page.locator('#cf-authorize').isHidden(), 'no URLs to type with a preset');
  await page.locator('#cf-client-id').fill('preset-client-id');
  await page.locator('#cf-secret').fill('preset-secret-never-shown');
  await page.locator('#save-client').click();
  await waitText('#list-status', 'registered');
  const client = (await must('GET', '/v1/clients', undefined, 200)).items.find((c) => c.name === preset.id);
  assert.ok(client, 'the client exists');
  assert.equal(client.preset, preset.id);
  for (const [name, value] of Object.entries(chosen)) assert.equal(client.preset_params[name], value);
  assert.equal(client.redirect_uri, CALLBACK());
  assert.equal(JSON.stringify(client).includes('preset-secret-never-shown'), false);
  await waitText(`#clients tr[data-id="${client.id}"]`, preset.id);
});

let manualClient;

await step('clients: register one by hand; the secret never comes back', async () => {
  if (presetsApi) await page.locator('#mode-manual').click();
  await page.locator('#cf-name').fill(MANUAL);
  await page.locator('#cf-client-id').fill('ui-client');
  await page.locator('#cf-secret').fill('ui-secret-1');
  await page.locator('#cf-authorize').fill(`${providerUrl}/authorize`);
  await page.locator('#cf-token').fill(`${providerUrl}/token`);
  await page.locator('#cf-revoke').fill(`${providerUrl}/revoke`);
  await page.locator('#cf-scopes').fill('crm.read crm.write');
  await page.locator('#cf-extra').fill('access_type: offline');
  await page.locator('#save-client').click();
  await waitText('#list-status', `Client "${MANUAL}" registered`);
  manualClient = (await must('GET', '/v1/clients', undefined, 200)).items.find((c) => c.name === MANUAL);
  assert.deepEqual(manualClient.scopes, ['crm.read', 'crm.write']);
  assert.deepEqual(manualClient.extra_authorize_params, { access_type: 'offline' });
  assert.equal(manualClient.pkce, true);
  assert.equal(manualClient.redirect_uri, CALLBACK());
  assert.equal(await page.locator('#cf-secret').inputValue(), '', 'the form forgets the secret');
  assert.equal((await page.content()).includes('ui-secret-1'), false);
});

await step('clients: edit one; only what changed is sent, and the API holds it', async () => {
  await page.getByRole('button', { name: `Edit ${MANUAL}` }).click();
  await waitText('#editor-title', `Edit ${MANUAL}`);
  assert.ok(await page.locator('#cf-secret').isHidden(), 'editing never shows a secret field');
  assert.equal(await page.locator('#cf-token').inputValue(), `${providerUrl}/token`);
  await page.locator('#cf-scopes').fill('crm.read');
  await page.locator('#save-client').click();
  await waitText('#list-status', `Client "${MANUAL}" saved`);
  assert.deepEqual((await must('GET', `/v1/clients/${manualClient.id}`, undefined, 200)).scopes, ['crm.read']);
  await waitText('#editor-title', 'Register a client');
  assert.equal((await text('#save-client')).trim(), 'Register client', 'the form is back to registering');
  assert.ok(await page.locator('#cf-secret').isVisible());
});

await step('clients: rotate the secret (sent once, never shown back)', async () => {
  await page.getByRole('button', { name: `Rotate the secret of ${MANUAL}` }).click();
  await visible('#rotate-dialog');
  await page.locator('#rotate-dialog-secret').fill('ui-secret-2');
  await page.locator('#rotate-dialog-submit').click();
  await page.locator('#rotate-dialog').waitFor({ state: 'detached', timeout: TIMEOUT });
  await waitText('#list-status', 'was replaced');
  assert.equal((await page.content()).includes('ui-secret-2'), false);
});

await step('clients: "Connect an account" starts an authorization and opens the provider; the new secret is used', async () => {
  await page.getByRole('button', { name: `Connect an account through ${MANUAL}` }).click();
  await visible('#connect-dialog');
  await page.locator('#connect-dialog-connection_id').fill('ui-branch-1');
  if (tagsApi) await page.locator('#connect-dialog-tags').fill('organization_id: acme\nend_user_id: u-7');
  const popup = context.waitForEvent('page', { timeout: TIMEOUT });
  await page.locator('#connect-dialog-submit').click();
  const provider = await popup;
  await provider.waitForURL(/\/oauth\/callback/, { timeout: TIMEOUT });
  await provider.waitForLoadState('load');
  assert.match(await provider.locator('body').innerText(), /Connected/i);
  await provider.close();
  await waitText('#list-status', 'opened in a new tab');
  const connection = await must('GET', '/v1/connections/ui-branch-1', undefined, 200);
  assert.equal(connection.status, 'active');
  assert.equal(connection.client_id, manualClient.id);
  if (tagsApi) assert.deepEqual(connection.tags, { organization_id: 'acme', end_user_id: 'u-7' });
  const exchange = tokenRequests.filter((f) => f.grant_type === 'authorization_code').pop();
  assert.equal(exchange.client_secret, 'ui-secret-2', 'the rotated secret is the one keyledger sends');
  assert.ok(exchange.code_verifier, 'with PKCE');
});

await step('clients: deleting a client in use is refused and explained (409 client_in_use)', async () => {
  await expecting(/status of 409/, async () => {
    await page.getByRole('button', { name: `Delete ${MANUAL}` }).click();
    await page.locator('dialog.confirm').getByRole('button', { name: 'Delete client' }).click();
    await waitText('#list-error', '409 client_in_use');
  });
  assert.match(await text('#list-error'), /still in use[\s\S]*revoke each one, then delete the client/);
  assert.equal(await page.locator('#list-error a').getAttribute('href'), `/admin/connections?client_id=${manualClient.id}`);
  assert.equal((await call('GET', `/v1/clients/${manualClient.id}`)).status, 200, 'still there');
  await checkPage('clients');
  await shot('clients.png');
  await atWidth(390, async () => {
    await checkPage('clients at 390 px');
    await shot('clients-390.png');
  });
});

await step('clients: "Create connection" for a client-credentials client (when the server has grants)', async () => {
  if (!clientCredentialsApi) {
    if (!grantsApi) assert.equal(await page.getByRole('button', { name: /^Create a connection through/ }).count(), 0);
    console.log('# SKIPPED client credentials: POST /v1/clients (grants) or POST /v1/connections is not on this server');
    return;
  }
  const cc = await must('POST', '/v1/clients', {
    name: 'machine-api', authorize_url: `${providerUrl}/authorize`, token_url: `${providerUrl}/token`, client_id: 'cc-client',
    client_secret: 'cc-secret', redirect_uri: CALLBACK(), grants: ['client_credentials'], scopes: ['api.read'],
  }, 201);
  await page.reload();
  await waitText(`#clients tr[data-id="${cc.id}"]`, 'machine-api');
  assert.equal(await page.getByRole('button', { name: 'Connect an account through machine-api' }).count(), 0, 'no browser flow for it');
  await page.getByRole('button', { name: 'Create a connection through machine-api' }).click();
  await page.locator('#cc-dialog-connection_id').fill('svc-cc-1');
  if (tagsApi) await page.locator('#cc-dialog-tags').fill('organization_id: acme');
  await page.locator('#cc-dialog-submit').click();
  await waitText('#list-status', 'Connection "svc-cc-1" created');
  const connection = await must('GET', '/v1/connections/svc-cc-1', undefined, 200);
  assert.equal(connection.client_id, cc.id);
  assert.equal(connection.status, 'active');
  assert.equal(tokenRequests.filter((f) => f.grant_type === 'client_credentials').length >= 1, true);
});

await step('clients: delete an unused client after confirming', async () => {
  await must('DELETE', '/v1/connections/ui-branch-1', undefined, 204);
  await page.getByRole('button', { name: `Delete ${MANUAL}` }).click();
  await page.locator('dialog.confirm').getByRole('button', { name: 'Delete client' }).click();
  await waitText('#list-status', `Client "${MANUAL}" deleted`);
  await page.locator(`#clients tr[data-id="${manualClient.id}"]`).waitFor({ state: 'detached', timeout: TIMEOUT });
  assert.equal((await call('GET', `/v1/clients/${manualClient.id}`)).status, 404);
});

await step('every page works at 390 px without sideways scrolling', async () => {
  await atWidth(390, async () => {
    for (const route of ['/admin', '/admin/licenses', '/admin/requests', '/admin/connections', '/admin/clients', '/admin/api-keys']) {
      const missing = (route === '/admin/connections' && !connectionsApi) || (route === '/admin/clients' && !presetsApi);
      await expecting(missing ? /status of 404/ : null, async () => {
        await goto(route);
        await visible('#app');
        await page.waitForLoadState('networkidle');
      });
      await checkPage(`${route} at 390 px`);
    }
  });
});

await step('signing out forgets the key', async () => {
  await goto('/admin');
  await page.locator('#sign-out').click();
  await page.waitForURL(/\/admin$/);
  await visible('#login');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('keyledger.admin_key')), null);
});

await step('no console errors, warnings or CSP violations on any page', async () => {
  assert.deepEqual(consoleProblems, []);
});

await browser.close();
provider.close();
console.log(`${passed} passed, 0 failed`);
