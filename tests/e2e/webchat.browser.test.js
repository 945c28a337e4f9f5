// Web chat in a real browser: Debian's chromium driven by playwright-core,
// against the real gateway and a real redis-server. A citizen opens the demo
// page, asks a question, sees the answer, clicks a button, reloads and finds
// the conversation where it was.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

let redis, gw, browser;

test.before(async () => {
  redis = await h.startRedis();
  gw = await h.startGateway({ redisUrl: redis.url });
  await gw.ready();
  browser = await h.launchChromium();
});

test.after(async () => {
  if (browser) await browser.close();
  const r = gw && await gw.stop();
  if (redis) await redis.stop();
  if (r) assert.equal(r.code, 0, `gateway exit code (logs:\n${gw.logs.slice(-3000)})`);
});

async function openChat(context) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${gw.base}/chat/`);
  // The demo page opens the widget; open it if it is closed.
  const input = page.getByRole('textbox', { name: /message|question|type|pregunta/i });
  if (!(await input.isVisible().catch(() => false))) {
    await page.getByRole('button', { name: /chat|help|ask/i }).first().click();
  }
  await input.waitFor({ state: 'visible', timeout: 10000 });
  return { page, input, errors };
}

async function ask(page, input, text) {
  await input.fill(text);
  await input.press('Enter');
}

test('ask, see the answer, click a button, reload and continue', async () => {
  const context = await browser.newContext();
  const { page, input, errors } = await openChat(context);
  const log = page.getByRole('log');

  await ask(page, input, 'how do i apply for medicaid');
  await assert.doesNotReject(log.getByText(/medicaid\.gov/i).first().waitFor({ timeout: 15000 }));

  await ask(page, input, 'menu');
  // Buttons of earlier replies are disabled once answered; take a live one.
  const button = log.locator('button:not([disabled])').first();
  await button.waitFor({ timeout: 15000 });
  const before = await log.innerText();
  const title = (await button.innerText()).trim();
  await button.click();
  await h.waitFor('an answer to the button', async () => (await log.innerText()).length > before.length + title.length + 10,
    { timeout: 15000 });

  const shot = path.join(os.tmpdir(), 'civicgate-webchat.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 1000);

  await page.reload();
  const input2 = page.getByRole('textbox', { name: /message|question|type|pregunta/i });
  if (!(await input2.isVisible().catch(() => false))) {
    await page.getByRole('button', { name: /chat|help|ask/i }).first().click();
  }
  // The history of the same conversation comes back after a reload ...
  const log2 = page.getByRole('log');
  await log2.getByText(/medicaid\.gov/i).first().waitFor({ timeout: 15000 });
  await log2.getByText('how do i apply for medicaid').first().waitFor({ timeout: 15000 });
  // ... and the conversation goes on from there.
  const bot = page.locator('.cgw-msg.cgw-bot');
  const n = await bot.count();
  await ask(page, input2, 'thank you');
  await h.waitFor('a reply after reload', async () => (await bot.count()) > n, { timeout: 15000 });

  // A citizen who writes Spanish gets Spanish answers, and the widget's own
  // words follow.
  const m = await bot.count();
  await ask(page, input2, 'necesito seguro medico para mis hijos, como lo solicito');
  await h.waitFor('a Spanish reply', async () => (await bot.count()) > m, { timeout: 15000 });
  assert.equal(await bot.last().getAttribute('lang'), 'es');
  assert.equal(await input2.getAttribute('placeholder'), 'Escriba su pregunta');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a page from another origin cannot open the chat socket', async () => {
  const res = await new Promise((resolve) => {
    const http = require('node:http');
    const req = http.request({
      host: '127.0.0.1', port: gw.port, path: '/chat/ws', method: 'GET',
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Protocol': 'civicgate-webchat',
        Origin: 'https://evil.example',
      },
    });
    req.on('upgrade', (r, sock) => { sock.destroy(); resolve({ status: 101 }); });
    req.on('response', (r) => resolve({ status: r.statusCode }));
    req.on('error', (e) => resolve({ status: 'closed', error: String(e) }));
    req.end();
  });
  assert.notEqual(res.status, 101);
});
