// Telegram end to end: the real civicgate binary, a real redis-server and
// the fake Bot API (tests/e2e/fake-telegram.js). Each test sends webhooks the
// way Telegram does and asserts what reaches the Bot API.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');

const TOKEN = '123456:TEST-token_e2e';
const SECRET = 'e2e-secret_ABC123';

let stack, redis, tg, gw;

async function waitSends(chatId, n, timeout = 10000) {
  return h.waitFor(`${n} sendMessage to ${chatId}`, async () => {
    const s = await stack.sent(chatId);
    return s.length >= n ? s : null;
  }, { timeout });
}

function hook(body, secret = SECRET) {
  const headers = secret === null ? {} : { 'x-telegram-bot-api-secret-token': secret };
  return h.postWebhook(gw, 'telegram', body, headers);
}

let chat = 5550000 + Math.floor(Math.random() * 1000);
const newChat = () => ++chat;

test.before(async () => {
  stack = await h.startTelegramStack({ token: TOKEN, secret: SECRET });
  ({ redis, tg, gw } = stack);
});

test.after(() => stack && stack.close());

test('a question gets the answer from the intent table, naming its source', async () => {
  const id = newChat();
  const r = await hook(h.tgText(id, 'how do i apply for medicaid'));
  assert.equal(r.status, 200, r.body);
  const [m] = await waitSends(id, 1);
  assert.match(m.body.text, /Medicaid/i);
  assert.match(m.body.text, /https:\/\/www\.medicaid\.gov/);
});

test('the menu comes with buttons as an inline keyboard; a button press is acknowledged and answered', async () => {
  const id = newChat();
  assert.equal((await hook(h.tgText(id, 'menu'))).status, 200);
  const [m] = await waitSends(id, 1);
  const kb = m.body.reply_markup && m.body.reply_markup.inline_keyboard;
  assert.ok(Array.isArray(kb) && kb.length > 0, `inline keyboard in ${JSON.stringify(m.body)}`);
  const button = kb.flat().find((b) => b.callback_data && b.callback_data.startsWith('i:'));
  assert.ok(button, 'an intent button');
  assert.ok(Buffer.byteLength(button.callback_data) <= 64);

  const cb = h.tgCallback(id, button.callback_data);
  assert.equal((await hook(cb)).status, 200);
  const all = await waitSends(id, 2);
  const calls = await tg.calls();
  const ack = calls.find((c) => c.method === 'answerCallbackQuery'
    && c.body.callback_query_id === cb.callback_query.id);
  assert.ok(ack, 'answerCallbackQuery for the button press');
  assert.notEqual(all[1].body.text, m.body.text);
});

test('the same update delivered twice is answered once', async () => {
  const id = newChat();
  const u = h.tgText(id, 'food stamps');
  assert.equal((await hook(u)).status, 200);
  assert.equal((await hook(u)).status, 200);
  await waitSends(id, 1);
  await h.sleep(1500);
  assert.equal((await stack.sent(id)).length, 1);
});

test('a wrong or missing secret gets 401 and stores nothing', async () => {
  const before = await redis.cli('dbsize');
  const id = newChat();
  const wrong = await hook(h.tgText(id, 'hello'), 'not-the-secret');
  assert.equal(wrong.status, 401);
  const missing = await hook(h.tgText(id, 'hello'), null);
  assert.equal(missing.status, 401);
  assert.equal(await redis.cli('dbsize'), before);
  await h.sleep(500);
  assert.equal((await stack.sent(id)).length, 0);
});

test('malformed JSON gets 400 with a reason and stores nothing', async () => {
  const before = await redis.cli('dbsize');
  const r = await hook('{"update_id": 12, "message": {');
  assert.equal(r.status, 400);
  assert.ok(r.body.length > 0, 'a reason');
  assert.equal(await redis.cli('dbsize'), before);
});

test('an oversized body gets 413 before it is read', async () => {
  // Announce 2 MiB, send a little: the gateway must answer from the headers
  // alone (a client streaming the whole body may see the socket closed).
  const net = require('node:net');
  const status = await new Promise((resolve, reject) => {
    const sock = net.connect(gw.port, '127.0.0.1', () => {
      sock.write('POST /webhooks/telegram HTTP/1.1\r\nHost: 127.0.0.1\r\n'
        + 'Content-Type: application/json\r\nContent-Length: 2097152\r\n'
        + `X-Telegram-Bot-Api-Secret-Token: ${SECRET}\r\n\r\n{"update_id":1,`);
    });
    let buf = '';
    sock.on('data', (d) => { buf += d; const m = /^HTTP\/1\.1 (\d+)/.exec(buf); if (m) { sock.destroy(); resolve(Number(m[1])); } });
    sock.on('error', reject);
    sock.setTimeout(5000, () => { sock.destroy(); reject(new Error(`no answer; got ${JSON.stringify(buf)}`)); });
  });
  assert.equal(status, 413);
});

test('429 with retry_after 2: retried no sooner than 2 s later and delivered once', async () => {
  const id = newChat();
  await tg.fail({ method: 'sendMessage', status: 429, retry_after: 2, count: 1 });
  const t0 = Date.now();
  assert.equal((await hook(h.tgText(id, 'medicare'))).status, 200);
  const all = await h.waitFor('two attempts', async () => {
    const c = (await tg.calls()).filter((x) => x.method === 'sendMessage' && String(x.body.chat_id) === String(id));
    return c.length >= 2 ? c : null;
  }, { timeout: 15000 });
  const ts = (c) => c.ts || c.at || c.time;
  assert.ok(ts(all[1]) - ts(all[0]) >= 2000, `retry after ${ts(all[1]) - ts(all[0])} ms`);
  assert.ok(Date.now() - t0 >= 2000);
  await h.sleep(1000);
  const ok = (await tg.calls()).filter((x) => x.method === 'sendMessage' && String(x.body.chat_id) === String(id)
    && (x.status || 200) === 200);
  assert.equal(ok.length, 1, 'delivered once');
});

test('two messages from one citizen in quick succession are answered in order', async () => {
  const id = newChat();
  await Promise.all([
    hook(h.tgText(id, 'medicaid')),
    h.sleep(5).then(() => hook(h.tgText(id, 'thank you'))),
  ]);
  const s = await waitSends(id, 2);
  assert.match(s[0].body.text, /Medicaid/i);
  assert.doesNotMatch(s[1].body.text, /medicaid\.gov/);
});

test('Redis down: webhooks get 503 and /readyz fails; Redis back: what was acknowledged is answered', async () => {
  const id = newChat();
  // acknowledged just before the outage
  assert.equal((await hook(h.tgText(id, 'medicaid'))).status, 200);
  await redis.stop();
  const during = await hook(h.tgText(id, 'medicare'));
  assert.equal(during.status, 503);
  const rz = await fetch(gw.base + '/readyz');
  assert.equal(rz.status, 503);
  await redis.restart();
  await gw.ready();
  assert.equal((await hook(h.tgText(id, 'snap benefits'))).status, 200);
  const s = await waitSends(id, 2, 20000);
  assert.match(s[0].body.text, /Medicaid/i);
});

test('killed with SIGKILL right after acknowledging, restarted: the reply still arrives', async () => {
  const id = newChat();
  // The first delivery hangs at the fake API; the gateway dies meanwhile.
  await tg.fail({ method: 'sendMessage', delay_ms: 2000, count: 1 });
  assert.equal((await hook(h.tgText(id, 'medicaid'))).status, 200);
  await h.sleep(300);
  await gw.kill();
  // The fake records the hung call when its delay ends, dead client or not:
  // let that happen, then forget it, so that only a delivery by the
  // restarted gateway can satisfy the wait below.
  await h.sleep(2200);
  await tg.reset();
  await gw.start();
  await gw.ready();
  // The dead consumer's entry is claimed once it has been idle for the
  // claim time (30 s, docs/redis.md).
  const s = await waitSends(id, 1, 60000);
  assert.match(s[0].body.text, /Medicaid/i);
});
