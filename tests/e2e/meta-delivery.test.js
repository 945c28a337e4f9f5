// WhatsApp and Messenger delivery end to end: read receipts, status callbacks
// → delivery state in Redis, every Graph error class, /readyz channel health,
// and the 24-hour window (WhatsApp re-engagement template + held replies,
// Messenger HUMAN_AGENT). The real binary, a real redis-server, the fake
// Graph API (tests/e2e/fake-graph.js). "Now" is made testable by moving the
// session's last_in back in Redis; agent replies are queued exactly as
// cg_store_send_reply does (same keys, fields and seq counter).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const fakeGraph = require('./fake-graph.js');

const WA = { token: 'wa-dlv-token', secret: 'wa-dlv-secret', verify: 'wa-dlv-verify', phone: '1065550002' };
const FB = { token: 'page-dlv-token', secret: 'fb-dlv-secret', verify: 'fb-dlv-verify' };
const TEMPLATE = { name: 'continue_conversation', language: 'en_US' };
const HOUR = 3600 * 1000;
let redis, graph, gw;
let n = Math.floor(Math.random() * 100000);

test.before(async () => {
  redis = await h.startRedis({ aof: false });
  graph = await fakeGraph.start({ waToken: WA.token, pageToken: FB.token, phoneNumberId: WA.phone, port: 0,
    templates: [TEMPLATE.name] });
  const base = `http://127.0.0.1:${graph.port}`;
  gw = await h.startGateway({
    redisUrl: redis.url,
    channels: {
      whatsapp: { phone_number_id: WA.phone, access_token: WA.token, app_secret: WA.secret,
        verify_token: WA.verify, api_base: base, api_version: 'v21.0', reengagement_template: TEMPLATE },
      messenger: { page_access_token: FB.token, app_secret: FB.secret, verify_token: FB.verify,
        api_base: base, api_version: 'v21.0' },
    },
    extra: { outbox: { max_attempts: 4 } },
  });
  await gw.ready();
});

test.after(async () => {
  const r = gw && await gw.stop();
  if (graph) await graph.close();
  if (redis) await redis.stop();
  if (r) assert.equal(r.code, 0, gw.logs.slice(-2000));
});

const wa = (base) => String(base + (++n));
const psid = () => String(7100000000 + (++n));

function waEnvelope(value) {
  return { object: 'whatsapp_business_account', entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: {
    messaging_product: 'whatsapp', metadata: { display_phone_number: '15550783881', phone_number_id: WA.phone }, ...value,
  } }] }] };
}

function waText(from, text) {
  const id = `wamid.DLV${++n}`;
  return { id, body: waEnvelope({
    contacts: [{ profile: { name: 'Ana' }, wa_id: from }],
    messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
  }) };
}

function waStatus(to, wamid, status, errors) {
  const s = { id: wamid, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: to };
  if (errors) s.errors = errors;
  return waEnvelope({ statuses: [s] });
}

function fbEvent(id, ev) {
  const now = Date.now();
  return { object: 'page', entry: [{ id: '106917301234567', time: now, messaging: [{
    sender: { id }, recipient: { id: '106917301234567' }, timestamp: now, ...ev }] }] };
}
const fbText = (id, text) => fbEvent(id, { message: { mid: `m_DLV${++n}`, text } });

async function post(channel, obj) {
  const body = JSON.stringify(obj);
  const secret = channel === 'whatsapp' ? WA.secret : FB.secret;
  const r = await h.postWebhook(gw, channel, body,
    { 'content-type': 'application/json', 'x-hub-signature-256': fakeGraph.sign(body, secret) });
  assert.equal(r.status, 200, r.body);
  return r;
}

const callsTo = (to, pred = () => true) => graph.calls.filter((c) => String(c.to) === String(to) && pred(c));
const textOf = (c) => (c.body.text && c.body.text.body) || (c.body.interactive && c.body.interactive.body.text) ||
  (c.body.message && (c.body.message.text || (c.body.message.attachment && c.body.message.attachment.payload.text)));

async function waitCalls(what, to, count, pred = (c) => c.status === 200, timeout = 20000) {
  return h.waitFor(what, async () => {
    const c = callsTo(to, pred);
    return c.length >= count ? c : null;
  }, { timeout });
}

async function deadLetter(user, timeout = 20000) {
  return h.waitFor(`dead letter for ${user}`, async () => {
    const out = await redis.cli('--raw', 'XRANGE', 'cg:deadletter', '-', '+');
    const lines = out.split('\n');
    const entries = [];
    let cur = null;
    for (let i = 0; i < lines.length; i++) {
      if (/^[0-9]+-[0-9]+$/.test(lines[i])) { cur = { id: lines[i] }; entries.push(cur); continue; }
      if (cur && i + 1 < lines.length) { cur[lines[i]] = lines[i + 1]; i++; }
    }
    return entries.find((e) => e.user === user) || null;
  }, { timeout });
}

async function dlv(channel, user, id) {
  const v = await redis.cli('--raw', 'HGET', `cg:dlv:{${channel}:${user}}`, id);
  return v ? JSON.parse(v) : null;
}

async function metric(line) {
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  return m ? Number(m.slice(line.length + 1)) : 0;
}

// Queue a reply the way cg_store_send_reply (gateway/store.c) does: the
// conversation's next out seq, the outbox entry with from_agent, the transcript.
async function queueReply(channel, user, text, { fromAgent = true } = {}) {
  const now = String(Date.now());
  const script = "local seq = redis.call('HINCRBY', KEYS[1], 'out', 1)\n" +
    "redis.call('EXPIRE', KEYS[1], 2592000)\n" +
    "redis.call('XADD', KEYS[3], '*', 'channel', ARGV[1], 'user', ARGV[2], 'text', ARGV[3], 'buttons', '[]', " +
    "'lang', 'en', 'from_agent', ARGV[4], 'created_at', ARGV[5], 'received_at', ARGV[5], 'seq', tostring(seq))\n" +
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', 500, '*', 'dir', 'out', 'text', ARGV[3], 'buttons', '[]', " +
    "'from_agent', ARGV[4], 'ts', ARGV[5])\n" +
    'return seq';
  const seq = await redis.cli('EVAL', script, '3', `cg:seq:{${channel}:${user}}`, `cg:conv:{${channel}:${user}}`,
    'cg:outbox', channel, user, text, fromAgent ? '1' : '0', now);
  assert.match(seq, /^\(integer\) [0-9]+$/, seq);
}

async function setLastIn(channel, user, msAgo) {
  await redis.cli('HSET', `cg:sess:{${channel}:${user}}`, 'last_in', String(Date.now() - msAgo));
}

async function readyz() {
  return (await fetch(`${gw.base}/readyz`)).json();
}

test('WhatsApp: every citizen message is marked as read through the Graph API', async () => {
  const user = wa(15551000000);
  const m = waText(user, 'how do i apply for medicaid');
  const before = await metric('civicgate_read_receipts_sent_total{channel="whatsapp"}');
  await post('whatsapp', m.body);
  await waitCalls('the answer', user, 1);
  const read = await h.waitFor('the read receipt', async () =>
    graph.calls.find((c) => c.kind === 'read' && c.body.message_id === m.id && c.status === 200));
  assert.deepEqual(read.body, { messaging_product: 'whatsapp', status: 'read', message_id: m.id });
  await h.waitFor('read metric', async () =>
    (await metric('civicgate_read_receipts_sent_total{channel="whatsapp"}')) === before + 1);
});

test('WhatsApp: a failed read receipt is tried a few times, counted, and never blocks the answer', async () => {
  const user = wa(15551100000);
  graph.fail({ platform: 'whatsapp', kind: 'read', status: 500, count: 10 });
  const before = await metric('civicgate_read_receipts_failed_total{channel="whatsapp"}');
  const m = waText(user, 'how do i apply for medicaid');
  await post('whatsapp', m.body);
  await waitCalls('the answer', user, 1);
  await h.waitFor('read receipt given up', async () =>
    (await metric('civicgate_read_receipts_failed_total{channel="whatsapp"}')) === before + 1, { timeout: 15000 });
  const tries = graph.calls.filter((c) => c.kind === 'read' && c.body.message_id === m.id);
  assert.equal(tries.length, 3, 'three attempts, then given up');
  await h.waitFor('acknowledged', async () =>
    (await redis.cli('--raw', 'XPENDING', 'cg:outbox', 'outbox')).split('\n')[0] === '0');
  graph.reset();
});

test('WhatsApp: statuses sent, delivered, read and failed update the delivery state in Redis', async () => {
  const user = wa(15551200000);
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  const [c] = await waitCalls('the answer', user, 1);
  assert.match(c.id, /^wamid\.FAKE/);
  const rec = await h.waitFor('accepted record', () => dlv('whatsapp', user, c.id));
  assert.equal(rec.state, 'accepted');
  assert.equal(rec.seq, 1);
  for (const st of ['sent', 'delivered', 'read']) {
    await post('whatsapp', waStatus(user, c.id, st));
    await h.waitFor(`state ${st}`, async () => (await dlv('whatsapp', user, c.id)).state === st);
  }
  // a late "delivered" after "read" does not move the state back
  await post('whatsapp', waStatus(user, c.id, 'delivered'));
  await h.sleep(300);
  assert.equal((await dlv('whatsapp', user, c.id)).state, 'read');

  const before = await metric('civicgate_delivery_failed_total{channel="whatsapp",code="131026"}');
  await post('whatsapp', waText(user, 'menu').body);
  const calls = await waitCalls('the second answer', user, 2);
  const id2 = calls[1].id;
  await h.waitFor('second record', () => dlv('whatsapp', user, id2));
  await post('whatsapp', waStatus(user, id2, 'failed', [{ code: 131026, title: 'Message undeliverable' }]));
  const failed = await h.waitFor('failed state', async () => {
    const r = await dlv('whatsapp', user, id2);
    return r.state === 'failed' ? r : null;
  });
  assert.equal(failed.code, '131026');
  assert.equal(failed.seq, 2);
  assert.equal(await metric('civicgate_delivery_failed_total{channel="whatsapp",code="131026"}'), before + 1);
  const ttl = Number((await redis.cli('TTL', `cg:dlv:{whatsapp:${user}}`)).replace(/\D/g, ''));
  assert.ok(ttl > 0, 'the delivery state expires');
});

test('Messenger: delivery and read watermarks update the delivery state', async () => {
  const id = psid();
  await post('messenger', fbText(id, 'how do i apply for medicaid'));
  const [c] = await waitCalls('the answer', id, 1);
  assert.match(c.id, /^m_FAKE/);
  await h.waitFor('accepted record', () => dlv('messenger', id, c.id));
  const wm = Date.now() + 1000;
  await post('messenger', fbEvent(id, { delivery: { mids: [c.id], watermark: wm } }));
  await h.waitFor('delivered', async () => (await dlv('messenger', id, c.id)).state === 'delivered');
  await post('messenger', fbEvent(id, { read: { watermark: wm + 1 } }));
  await h.waitFor('read', async () => (await dlv('messenger', id, c.id)).state === 'read');
});

test('WhatsApp: throttled (130429 with Retry-After) waits, then the same reply is delivered', async () => {
  const user = wa(15551300000);
  graph.fail({ platform: 'whatsapp', to: user, kind: 'message', status: 400, code: 130429, count: 1, retry_after: 2 });
  const before = await metric('civicgate_deliveries_throttled_total{channel="whatsapp"}');
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  const ok = await waitCalls('delivered after the throttle', user, 1);
  const all = callsTo(user);
  assert.equal(all.length, 2);
  assert.equal(all[0].code, 130429);
  assert.ok(ok[0].ts - all[0].ts >= 1900, `waited ${ok[0].ts - all[0].ts} ms, Retry-After said 2 s`);
  assert.deepEqual(all[1].body, all[0].body, 'the same reply again');
  assert.equal(await metric('civicgate_deliveries_throttled_total{channel="whatsapp"}'), before + 1);
});

test('WhatsApp: HTTP 429, 131056 and 80007 are throttled too; 5xx and a dropped connection are retried', async () => {
  for (const rule of [{ status: 429 }, { status: 400, code: 131056 }, { status: 400, code: 80007 },
    { status: 500 }, { status: 503 }, { drop: true }]) {
    const user = wa(15551400000);
    graph.fail({ platform: 'whatsapp', to: user, kind: 'message', count: 1, ...rule });
    await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
    await waitCalls(`delivered after ${JSON.stringify(rule)}`, user, 1);
    const all = callsTo(user);
    assert.equal(all.length, 2, JSON.stringify(rule));
    assert.notEqual(all[0].status, 200);
  }
});

test('WhatsApp: 131026, 131051 and 100 are permanent: dead letter with the reason and code', async () => {
  const cases = [
    { code: 131026, prefix: 'undeliverable:' },
    { code: 131051, prefix: 'unsupported message type:' },
    { code: 100, prefix: 'invalid parameter:' },
  ];
  for (const k of cases) {
    const user = wa(15551500000);
    graph.fail({ platform: 'whatsapp', to: user, kind: 'message', status: 400, code: k.code, count: 1 });
    await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
    const d = await deadLetter(user);
    assert.equal(d.kind, 'failed');
    assert.ok(d.reason.startsWith(k.prefix), d.reason);
    assert.equal(d.code, String(k.code));
    assert.equal(d.attempts, '0', 'not retried');
    assert.equal(callsTo(user).length, 1);
  }
  // code 100 is our bug: the request's shape is logged, its content is not
  const line = gw.logs.split('\n').find((l) => l.includes('"outbox_request_refused"') && l.includes('"code":"100"'));
  assert.ok(line, 'request shape logged');
  const ev = JSON.parse(line);
  assert.match(ev.shape, /"messaging_product":"s8"/);
  assert.match(ev.path, /^\/v21\.0\/1065550002\/messages$/);
  assert.doesNotMatch(line, /medicaid/i, 'no reply text in the log');
  assert.doesNotMatch(line, new RegExp(WA.token), 'no token in the log');
});

test('WhatsApp: token rejected (190) dead-letters, marks the channel unhealthy in /readyz, and recovers', async () => {
  const before = await readyz();
  assert.equal(before.channels.whatsapp.status, 'ok');
  assert.equal(before.channels.messenger.status, 'ok');
  const user = wa(15551600000);
  graph.fail({ platform: 'whatsapp', to: user, kind: 'message', status: 401, code: 190,
    message: 'Error validating access token: Session has expired', count: 1 });
  const alerts = await metric('civicgate_channel_auth_failures_total{channel="whatsapp"}');
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  const d = await deadLetter(user);
  assert.equal(d.kind, 'bad_config');
  assert.equal(d.code, '190');
  const r = await h.waitFor('unhealthy', async () => {
    const x = await readyz();
    return x.channels.whatsapp.status === 'unhealthy' ? x : null;
  });
  assert.equal(r.status, 'ready', 'a channel problem does not take the instance out');
  assert.match(r.channels.whatsapp.reason, /190/);
  assert.ok(r.channels.whatsapp.at > 0);
  assert.equal(r.channels.messenger.status, 'ok');
  assert.equal(r.redis, 'up');
  assert.equal(await metric('civicgate_channel_auth_failures_total{channel="whatsapp"}'), alerts + 1);
  assert.ok(gw.logs.includes('"event":"channel_auth_failed"'));
  // the next successful send: healthy again
  const next = wa(15551600000);
  await post('whatsapp', waText(next, 'how do i apply for medicaid').body);
  await waitCalls('a later success', next, 1);
  await h.waitFor('ok again', async () => (await readyz()).channels.whatsapp.status === 'ok');
});

test('WhatsApp window: a late agent reply goes as the template, is held, and goes out when the citizen writes', async () => {
  const user = wa(15551700000);
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  await waitCalls('first answer', user, 1);
  await setLastIn('whatsapp', user, 25 * HOUR);
  const reengaged = await metric('civicgate_reengagements_total{channel="whatsapp"}');

  await queueReply('whatsapp', user, 'Agent Sam: your renewal form is approved.');
  const [tpl] = await waitCalls('the template', user, 1, (c) => c.kind === 'template' && c.status === 200);
  assert.deepEqual(tpl.body, { messaging_product: 'whatsapp', recipient_type: 'individual', to: user, type: 'template',
    template: { name: TEMPLATE.name, language: { code: TEMPLATE.language } } });
  await h.waitFor('held', async () => (await redis.cli('LLEN', `cg:held:{whatsapp:${user}}`)) === '(integer) 1');
  assert.ok(Number((await redis.cli('--raw', 'HGET', `cg:sess:{whatsapp:${user}}`, 'reengaged_at'))) > 0);
  assert.equal(await metric('civicgate_reengagements_total{channel="whatsapp"}'), reengaged + 1);

  // a second late reply: held too, no second template
  await queueReply('whatsapp', user, 'Agent Sam: and the card is in the mail.');
  await h.waitFor('two held', async () => (await redis.cli('LLEN', `cg:held:{whatsapp:${user}}`)) === '(integer) 2');
  await h.sleep(300);
  assert.equal(callsTo(user, (c) => c.kind === 'template').length, 1);
  assert.equal(callsTo(user, (c) => textOf(c) && textOf(c).startsWith('Agent Sam')).length, 0, 'nothing free-form sent');

  // the citizen answers the template: held replies first, in order, then the answer
  const since = graph.calls.length;
  await post('whatsapp', waText(user, 'menu').body);
  await h.waitFor('released', async () => graph.calls.slice(since).filter((c) => String(c.to) === user && c.status === 200).length >= 3);
  const after = graph.calls.slice(since).filter((c) => String(c.to) === user && c.status === 200);
  assert.equal(textOf(after[0]), 'Agent Sam: your renewal form is approved.');
  assert.equal(textOf(after[1]), 'Agent Sam: and the card is in the mail.');
  assert.doesNotMatch(textOf(after[2]), /Agent Sam/);
  assert.equal(await redis.cli('EXISTS', `cg:held:{whatsapp:${user}}`), '(integer) 0');
  assert.equal(await redis.cli('HEXISTS', `cg:sess:{whatsapp:${user}}`, 'reengaged_at'), '(integer) 0');
});

test('WhatsApp window: 131047 from the platform takes the template path even when our clock said open', async () => {
  const user = wa(15551800000);
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  await waitCalls('first answer', user, 1);
  graph.closeWindow(user);              // Meta's clock disagrees with ours
  await queueReply('whatsapp', user, 'Agent Ana: we found your file.');
  await waitCalls('the template', user, 1, (c) => c.kind === 'template' && c.status === 200);
  const refused = callsTo(user, (c) => c.code === 131047);
  assert.equal(refused.length, 1);
  assert.equal(textOf(refused[0]), 'Agent Ana: we found your file.');
  await h.waitFor('held', async () => (await redis.cli('LLEN', `cg:held:{whatsapp:${user}}`)) === '(integer) 1');
  graph.closeWindow(user, false);
  await post('whatsapp', waText(user, 'ok').body);
  await waitCalls('the held reply', user, 1, (c) => c.status === 200 && textOf(c) === 'Agent Ana: we found your file.');
});

test('WhatsApp window: a citizen who writes while the template is in flight gets the reply at once', async () => {
  const user = wa(15551900000);
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  await waitCalls('first answer', user, 1);
  await setLastIn('whatsapp', user, 25 * HOUR);
  graph.fail({ platform: 'whatsapp', to: user, kind: 'template', delay_ms: 1500, count: 1 });   // slow, then OK
  await queueReply('whatsapp', user, 'Agent Kim: your appointment moved to Tuesday.');
  await waitCalls('the template request', user, 1, (c) => c.kind === 'template');
  await post('whatsapp', waText(user, 'hello again').body);                                     // before the template's answer
  await waitCalls('the agent reply', user, 1, (c) => c.status === 200 && textOf(c) === 'Agent Kim: your appointment moved to Tuesday.');
  assert.equal(await redis.cli('EXISTS', `cg:held:{whatsapp:${user}}`), '(integer) 0', 'not left held');
});

test('WhatsApp window: at most 20 replies are held; the oldest beyond that is dead-lettered, not lost', async () => {
  const user = wa(15552000000);
  await post('whatsapp', waText(user, 'how do i apply for medicaid').body);
  await waitCalls('first answer', user, 1);
  await setLastIn('whatsapp', user, 25 * HOUR);
  for (let i = 1; i <= 21; i++) await queueReply('whatsapp', user, `Agent note ${i}`);
  const d = await deadLetter(user);
  assert.equal(d.text, 'Agent note 1');
  assert.match(d.reason, /held replies over 20/);
  assert.equal(await redis.cli('LLEN', `cg:held:{whatsapp:${user}}`), '(integer) 20');
  assert.equal(callsTo(user, (c) => c.kind === 'template').length, 1, 'one template for the closed window');
});

test('Messenger window: RESPONSE within 24 h, HUMAN_AGENT for a person after, refused for the bot and after 7 days', async () => {
  const id = psid();
  await post('messenger', fbText(id, 'how do i apply for medicaid'));
  const [first] = await waitCalls('first answer', id, 1);
  assert.equal(first.body.messaging_type, 'RESPONSE');

  await queueReply('messenger', id, 'Agent Lee: within the day.');
  const [inside] = await waitCalls('agent reply inside the window', id, 1, (c) => textOf(c) === 'Agent Lee: within the day.');
  assert.equal(inside.body.messaging_type, 'RESPONSE', 'decided by the window, not by from_agent');

  await setLastIn('messenger', id, 30 * HOUR);
  await queueReply('messenger', id, 'Agent Lee: a day later.');
  const [tagged] = await waitCalls('tagged reply', id, 1, (c) => textOf(c) === 'Agent Lee: a day later.');
  assert.equal(tagged.body.messaging_type, 'MESSAGE_TAG');
  assert.equal(tagged.body.tag, 'HUMAN_AGENT');

  await queueReply('messenger', id, 'A bot reminder.', { fromAgent: false });
  const d1 = await deadLetter(id);
  assert.equal(d1.text, 'A bot reminder.');
  assert.match(d1.reason, /only a person/);

  const id2 = psid();
  await post('messenger', fbText(id2, 'how do i apply for medicaid'));
  await waitCalls('first answer', id2, 1);
  await setLastIn('messenger', id2, 8 * 24 * HOUR);
  await queueReply('messenger', id2, 'Agent Lee: a week later.');
  const d2 = await deadLetter(id2);
  assert.match(d2.reason, /7 days/);
  assert.equal(callsTo(id2, (c) => textOf(c) === 'Agent Lee: a week later.').length, 0);
});

test('Messenger: 613 and 429 throttle then deliver; 551 marks the contact gone; 10/2018278 and 190 dead-letter', async () => {
  for (const rule of [{ status: 400, code: 613 }, { status: 429 }]) {
    const id = psid();
    graph.fail({ platform: 'messenger', to: id, count: 1, ...rule });
    await post('messenger', fbText(id, 'how do i apply for medicaid'));
    await waitCalls(`delivered after ${JSON.stringify(rule)}`, id, 1);
    assert.equal(callsTo(id).length, 2);
  }
  const gone = psid();
  graph.block(gone);
  await post('messenger', fbText(gone, 'how do i apply for medicaid'));
  await h.waitFor('blocked', async () => (await redis.cli('--raw', 'HGET', `cg:sess:{messenger:${gone}}`, 'blocked')) === '1');

  const win = psid();
  graph.fail({ platform: 'messenger', to: win, status: 400, code: 10, subcode: 2018278,
    message: '(#10) This message is sent outside of allowed window.', count: 1 });
  await post('messenger', fbText(win, 'how do i apply for medicaid'));
  const d = await deadLetter(win);
  assert.equal(d.kind, 'failed');
  assert.match(d.reason, /^reengagement:/);

  const tok = psid();
  graph.fail({ platform: 'messenger', to: tok, status: 400, code: 190, message: 'Invalid OAuth access token', count: 1 });
  await post('messenger', fbText(tok, 'how do i apply for medicaid'));
  const d2 = await deadLetter(tok);
  assert.equal(d2.kind, 'bad_config');
  await h.waitFor('messenger unhealthy', async () => (await readyz()).channels.messenger.status === 'unhealthy');
  const ok = psid();
  await post('messenger', fbText(ok, 'how do i apply for medicaid'));
  await waitCalls('a later success', ok, 1);
  await h.waitFor('messenger ok again', async () => (await readyz()).channels.messenger.status === 'ok');
});
