// The dashboard in a real browser: Debian's chromium driven by
// playwright-core, against the real gateway and a real redis-server holding
// data recorded by real Telegram webhooks. A tiny page of the test's own
// (served from the gateway's origin through request interception, with the
// gateway's own Content-Security-Policy) loads /agent/dashboard.js and .css
// from the gateway and mounts the dashboard the way the console does.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

const TOKEN = '123456:TEST-token_dashboard';
const SECRET = 'e2e-secret_dashboard';
const ADMIN = `adm-${crypto.randomBytes(24).toString('hex')}`;

let stack, redis, tg, gw, browser;
let chat = 8880000 + Math.floor(Math.random() * 1000);
let sentMessages = 0;

async function ask(text) {
  const id = ++chat;
  const r = await h.postWebhook(gw, 'telegram', h.tgText(id, text), { 'x-telegram-bot-api-secret-token': SECRET });
  assert.equal(r.status, 200, r.body);
  sentMessages++;
  await h.waitFor(`a reply to ${id}`, async () => (await tg.calls())
    .some((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id)), { timeout: 15000 });
}

test.before(async () => {
  stack = await h.startTelegramStack({
    token: TOKEN, secret: SECRET,
    extra: { admin: { tokens: [{ name: 'e2e-admin', sha256: crypto.createHash('sha256').update(ADMIN).digest('hex') }] } },
  });
  ({ redis, tg, gw } = stack);
  for (const q of ['can I register my boat online', 'how do I register my boat online?',
    'Can I register my boat online please', 'how do i apply for medicaid', 'how do i apply for medicaid',
    'food stamps']) {
    await ask(q);
  }
  browser = await h.launchChromium();
});

test.after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.close();
});

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Dashboard test</title>
<link rel="stylesheet" href="/agent/dashboard.css">
<script src="/agent/dashboard.js" defer></script>
<script src="/__dashboard-test/mount.js" defer></script>
</head><body><main id="dash"></main></body></html>`;

// What the console does: mount with a token and its own fetchJson.
const MOUNT = `'use strict';
window.__csp = [];
document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));
window.__fetches = [];
const token = decodeURIComponent(location.hash.slice(1));
window.CivicgateDashboard.mount(document.getElementById('dash'), {
  token,
  fetchJson: (p) => {
    window.__fetches.push(p);
    return fetch(p, { headers: { Authorization: 'Bearer ' + token } }).then((r) => {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    });
  },
});`;

async function openDashboard(token) {
  // the gateway's own policy for its pages
  const csp = (await fetch(`${gw.base}/chat/`)).headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  const context = await browser.newContext({ acceptDownloads: true });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (/Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text()); });
  await page.route(`${gw.base}/__dashboard-test/**`, (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.endsWith('/page.html')) {
      return route.fulfill({ status: 200, contentType: 'text/html; charset=utf-8', headers: { 'content-security-policy': csp }, body: PAGE });
    }
    return route.fulfill({ status: 200, contentType: 'text/javascript; charset=utf-8', body: MOUNT });
  });
  await page.goto(`${gw.base}/__dashboard-test/page.html#${encodeURIComponent(token)}`);
  return { context, page, errors };
}

test('the dashboard draws the recorded figures as accessible SVG charts and the unmatched groups', async () => {
  const { context, page, errors } = await openDashboard(ADMIN);
  const dash = page.locator('section.cg-dash');
  await dash.and(page.locator('[data-loaded]')).waitFor({ timeout: 15000 });

  // the console's fetchJson was used for both figures
  const fetches = await page.evaluate(() => window.__fetches);
  assert.ok(fetches.some((p) => p.startsWith('/api/v1/admin/stats?')), JSON.stringify(fetches));
  assert.ok(fetches.some((p) => p.startsWith('/api/v1/admin/unmatched?')), JSON.stringify(fetches));

  // tiles: what was sent
  const messages = await page.locator('.cg-dash-tile', { hasText: 'Messages' }).locator('dd').innerText();
  assert.equal(messages.trim(), String(sentMessages));

  // every chart: an SVG image with a title and a description, and its table
  const figures = page.locator('figure.cg-dash-figure');
  assert.ok(await figures.count() >= 5, `${await figures.count()} charts`);
  for (let i = 0; i < await figures.count(); i++) {
    const f = figures.nth(i);
    const svg = f.locator('svg[role="img"]');
    assert.equal(await svg.count(), 1);
    const labelledby = await svg.getAttribute('aria-labelledby');
    const [tid, did] = labelledby.split(' ');
    assert.ok((await f.locator(`[id="${tid}"]`).textContent()).length > 0);
    assert.ok((await f.locator(`[id="${did}"]`).textContent()).length > 0);
    assert.equal(await f.locator('table').count(), 1);
  }

  // messages per day: bars drawn, today's row of the table has every message
  const perDay = page.locator('figure[data-chart="Messages per day"]');
  assert.ok(await perDay.locator('rect.cg-dash-bar').count() >= 1);
  const today = new Date().toISOString().slice(0, 10);
  const row = perDay.locator('tbody tr', { has: page.locator(`th:text-is("${today}")`) });
  const cells = await row.locator('td').allTextContents();   // the table is in a closed <details>
  assert.equal(cells.map(Number).reduce((a, b) => a + b, 0), sentMessages, cells.join(','));
  // the bar has its colour from the style sheet (CSP: no inline styles)
  const fill = await perDay.locator('rect.cg-dash-bar').first().evaluate((e) => getComputedStyle(e).fill);
  assert.notEqual(fill, 'rgb(0, 0, 0)');

  // answers per intent: medicaid twice
  const answers = page.locator('figure[data-chart^="Answers per intent"]');
  const answerRows = await answers.locator('tbody tr').evaluateAll((rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  assert.deepEqual(answerRows.find((r) => r[0] === 'cms-medicaid'), ['cms-medicaid', '2']);

  // the unmatched group with its count and nearest intents
  const group = page.locator('tr.cg-dash-group', { hasText: 'register my boat online' });
  await group.waitFor({ timeout: 5000 });
  assert.equal((await group.locator('.cg-dash-count').innerText()).trim(), '3');
  assert.ok(await group.locator('.cg-dash-nearest li').count() >= 1);

  // asking for Spanish questions only: the English group goes
  await page.getByLabel('Questions in').selectOption('es');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('section.cg-dash[data-loaded="2"]').waitFor({ timeout: 15000 });
  assert.equal(await page.locator('tr.cg-dash-group').count(), 0);
  assert.ok(fetches.length >= 2);
  assert.ok((await page.evaluate(() => window.__fetches)).some((p) => /unmatched\?.*lang=es/.test(p)));
  await page.getByLabel('Questions in').selectOption('');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.locator('section.cg-dash[data-loaded="3"]').waitFor({ timeout: 15000 });
  await page.locator('tr.cg-dash-group', { hasText: 'register my boat online' }).waitFor({ timeout: 5000 });

  // the CSV export downloads the same figures
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 10000 }),
    page.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  const csv = fs.readFileSync(await download.path(), 'utf8').trim().split('\n');
  assert.match(csv[0], /^day,channel,conversations,messages,/);
  const todayRow = csv.find((l) => l.startsWith(`${today},telegram,`));
  assert.ok(todayRow, csv.join('\n'));
  assert.equal(todayRow.split(',')[3], String(sentMessages));

  const shot = path.join(os.tmpdir(), 'civicgate-dashboard.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 1000);

  assert.deepEqual(await page.evaluate(() => window.__csp), []);
  assert.deepEqual(errors, []);
  await context.close();
});

test('without a valid token the dashboard says it could not load, and draws nothing', async () => {
  const { context, page, errors } = await openDashboard('not-a-token');
  await page.locator('section.cg-dash[data-error]').waitFor({ timeout: 15000 });
  assert.match(await page.locator('.cg-dash-status').innerText(), /Could not load/);
  assert.equal(await page.locator('figure.cg-dash-figure').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});
