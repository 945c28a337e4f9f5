// The gateway's life: health, readiness, metrics, intent reloads on SIGHUP
// (a broken table is refused and the old one keeps serving) and a clean exit
// on SIGTERM. Real binary, real redis-server, fake Bot API.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

const TOKEN = '777:lifecycle-token';
const SECRET = 'lifecycle-secret';
let redis, tg, gw, dir;
let chat = 7770000 + Math.floor(Math.random() * 1000);

async function ask(text) {
  const id = ++chat;
  const r = await h.postWebhook(gw, 'telegram', h.tgText(id, text), { 'x-telegram-bot-api-secret-token': SECRET });
  assert.equal(r.status, 200, r.body);
  const m = await h.waitFor(`reply to ${id}`, async () =>
    (await tg.calls()).find((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id)));
  return m.body.text;
}

const METRICS_TOKEN = 'scrape-token-e2e';

async function metrics() {
  const res = await fetch(gw.base + '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  assert.equal(res.status, 200);
  return res.text();
}

function metric(text, name) {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) sum += Number(line.split(' ').pop());
  }
  return sum;
}

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-intents-'));
  fs.cpSync(path.join(h.ROOT, 'intents'), dir, { recursive: true });
  redis = await h.startRedis({ aof: false });
  tg = await h.startFakeTelegram(TOKEN);
  gw = await h.startGateway({
    redisUrl: redis.url, intentsDir: dir,
    telegram: { bot_token: TOKEN, webhook_secret: SECRET, api_base: tg.base },
    extra: { metrics: { token: METRICS_TOKEN } },
  });
  await gw.ready();
});

test.after(async () => {
  if (tg) await tg.stop();
  if (redis) await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('healthz, readyz and metrics answer', async () => {
  assert.equal((await fetch(gw.base + '/healthz')).status, 200);
  assert.equal((await fetch(gw.base + '/readyz')).status, 200);
  await ask('medicaid');
  const m = await metrics();
  assert.ok(metric(m, 'civicgate_messages_received_total') >= 1, m.slice(0, 2000));
  assert.ok(metric(m, 'civicgate_messages_sent_total') >= 1);
  assert.match(m, /# TYPE civicgate_webhook_duration_seconds histogram/);
});

// The direct commit (docs/architecture.md): a message to a conversation
// with nothing pending, as this instance last left it, is stored and
// answered in one script: it never enters cg:inbox. A conversation changed
// behind the gateway's back goes through the inbox and is answered all the
// same.
test('messages are committed as they are stored (the direct commit), and through the inbox when the guess fails', async () => {
  const before = metric(await metrics(), 'civicgate_pipeline_direct_total');
  const inbox = Number((await redis.cli('XLEN', 'cg:inbox')).replace(/\D/g, '')) || 0;
  const id = ++chat;
  const send = async (text, want) => {
    const n = (await tg.calls()).filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id)).length;
    const r = await h.postWebhook(gw, 'telegram', h.tgText(id, text), { 'x-telegram-bot-api-secret-token': SECRET });
    assert.equal(r.status, 200, r.body);
    const m = await h.waitFor(`reply ${n + 1} to ${id}`, async () =>
      (await tg.calls()).filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id))[n]);
    assert.match(m.body.text, want);
  };
  await send('medicaid', /Medicaid/i);
  await send('medicare', /Medicare/i);
  assert.equal(metric(await metrics(), 'civicgate_pipeline_direct_total') - before, 2);
  assert.equal(Number((await redis.cli('XLEN', 'cg:inbox')).replace(/\D/g, '')) || 0, inbox);
  // as another instance or an agent would: the session is not what this one saw
  await redis.cli('HSET', `cg:sess:{telegram:${id}}`, 'name', 'Bea');
  await send('medicaid', /Medicaid/i);
  assert.equal(metric(await metrics(), 'civicgate_pipeline_direct_total') - before, 2);
  assert.equal(Number((await redis.cli('XLEN', 'cg:inbox')).replace(/\D/g, '')) || 0, inbox + 1);
});

test('metrics are not public: no token or a wrong one gets 401', async () => {
  assert.equal((await fetch(gw.base + '/metrics')).status, 401);
  const wrong = await fetch(gw.base + '/metrics', { headers: { authorization: 'Bearer nope' } });
  assert.equal(wrong.status, 401);
});

test('SIGHUP with a broken intent file: refused, the old table keeps serving', async () => {
  const file = path.join(dir, 'benefits', 'cms-medicaid.json');
  const good = fs.readFileSync(file, 'utf8');
  fs.writeFileSync(file, good.replace('"examples"', '"exmaples"'));
  const logsBefore = gw.logs.length;
  gw.proc.kill('SIGHUP');
  await h.waitFor('the reload error in the log', async () => /exmaples/.test(gw.logs.slice(logsBefore)));
  assert.match(await ask('how do i apply for medicaid'), /medicaid\.gov/);
  assert.equal((await fetch(gw.base + '/readyz')).status, 200);
  fs.writeFileSync(file, good);
});

test('SIGHUP with a valid change: the new answer is served', async () => {
  const file = path.join(dir, 'benefits', 'cms-medicaid.json');
  const intent = JSON.parse(fs.readFileSync(file, 'utf8'));
  intent.answer.en = 'Medicaid answer, reviewed today. Apply or learn more: https://www.medicaid.gov/';
  fs.writeFileSync(file, JSON.stringify(intent, null, 2));
  gw.proc.kill('SIGHUP');
  await h.waitFor('the new answer', async () => /reviewed today/.test(await ask('how do i apply for medicaid')),
    { timeout: 20000, interval: 300 });
});

test('SIGTERM: a clean exit with code 0', async () => {
  const r = await gw.stop('SIGTERM');
  assert.equal(r.code, 0, gw.logs.slice(-2000));
  // JSON lines on stderr, every one of them
  for (const line of gw.logs.trim().split('\n')) {
    if (!line.startsWith('{')) continue; // sanitizer or library noise is not ours
    const o = JSON.parse(line);
    assert.ok(o.level && o.event, line);
  }
});
