// Analytics end to end: the real binary, a real redis-server and the fake
// Bot API. Citizens write on Telegram; the admin API then shows what the bot
// could not answer (grouped, only groups asked by enough citizens), the daily
// figures as JSON and CSV, and nothing personal reaches Redis outside the
// citizen's own conversation keys, or the log.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/harness');

const TOKEN = '123456:TEST-token_analytics';
const SECRET = 'e2e-secret_analytics';
const ADMIN = `adm-${crypto.randomBytes(24).toString('hex')}`;

let stack, redis, tg, gw;
let chat = 7770000 + Math.floor(Math.random() * 1000);
const newChat = () => ++chat;

// What this file sent, to check the figures against.
const sent = { messages: 0, chats: new Set(), fallbacks: 0, answers: {} };

async function say(chatId, text) {
  const r = await h.postWebhook(gw, 'telegram', h.tgText(chatId, text),
    { 'x-telegram-bot-api-secret-token': SECRET });
  assert.equal(r.status, 200, r.body);
  sent.messages++;
  sent.chats.add(chatId);
}

// Waits until chatId has n replies: the commit is done before the reply is
// queued (its daily counters follow within 100 ms: the analytics batch).
async function replies(chatId, n) {
  return h.waitFor(`${n} replies to ${chatId}`, async () => {
    const c = (await tg.calls()).filter((x) => x.method === 'sendMessage' && String(x.body.chat_id) === String(chatId));
    return c.length >= n ? c : null;
  }, { timeout: 15000 });
}

async function ask(chatId, text, { fallback = false, intent = null } = {}) {
  const before = (await tg.calls()).filter((x) => x.method === 'sendMessage' && String(x.body.chat_id) === String(chatId)).length;
  await say(chatId, text);
  await replies(chatId, before + 1);
  if (fallback) sent.fallbacks++;
  if (intent) sent.answers[intent] = (sent.answers[intent] || 0) + 1;
}

async function api(p, { token = ADMIN } = {}) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch(gw.base + p, { headers });
  const body = await res.text();
  return { status: res.status, type: res.headers.get('content-type') || '', body };
}

const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);

test.before(async () => {
  stack = await h.startTelegramStack({
    token: TOKEN, secret: SECRET,
    extra: {
      admin: { tokens: [{ name: 'e2e-admin', sha256: crypto.createHash('sha256').update(ADMIN).digest('hex') }] },
      // the strongest case for the log: even with citizens' content logged,
      // no phone number or e-mail may appear
      log: { level: 'debug', debug_content: true },
    },
  });
  ({ redis, tg, gw } = stack);
});

test.after(() => stack && stack.close());

test('unauthenticated or wrongly authenticated calls are refused', async () => {
  for (const p of ['/api/v1/admin/unmatched', '/api/v1/admin/stats', '/api/v1/admin/stats?format=csv']) {
    const none = await api(p, { token: null });
    assert.equal(none.status, 401, `${p} without a token: ${none.body}`);
    const wrong = await api(p, { token: `${ADMIN}x` });
    assert.equal(wrong.status, 401, `${p} with a wrong token: ${wrong.body}`);
    assert.doesNotMatch(wrong.body, /rows|groups/);
  }
});

test('bad periods and parameters are refused with a reason', async () => {
  for (const q of ['from=2026-02-30', 'from=yesterday', `from=${day(0)}&to=${day(-1)}`,
    `from=2020-01-01&to=${day(0)}`]) {
    const r = await api(`/api/v1/admin/unmatched?${q}`);
    assert.equal(r.status, 400, `${q}: ${r.body}`);
    assert.match(JSON.parse(r.body).error, /date|after|at most/);
  }
  assert.equal((await api('/api/v1/admin/stats?format=xml')).status, 400);
  assert.equal((await api('/api/v1/admin/stats?channel=fax')).status, 400);
  assert.equal((await api('/api/v1/admin/unmatched?lang=xx')).status, 400);
});

test('unmatched questions are grouped, and groups below the minimum of citizens are hidden', async () => {
  // three citizens, near-identical words: one group of 3
  const boat = ['can I register my boat online', 'how do I register my boat online?',
    'Can I register my boat online please'];
  for (const q of boat) await ask(newChat(), q, { fallback: true });
  // two citizens: below the minimum of 3
  await ask(newChat(), 'where can I adopt a dog', { fallback: true });
  await ask(newChat(), 'where can i adopt a dog please', { fallback: true });
  // one citizen, four times: 4 questions but 1 citizen, hidden
  const pool = newChat();
  for (let i = 0; i < 4; i++) await ask(pool, 'is the swimming pool open on sunday', { fallback: true });
  // answered questions are not unmatched
  const med = newChat();
  await ask(med, 'how do i apply for medicaid', { intent: 'cms-medicaid' });
  await ask(med, 'how do i apply for medicaid', { intent: 'cms-medicaid' });

  const r = await api(`/api/v1/admin/unmatched?lang=en&from=${day(-1)}&to=${day(0)}`);
  assert.equal(r.status, 200, r.body);
  const u = JSON.parse(r.body);
  assert.equal(u.min_count, 3);
  assert.deepEqual(u.languages, ['en']);
  assert.equal(u.groups.length, 1, JSON.stringify(u.groups));
  const [g] = u.groups;
  assert.equal(g.lang, 'en');
  assert.equal(g.count, 3);
  assert.equal(g.citizens, 3);
  assert.equal(g.texts, 3);
  assert.equal(g.kinds.fallback, 3);
  assert.deepEqual(g.channels, { telegram: 3 });
  assert.match(g.example, /register my boat online/);
  assert.ok(boat.map((q) => q.toLowerCase().replace(/[?]/g, '')).includes(g.example), g.example);
  assert.ok(g.nearest.length >= 1 && g.nearest.length <= 3, JSON.stringify(g.nearest));
  for (const n of g.nearest) {
    assert.match(n.id, /^[a-z0-9-]+$/);
    assert.ok(typeof n.title === 'string' && n.title.length > 0);
    assert.ok(n.score >= 0 && n.score <= 1);
  }
  assert.ok(u.hidden_groups >= 2, `dog and pool groups hidden: ${u.hidden_groups}`);
  assert.ok(!JSON.stringify(u).includes('adopt'), 'the two-citizen group is not shown');
  assert.ok(!JSON.stringify(u).includes('swimming'), 'the one-citizen group is not shown');

  // the same question stored on another day, kind and channel (as the
  // commit writes it) joins the group: counts, citizens, kinds and channels add up
  assert.equal(await redis.cli('HSET', `cg:an:unm:${day(-1)}:en`, 'ambiguous|webchat|can i register my boat online',
    '2 0000a,0000b'), '(integer) 1');
  const merged = JSON.parse((await api(`/api/v1/admin/unmatched?lang=en&from=${day(-1)}&to=${day(0)}`)).body);
  assert.equal(merged.groups.length, 1);
  assert.equal(merged.groups[0].count, 5);
  assert.equal(merged.groups[0].citizens, 5);
  assert.deepEqual(merged.groups[0].kinds, { fallback: 3, ambiguous: 2, handoff: 0 });
  assert.deepEqual(merged.groups[0].channels, { telegram: 3, webchat: 2 });
  assert.equal(await redis.cli('DEL', `cg:an:unm:${day(-1)}:en`), '(integer) 1');

  // ?min may raise the minimum, never lower it
  const raised = JSON.parse((await api(`/api/v1/admin/unmatched?lang=en&min=4&from=${day(-1)}`)).body);
  assert.equal(raised.min_count, 4);
  assert.equal(raised.groups.length, 0);
  const lowered = JSON.parse((await api(`/api/v1/admin/unmatched?lang=en&min=1&from=${day(-1)}`)).body);
  assert.equal(lowered.min_count, 3);
  assert.equal(lowered.groups.length, 1);

  // a period before any of it: nothing
  const old = JSON.parse((await api('/api/v1/admin/unmatched?from=2026-01-01&to=2026-01-31')).body);
  assert.equal(old.groups.length, 0);
});

// Every key and value in Redis, as text.
async function dumpRedis() {
  const out = [];
  let cursor = '0';
  do {
    const res = (await redis.cli('--raw', 'SCAN', cursor, 'COUNT', '1000')).split('\n');
    cursor = res[0];
    for (const key of res.slice(1).filter(Boolean)) {
      const type = await redis.cli('--raw', 'TYPE', key);
      let v;
      if (type === 'string') v = await redis.cli('--raw', 'GET', key);
      else if (type === 'hash') v = await redis.cli('--raw', 'HGETALL', key);
      else if (type === 'stream') v = await redis.cli('--raw', 'XRANGE', key, '-', '+');
      else if (type === 'zset') v = await redis.cli('--raw', 'ZRANGE', key, '0', '-1', 'WITHSCORES');
      else if (type === 'set') v = await redis.cli('--raw', 'SMEMBERS', key);
      else if (type === 'list') v = await redis.cli('--raw', 'LRANGE', key, '0', '-1');
      else v = '';
      out.push({ key, type, v });
    }
  } while (cursor !== '0');
  return out;
}

test('a phone number and an e-mail never reach Redis outside the citizen\'s conversation, nor the log', async () => {
  const id = newChat();
  const phone = ['(555) 010-9999', '555) 010', '010-9999', '0109999', '5550109999'];
  const email = ['ana.perez@example.org', 'ana.perez', 'example.org'];
  await ask(id, 'my phone is +1 (555) 010-9999 and email ana.perez@example.org, is the swimming pool heated',
    { fallback: true });
  await ask(id, 'call me on 555 010 9999 or write to ana.perez@example.org', { fallback: true });

  const all = await dumpRedis();
  // Where the citizen's own words may be: their transcript and session
  // (hash tag {telegram:<id>}, erased with the citizen) and the inbox stream
  // (trimmed once processed).
  const own = (k) => k.includes(`{telegram:${id}}`) || k === 'cg:inbox';
  const leaks = [];
  for (const { key, v } of all) {
    for (const s of [...phone, ...email]) {
      if (key.includes(s) || (!own(key) && v.includes(s))) leaks.push(`${key}: ${s}`);
    }
  }
  assert.deepEqual(leaks, [], 'personal data outside the citizen\'s own keys');
  // the scan does see values: the transcript holds what the citizen wrote
  assert.ok(all.some((x) => own(x.key) && x.v.includes('ana.perez@example.org')), 'the transcript was scanned');
  // and it was recorded, redacted
  const unm = all.filter((x) => x.key.startsWith('cg:an:unm:'));
  assert.ok(unm.some((x) => x.v.includes('my phone is <phone> and email <email> is the swimming pool heated')),
    unm.map((x) => x.v).join('\n'));
  assert.ok(unm.some((x) => x.v.includes('call me on <phone> or write to <email>')));
  // no citizen identifier in any analytics key or value
  for (const x of all.filter((k) => k.key.startsWith('cg:an:'))) {
    for (const c of sent.chats) {
      assert.ok(!x.key.includes(String(c)), `${x.key} names chat ${c}`);
      if (x.type !== 'string') assert.ok(!x.v.includes(String(c)), `${x.key} holds chat ${c}`);
    }
  }
  for (const s of [...phone, ...email]) assert.ok(!gw.logs.includes(s), `the log holds ${s}`);
});

function parseCsv(text) {
  const rows = [];
  for (const line of text.trim().split('\n')) {
    const cells = [];
    let cur = '', q = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (q) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') q = false; else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') { cells.push(cur); cur = ''; } else cur += ch;
    }
    cells.push(cur);
    rows.push(cells);
  }
  const [head, ...body] = rows;
  return body.map((r) => Object.fromEntries(head.map((k, i) => [k, r[i]])));
}

test('the daily figures agree with what was sent, as JSON and as CSV', async () => {
  const q = `from=${day(-1)}&to=${day(0)}&channel=telegram`;
  // the last commits' counters are written within 100 ms (the analytics batch)
  await h.waitFor('the last messages in the daily figures', async () => {
    const r = await api(`/api/v1/admin/stats?${q}`);
    return r.status === 200 && JSON.parse(r.body).totals.messages >= sent.messages ? r : null;
  });
  const j = await api(`/api/v1/admin/stats?${q}`);
  assert.equal(j.status, 200, j.body);
  assert.match(j.type, /application\/json/);
  const s = JSON.parse(j.body);
  assert.deepEqual(s.channels, ['telegram']);
  const sum = (k) => s.rows.reduce((a, r) => a + r[k], 0);
  assert.equal(sum('messages'), sent.messages);
  assert.equal(sum('bot_turns'), sent.messages);
  assert.equal(sum('fallbacks'), sent.fallbacks);
  assert.equal(sum('conversations'), sent.chats.size);
  assert.equal(s.totals.messages, sent.messages);
  assert.equal(s.totals.fallback_rate, Math.round((sent.fallbacks / sent.messages) * 1000) / 1000);
  assert.equal(s.totals.answers['cms-medicaid'], sent.answers['cms-medicaid']);
  assert.equal(s.totals.median_wait_s, null, 'no case handled by an agent');
  // per day over the channels asked: every day of the period, the same sums
  assert.deepEqual(s.days.map((d) => d.day), [day(-1), day(0)]);
  assert.equal(s.days.reduce((a, d) => a + d.messages, 0), sent.messages);
  assert.equal(s.days.reduce((a, d) => a + d.fallbacks, 0), sent.fallbacks);
  for (const r of s.rows) {
    assert.equal(r.channel, 'telegram');
    assert.match(r.day, /^\d{4}-\d{2}-\d{2}$/);
  }

  const c = await api(`/api/v1/admin/stats?${q}&format=csv`);
  assert.equal(c.status, 200, c.body);
  assert.match(c.type, /text\/csv/);
  const rows = parseCsv(c.body);
  assert.equal(rows.length, s.rows.length);
  for (const [i, r] of rows.entries()) {
    const jr = s.rows[i];
    for (const k of ['day', 'channel']) assert.equal(r[k], jr[k]);
    for (const k of ['conversations', 'messages', 'bot_turns', 'answered', 'fallbacks', 'handoffs',
      'fallback_rate', 'handoff_rate', 'cases', 'csat_n']) {
      assert.equal(Number(r[k]), jr[k], `${k} on ${r.day}`);
    }
    assert.equal(Number(r['answers:cms-medicaid']), jr.answers['cms-medicaid'] || 0);
  }

  // Accept: text/csv asks for the same CSV; ?format= wins over it
  const accept = await fetch(`${gw.base}/api/v1/admin/stats?${q}`, { headers: { authorization: `Bearer ${ADMIN}`, accept: 'text/csv' } });
  assert.match(accept.headers.get('content-type'), /text\/csv/);
  assert.equal(await accept.text(), c.body);
  const wins = await fetch(`${gw.base}/api/v1/admin/stats?${q}&format=json`, { headers: { authorization: `Bearer ${ADMIN}`, accept: 'text/csv' } });
  assert.match(wins.headers.get('content-type'), /application\/json/);

  // every authorised call is in the audit log, with the admin's name
  const audit = await redis.cli('--raw', 'XRANGE', 'cg:audit', '-', '+');
  assert.match(audit, /\/api\/v1\/admin\/stats/);
  assert.match(audit, /\/api\/v1\/admin\/unmatched/);
  assert.match(audit, /e2e-admin/);

  // another channel saw nothing
  const w = JSON.parse((await api(`/api/v1/admin/stats?from=${day(-1)}&channel=webchat`)).body);
  assert.deepEqual(w.rows, []);

  // retention: the day's keys expire at the end of their day plus
  // retention.analytics_s (default 180 days), set by the day's first message
  for (const r of s.rows) {
    const end = Date.parse(`${r.day}T00:00:00Z`) / 1000 + 86400;
    for (const k of [`cg:an:day:${r.day}:telegram`, `cg:an:conv:${r.day}:telegram`]) {
      const at = Number(String(await redis.cli('EXPIRETIME', k)).replace(/\D/g, ''));
      assert.equal(at, end + 180 * 86400, `EXPIRETIME ${k}`);
    }
  }
});

test('every metric the Grafana dashboard uses is one /metrics exposes', async () => {
  const dash = JSON.parse(fs.readFileSync(path.join(h.ROOT, 'docs/grafana-dashboard.json'), 'utf8'));
  const names = new Set();
  for (const p of dash.panels) {
    for (const t of p.targets) for (const m of t.expr.matchAll(/civicgate_[a-z0-9_]+/g)) names.add(m[0]);
  }
  assert.ok(names.size >= 15, `names in the dashboard: ${[...names]}`);
  // gauges set by their owners every 5 s appear after the first round
  const exposed = await h.waitFor('every dashboard metric', async () => {
    const text = await (await fetch(`${gw.base}/metrics`)).text();
    const have = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
    const missing = [...names].filter((n) => !have.has(n));
    return missing.length === 0 ? have : null;
  }, { timeout: 15000, interval: 500 }).catch(async () => {
    const text = await (await fetch(`${gw.base}/metrics`)).text();
    const have = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(/[{ ]/)[0]));
    assert.fail(`not exposed: ${[...names].filter((n) => !have.has(n)).join(', ')}`);
  });
  // Redis round trips were measured, and the backlog's age is a number
  assert.ok(exposed.has('civicgate_redis_roundtrip_seconds_count'));
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  const count = Number(/^civicgate_redis_roundtrip_seconds_count (\d+)/m.exec(text)[1]);
  assert.ok(count > sent.messages, `round trips ${count}`);
  assert.match(text, /^civicgate_inbox_oldest_age_seconds \d/m);
});

test('a consumer that took an entry and hangs shows as a growing age of the oldest unfinished entry', async () => {
  const metric = async (name) => {
    const text = await (await fetch(`${gw.base}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    return m ? Number(m[1]) : NaN;
  };
  // a ghost consumer of the pipeline's group reads an entry and never finishes it
  // (in one script, so that the gateway's own poll cannot take it first)
  const read = await redis.cli('EVAL', "redis.call('XADD', KEYS[1], '*', 'seq', '1', 'channel', 'telegram', "
    + "'user', 'ghost', 'kind', 'text', 'text', 'hello', 'received_at', ARGV[1]) "
    + "return redis.call('XREADGROUP', 'GROUP', 'pipeline', 'ghost-consumer', 'COUNT', 1, 'STREAMS', KEYS[1], '>')",
  '1', 'cg:inbox', String(Date.now()));
  assert.match(read, /ghost/);
  const first = await h.waitFor('the age of the held entry', async () => {
    const a = await metric('civicgate_inbox_oldest_age_seconds');
    return a > 0 && (await metric('civicgate_inbox_pending')) >= 1 ? a : null;
  }, { timeout: 15000, interval: 250 });
  const later = await h.waitFor('the age growing', async () => {
    const a = await metric('civicgate_inbox_oldest_age_seconds');
    return a > first ? a : null;
  }, { timeout: 15000, interval: 250 });
  assert.ok(later > first);
});
